"""ForecastModel for any torch network `[batch, lookback, features] -> [batch, horizons]`.

The network learns standardised targets: it is wrapped in `TargetScaledNetwork`,
whose fixed output layer maps back to target space with the training targets'
mean and std. Prediction, MC dropout and ONNX export all use that one module,
so every output is in target space without a separate scaler to keep in step.

`neural_model_class` turns a network class (which declares its description,
variants, ensemble family and search space) into a model type for the registry
in `atb.models.factory`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from atb.io import atomic_write_bytes
from atb.models.base import ForecastModel, ModelFileError
from atb.models.trainer import TRAINING_DEFAULTS, FitSettings, seed_everything, train_network
from atb.windows import Windows

WEIGHTS_FILE = "weights.safetensors"
PREDICT_BATCH_SIZE = 4096  # windows per forward pass in predict / predict_samples
ATTRIBUTION_STEPS = 48  # points on the integrated-gradients path
ATTRIBUTION_POWER = 3  # alpha = u ** 3 for evenly spaced u: finer steps near the baseline
ATTRIBUTION_BATCH = 64  # windows per chunk of integrated gradients (x ATTRIBUTION_STEPS forwards)

# Modules that drop units in training mode: dropout layers, plus attention and
# transformer layers, which apply dropout inside (and skip it on their eval fast path).
DROPOUT_MODULES = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.MultiheadAttention, nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
)


class TargetScaledNetwork(nn.Module):
    """`network(x) * scale + mean`: a network trained on standardised targets,
    answering in target space. `mean` and `scale` are buffers saved with the weights."""

    def __init__(self, network: nn.Module, n_horizons: int):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.zeros(n_horizons))
        self.register_buffer("scale", torch.ones(n_horizons))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x) * self.scale + self.mean


class ProbabilityNetwork(nn.Module):
    """`sigmoid(network(x))`: per horizon the probability that the close ends above the
    origin's (task "direction"), trained with binary cross-entropy."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.network(x))


class NeuralForecastModel(ForecastModel):
    """Trains `network_class` with `atb.models.trainer`; learned state: `network_`
    (a TargetScaledNetwork, or for task "direction" a ProbabilityNetwork, in eval mode),
    `history_`, `best_epoch_`."""

    network_class: type[nn.Module]
    is_neural = True
    stops_early = True
    supports_mc_dropout = True
    onnx_exportable = True
    supports_direction = True
    attribution_method = "integrated gradients"

    def build_network(self) -> nn.Module:
        """A freshly initialised network for this model's shape and hyperparameters."""
        lookback, n_features = self.input_shape
        return self.network_class(n_features, lookback, len(self.horizons), **self.hyperparameters())

    def training_defaults(self) -> dict[str, Any]:
        declared = {**TRAINING_DEFAULTS, **getattr(self.network_class, "training_defaults", {})}
        return {**declared, "loss": "bce"} if self.task == "direction" else declared

    def wrap_network(self, network: nn.Module) -> nn.Module:
        """The module that answers in target space (probabilities for task "direction")."""
        return ProbabilityNetwork(network) if self.task == "direction" else TargetScaledNetwork(network, len(self.horizons))

    def fit(
        self,
        train: Windows,
        val: Windows,
        settings: FitSettings | None = None,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        settings = settings or FitSettings()
        self.check_training_windows(train, "train")
        self.check_training_windows(val, "val")
        if (settings.loss == "bce") != (self.task == "direction") and settings.loss is not None:
            raise ValueError(f"{self.model_type}: loss {settings.loss!r} does not fit task {self.task!r} (bce is for direction, and only for it)")
        seed_everything(settings.seed)
        network = self.wrap_network(self.build_network())
        scale = None
        if isinstance(network, TargetScaledNetwork):
            mean, scale = target_statistics(train.y)
            network.mean.copy_(torch.from_numpy(mean))
            network.scale.copy_(torch.from_numpy(scale))
        result = train_network(
            network, train, val, settings,
            horizons=self.horizons,
            training_defaults=self.training_defaults(),
            d_model=self.hyperparameters().get("d_model"),
            target_scale=scale,
            on_epoch=on_epoch,
        )
        self.network_ = network
        self.best_epoch_ = result.best_epoch
        self.history_ = result.history
        return self.history_

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.check_fitted()
        return self._forward_numpy(self.network_, self.check_windows(X, "predict"))

    def predict_samples(self, X: np.ndarray, n_samples: int, seed: int = 0) -> np.ndarray:
        """MC dropout: modules that drop units (DROPOUT_MODULES) sample, everything
        else (normalisation, for one) stays in eval mode.

        The `n_samples` passes run as one batched forward over the input repeated
        `n_samples` times (split into chunks only when that exceeds
        PREDICT_BATCH_SIZE windows); the global RNG is left as it was.
        """
        self.require_capability("supports_mc_dropout")
        self.check_fitted()
        X = self.check_windows(X, "predict_samples")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        dropouts = [m for m in self.network_.modules() if isinstance(m, DROPOUT_MODULES)]
        if not dropouts:
            raise ValueError(f"{self.model_type} network has no dropout layers to sample from")
        devices = [self.device] if self.device.type == "cuda" else []
        per_chunk = max(1, PREDICT_BATCH_SIZE // n_samples)
        try:
            for module in dropouts:
                module.train()
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                chunks = [self._sample_chunk(X[i:i + per_chunk], n_samples) for i in range(0, len(X), per_chunk)]
        finally:
            self.network_.eval()
        return np.concatenate(chunks, axis=1)

    def attention_weights(self, X: np.ndarray) -> np.ndarray:
        self.require_capability("has_attention")
        self.check_fitted()
        return self._forward_numpy(self.network_.network.attention_weights, self.check_windows(X, "attention_weights"))

    def attributions(self, X: np.ndarray) -> np.ndarray:
        """Integrated gradients from the all-zero window (every feature at its training median,
        the scaler's centre), summed over each feature's lags: `(n, H, n_features + 1)`, the last
        column the forecast at that window. Each row sums to the forecast up to the error of the
        ATTRIBUTION_STEPS-point path integral (completeness)."""
        self.check_fitted()
        X = self.check_windows(X, "attributions")
        # The path integral over alpha in (0, 1) as one over u = alpha ** (1 / ATTRIBUTION_POWER), midpoints in u:
        # steps crowd near the baseline, where networks that normalise their input change fastest.
        u = (torch.arange(ATTRIBUTION_STEPS, dtype=torch.float32) + 0.5) / ATTRIBUTION_STEPS
        alphas = (u**ATTRIBUTION_POWER).to(self.device)
        jacobian = (ATTRIBUTION_POWER * u ** (ATTRIBUTION_POWER - 1)).to(self.device)
        with torch.inference_mode():
            reference = self.network_(torch.zeros((1, *X.shape[1:]), device=self.device))[0].to("cpu", torch.float64).numpy()
        chunks = []
        with torch.backends.cudnn.flags(enabled=False):  # cuDNN recurrent layers have no backward in eval mode
            for i in range(0, len(X), ATTRIBUTION_BATCH):
                x = torch.from_numpy(np.ascontiguousarray(X[i:i + ATTRIBUTION_BATCH])).to(self.device)
                path = (alphas[:, None, None, None] * x[None]).reshape(-1, *x.shape[1:]).requires_grad_(True)
                output = self.network_(path)
                per_horizon = []
                for j in range(len(self.horizons)):
                    (gradient,) = torch.autograd.grad(output[:, j].sum(), path, retain_graph=j < len(self.horizons) - 1)
                    average = (gradient.reshape(ATTRIBUTION_STEPS, *x.shape) * jacobian[:, None, None, None]).mean(dim=0)
                    per_horizon.append((x * average).sum(dim=1))  # (c, K): summed over lags
                chunks.append(torch.stack(per_horizon, dim=1).detach().to("cpu", torch.float64).numpy())
        contributions = np.concatenate(chunks)
        return np.concatenate([contributions, np.broadcast_to(reference[None, :, None], (len(X), len(self.horizons), 1))], axis=2)

    def n_parameters(self) -> int:
        network = self.network_.network if self.is_fitted else self.build_network()
        return sum(p.numel() for p in network.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.network_.parameters()).device

    def to(self, device: str | torch.device) -> NeuralForecastModel:
        """Move the fitted network (e.g. to "cpu" for serving); returns self."""
        self.check_fitted()
        self.network_.to(device)
        return self

    # ------------------------------------------------------------------ internals
    def _sample_chunk(self, X: np.ndarray, n_samples: int) -> np.ndarray:
        """One forward over `X` repeated `n_samples` times -> `(n_samples, len(X), H)`;
        `X` holds at most PREDICT_BATCH_SIZE windows, so `_forward_numpy` makes one call."""
        out = self._forward_numpy(lambda x: self.network_(x.repeat(n_samples, 1, 1)), X)
        return out.reshape(n_samples, len(X), -1)

    def _forward_numpy(self, function: Callable[[torch.Tensor], torch.Tensor], X: np.ndarray) -> np.ndarray:
        """Apply `function` in inference mode, in chunks, returning float64 NumPy."""
        with torch.inference_mode():
            outputs = [
                function(torch.from_numpy(np.ascontiguousarray(X[i:i + PREDICT_BATCH_SIZE])).to(self.device))
                for i in range(0, len(X), PREDICT_BATCH_SIZE)
            ]
            output = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        return output.to("cpu", torch.float64).numpy()

    def _write_state(self, directory: Path) -> None:
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.network_.state_dict().items()}
        atomic_write_bytes(directory / WEIGHTS_FILE, safetensors.torch.save(state))

    def _read_state(self, directory: Path, fitted: dict[str, Any]) -> None:
        path = directory / WEIGHTS_FILE
        if not path.is_file():
            raise ModelFileError(f"{path} does not exist: the saved {self.model_type} model has no weights")
        network = self.wrap_network(self.build_network())
        try:
            state = safetensors.torch.load(path.read_bytes())
            network.load_state_dict(state, strict=True)
        except (safetensors.SafetensorError, RuntimeError) as exc:
            raise ModelFileError(f"{path} cannot be loaded into a {self.model_type} network: {exc}") from exc
        self.network_ = network.eval()
        self.best_epoch_ = int(fitted.get("best_epoch", 0))

    def _fitted_values(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch_}


def target_statistics(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-horizon mean and std of training targets (std 1 where a column is constant)."""
    y = np.asarray(y, dtype=np.float64)
    mean, std = y.mean(axis=0), y.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def neural_model_class(model_type: str, network_class: type[nn.Module]) -> type[NeuralForecastModel]:
    """A NeuralForecastModel subclass for one architecture, from what its network class
    declares: `description`, `variants`, `ensemble_family`, `search_space` (optional);
    attention support is read from an `attention_weights` method."""
    search_space = getattr(network_class, "search_space", None)
    return type(
        network_class.__name__.removesuffix("Network") + "Model",
        (NeuralForecastModel,),
        {
            "model_type": model_type,
            "description": network_class.description,
            "variants": network_class.variants,
            "ensemble_family": network_class.ensemble_family,
            "search_space": None if search_space is None else staticmethod(search_space),
            "network_class": network_class,
            "has_attention": hasattr(network_class, "attention_weights"),
            "__module__": __name__,
        },
    )
