"""Train a network `[batch, lookback, features] -> [batch, horizons]` on in-memory windows.

The whole training set lives on the device as two tensors; each epoch shuffles
an index permutation drawn from a seeded generator and slices mini-batches from
it (no DataLoader, no worker processes, no host-to-device copy per batch).

Per epoch: train, validate in inference mode, keep the best weights (and write
them to `checkpoint_dir/best.safetensors`), stop after `patience` epochs without
improvement, restore the best weights. Ctrl-C ends training the same way.

CUDA only, both optional: `mixed_precision` (bf16 autocast, or fp16 with loss
scaling where bf16 is missing) and `cuda_graphs` (the whole training step
captured once as a CUDA graph and replayed, see `_GraphedStep`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

import numpy as np
import safetensors.torch
import torch
from torch import nn

from atb.io import atomic_write_bytes
from atb.windows import WindowArray, Windows

if TYPE_CHECKING:
    from atb.config import FitSpec

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.safetensors"  # the whole training state after the last epoch
OPTIMIZERS = ("adam", "adamw")
LOSSES = ("huber", "mse", "bce")  # bce: binary cross-entropy of probabilities (task "direction")
PROBABILITY_FLOOR = 1e-6  # bce clamps probabilities into [floor, 1 - floor]
HORIZON_WEIGHTINGS = ("equal", "inv_sqrt")
DEFAULT_LEARNING_RATE = 1e-3
EVAL_BATCH_SIZE = 1024
GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capturing a CUDA graph

# Settings a network may declare in its `training_defaults` class attribute.
TRAINING_DEFAULTS: dict[str, Any] = {
    "learning_rate": None,
    "optimizer": "adam",
    "weight_decay": 0.0,
    "loss": "huber",
    "horizon_weighting": "equal",
    "grad_clip": 1.0,
    "warmup_steps": None,
    "batch_size": None,
}


@dataclass(frozen=True)
class FitSettings:
    """How to fit, as opposed to what to fit (the model's hyperparameters).

    `learning_rate`, `loss` and `batch_size` set to None fall back to the
    network's `training_defaults`. `n_jobs` is the thread count of models that
    train on CPU threads (LightGBM); None lets each model pick.
    """

    epochs: int = 100
    batch_size: int | None = 64
    patience: int = 10
    device: str = "auto"
    seed: int = 42
    mixed_precision: bool = False
    cuda_graphs: bool = False
    checkpoint_dir: Path | None = None
    learning_rate: float | None = None
    loss: str | None = None
    min_delta: float = 0.0
    n_jobs: int | None = None
    resume: bool = False  # continue from the checkpoint in checkpoint_dir, where there is one
    threads: int | None = None  # torch CPU threads while fitting (None: leave torch's setting)

    @classmethod
    def from_spec(cls, spec: FitSpec, checkpoint_dir: Path | None = None) -> FitSettings:
        """The settings a run's FitSpec asks for, field by field."""
        return cls(
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            patience=spec.patience,
            device=spec.device,
            seed=spec.seed,
            mixed_precision=spec.mixed_precision,
            cuda_graphs=spec.cuda_graphs,
            checkpoint_dir=checkpoint_dir,
            learning_rate=spec.learning_rate,
            resume=spec.resume,
            n_jobs=spec.threads,
            threads=spec.threads,
        )


class FitResult(NamedTuple):
    history: list[dict]
    best_state: dict[str, torch.Tensor]  # CPU copies of the best weights
    best_epoch: int


@dataclass(frozen=True)
class TrainingPlan:
    """Training settings after merging FitSettings over the network's own defaults."""

    learning_rate: float
    optimizer: str
    weight_decay: float
    loss: str
    horizon_weighting: str
    grad_clip: float | None
    warmup_steps: int | None
    batch_size: int

    @classmethod
    def resolve(cls, declared: dict[str, Any] | None, settings: FitSettings, d_model: int | None = None) -> TrainingPlan:
        """Settings win over declared defaults, which win over TRAINING_DEFAULTS.

        Learning rate when none is given: with warmup_steps, the Noam peak
        d_model**-0.5 * warmup_steps**-0.5 (so the schedule is exactly Noam's);
        otherwise DEFAULT_LEARNING_RATE.
        """
        declared = dict(declared or {})
        unknown = sorted(set(declared) - set(TRAINING_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown training default(s) {unknown}; valid: {sorted(TRAINING_DEFAULTS)}")
        merged = {**TRAINING_DEFAULTS, **declared}
        for name in ("learning_rate", "loss", "batch_size"):
            if getattr(settings, name) is not None:
                merged[name] = getattr(settings, name)
        if merged["learning_rate"] is None:
            warmup = merged["warmup_steps"]
            merged["learning_rate"] = (d_model * warmup) ** -0.5 if warmup and d_model else DEFAULT_LEARNING_RATE
        merged["batch_size"] = merged["batch_size"] or 64
        _check_member("optimizer", merged["optimizer"], OPTIMIZERS)
        _check_member("loss", merged["loss"], LOSSES)
        _check_member("horizon_weighting", merged["horizon_weighting"], HORIZON_WEIGHTINGS)
        return cls(**merged)


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without a GPU is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available (torch {torch.__version__}); use 'cpu' or 'auto'")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}; valid: 'auto', 'cpu', 'cuda', 'cuda:N'") from exc


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices): same seed, same CPU run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def horizon_weights(horizons: tuple[int, ...], weighting: str) -> torch.Tensor:
    """Loss weight per horizon, summing to 1: equal, or proportional to 1/sqrt(h)."""
    _check_member("horizon_weighting", weighting, HORIZON_WEIGHTINGS)
    raw = torch.tensor([h**-0.5 if weighting == "inv_sqrt" else 1.0 for h in horizons], dtype=torch.float32)
    return raw / raw.sum()


class HorizonLoss(nn.Module):
    """Weighted mean over horizons of the Huber (delta 1) or squared error of
    `(prediction - target) / scale`, scale being the per-horizon spread of the
    training targets, so every horizon's error is measured in its own units;
    or, kind "bce", of the binary cross-entropy of predicted probabilities against 0/1 targets."""

    def __init__(self, kind: str, weights: torch.Tensor, scale: np.ndarray | None = None):
        super().__init__()
        _check_member("loss", kind, LOSSES)
        self.kind = kind
        inverse = torch.ones_like(weights) if scale is None else 1.0 / torch.as_tensor(scale, dtype=torch.float32)
        self.register_buffer("weights", weights.float())
        self.register_buffer("inverse_scale", inverse)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "bce":
            probability = prediction.clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
            per_element = nn.functional.binary_cross_entropy(probability, target, reduction="none")
            return (per_element.mean(dim=0) * self.weights).sum()
        error = (prediction - target) * self.inverse_scale
        if self.kind == "huber":
            per_element = nn.functional.huber_loss(error, torch.zeros_like(error), reduction="none", delta=1.0)
        else:
            per_element = error.square()
        return (per_element.mean(dim=0) * self.weights).sum()


def noam_factor(warmup_steps: int) -> Callable[[int], float]:
    """LambdaLR factor with Noam's shape min(s**-0.5, s * w**-1.5), scaled to peak at 1.0
    at step w (the constant d_model**-0.5 lives in the learning rate, see TrainingPlan)."""
    def factor(step: int) -> float:
        s = step + 1
        return min(s**-0.5, s * warmup_steps**-1.5) * warmup_steps**0.5
    return factor


def train_network(
    network: nn.Module,
    train: Windows,
    val: Windows,
    settings: FitSettings,
    *,
    horizons: tuple[int, ...],
    training_defaults: dict[str, Any] | None = None,
    d_model: int | None = None,
    target_scale: np.ndarray | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> FitResult:
    """Fit `network` in place; it ends holding the best weights (lowest val loss).

    `d_model` (the width of an attention network) sets the Noam peak learning
    rate when the defaults declare `warmup_steps` and no rate is given.

    `target_scale` (per horizon, e.g. the training targets' std) normalises each
    horizon's error inside the loss; MAE in the history stays in target space.
    A KeyboardInterrupt (from training or `on_epoch`) stops training after the
    current epoch's bookkeeping, restores the best weights and returns.

    With a `checkpoint_dir`, the whole training state (weights, best weights,
    optimizer, schedule, random generators, epoch, history) is written there
    atomically after every epoch; `resume` continues from it, and on the CPU a
    resumed fit ends with exactly the weights of an uninterrupted one.
    """
    with cpu_threads(settings.threads):
        return _train_network(network, train, val, settings, horizons, training_defaults, d_model, target_scale, on_epoch)


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU thread count set to `threads` inside the block (unchanged for None), then restored."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_network(network, train, val, settings, horizons, training_defaults, d_model, target_scale, on_epoch) -> FitResult:
    _check_settings(settings)
    device = resolve_device(settings.device)
    plan = TrainingPlan.resolve(training_defaults, settings, d_model)
    _check_accelerator_options(settings, device)
    network.to(device).train()
    X, Y = _to_device(train, device)
    X_val, Y_val = _to_device(val, device)
    loss_fn = HorizonLoss(plan.loss, horizon_weights(horizons, plan.horizon_weighting), target_scale).to(device)
    optimizer = _make_optimizer(network, plan, device, capturable=settings.cuda_graphs)
    per_step_schedule = (
        torch.optim.lr_scheduler.LambdaLR(optimizer, noam_factor(plan.warmup_steps)) if plan.warmup_steps else None
    )
    plateau = (
        None if per_step_schedule
        else torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=5, min_lr=1e-7)
    )
    autocast = _autocast(settings, device)
    step_class = _GraphedStep if settings.cuda_graphs else _EagerStep
    step = step_class(network, loss_fn, optimizer, plan.grad_clip, autocast, _grad_scaler(settings, device))
    batches = _BatchPlan(len(X), plan.batch_size, settings.seed, drop_last=settings.cuda_graphs)

    checkpoint = TrainingCheckpoint(network, optimizer, per_step_schedule or plateau, batches.generator)
    progress = _Progress()
    if settings.resume and settings.checkpoint_dir is not None and (Path(settings.checkpoint_dir) / CHECKPOINT_FILE).is_file():
        progress = checkpoint.load(Path(settings.checkpoint_dir) / CHECKPOINT_FILE)
        logger.info("resuming after epoch %d from %s", progress.epoch, settings.checkpoint_dir)
    history = progress.history
    best_loss, best_state, best_epoch, waited = progress.best_loss, progress.best_state, progress.best_epoch, progress.waited
    try:
        for epoch in range(progress.epoch + 1, settings.epochs + 1):
            if waited >= settings.patience:  # a resumed fit that had already stopped early
                break
            started = time.perf_counter()
            total = torch.zeros((), device=device)
            for index in batches.epoch(device):
                total += step(X[index], Y[index]) * len(index)
                if per_step_schedule:
                    per_step_schedule.step()
            val_loss, val_mae = _evaluate(network, X_val, Y_val, loss_fn, autocast)
            if plateau:
                plateau.step(val_loss)
            improved = val_loss < best_loss - settings.min_delta
            if improved:
                best_loss, best_epoch, waited = val_loss, epoch, 0
                best_state = _cpu_copy(network.state_dict())
            else:
                waited += 1
            row = {
                "epoch": epoch,
                "loss": total.item() / batches.n_used,
                "val_loss": val_loss,
                "lr": float(optimizer.param_groups[0]["lr"]),
                "seconds": time.perf_counter() - started,
                **{f"val_mae_h{h}": m for h, m in zip(horizons, val_mae)},
            }
            history.append(row)
            if settings.checkpoint_dir is not None:
                checkpoint.save(Path(settings.checkpoint_dir) / CHECKPOINT_FILE, _Progress(epoch, history, best_loss, best_state, best_epoch, waited))
            logger.debug("epoch %d: %s", epoch, row)
            if on_epoch is not None:
                on_epoch(row)
            if waited >= settings.patience:
                logger.info("early stop at epoch %d; best epoch %d (val_loss %.6g)", epoch, best_epoch, best_loss)
                break
    except KeyboardInterrupt:
        if best_state is None:
            raise
        logger.warning("training interrupted after %d epoch(s); keeping the best epoch %d", len(history), best_epoch)
    if best_state is None:
        raise FloatingPointError(
            f"training produced no finite validation loss in {len(history)} epoch(s) "
            f"(last: {history[-1]['val_loss'] if history else 'none'}); lower the learning rate or check the inputs"
        )
    network.load_state_dict(best_state)
    network.eval()
    return FitResult(history, best_state, best_epoch)


# ----------------------------------------------------------------------- steps
class _EagerStep:
    """One optimisation step: forward, loss, backward, clip, optimizer step."""

    def __init__(self, network, loss_fn, optimizer, grad_clip, autocast, scaler):
        self.network, self.loss_fn, self.optimizer = network, loss_fn, optimizer
        self.grad_clip, self.autocast, self.scaler = grad_clip, autocast, scaler

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._forward_backward(xb, yb)
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def _forward_backward(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            prediction = self.network(xb)
        loss = self.loss_fn(prediction.float(), yb)
        self.scaler.scale(loss).backward()
        return loss


class _GraphedStep(_EagerStep):
    """The same step captured once as a CUDA graph and replayed for every batch.

    Inputs are copied into static buffers of a fixed batch size (the batch plan
    drops the last partial batch). The first GRAPH_WARMUP_STEPS batches run eagerly
    on a side stream (as torch.cuda.graphs requires), then the next batch is
    captured and every later batch replays the graph. The optimizer is built with
    `capturable=True` and a tensor learning rate, so schedulers still act.
    """

    def __init__(self, *args):
        super().__init__(*args)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warmed = 0
        self.static_x = self.static_y = self.static_loss = None

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        if self.static_x is None:
            self.static_x, self.static_y = xb.clone(), yb.clone()
        self.static_x.copy_(xb)
        self.static_y.copy_(yb)
        if self.graph is None and self.warmed < GRAPH_WARMUP_STEPS:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loss = super().__call__(self.static_x, self.static_y)
            torch.cuda.current_stream().wait_stream(side)
            self.warmed += 1
            return loss
        if self.graph is None:
            self._capture()
        self.graph.replay()
        return self.static_loss.detach().clone()

    def _capture(self) -> None:
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.static_loss = self._forward_backward(self.static_x, self.static_y)
            if self.grad_clip:
                nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
            self.optimizer.step()


class _BatchPlan:
    """Seeded shuffled mini-batch indices, one permutation per epoch."""

    def __init__(self, n: int, batch_size: int, seed: int, drop_last: bool):
        if drop_last and n < batch_size:
            raise ValueError(f"cuda_graphs needs at least one full batch: {n} training windows < batch_size {batch_size}")
        self.n, self.batch_size, self.drop_last = n, batch_size, drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.n_used = (n // batch_size) * batch_size if drop_last else n

    def epoch(self, device: torch.device):
        order = torch.randperm(self.n, generator=self.generator).to(device)
        for start in range(0, self.n_used, self.batch_size):
            yield order[start:start + self.batch_size]


# --------------------------------------------------------------------- helpers
def _evaluate(network, X, Y, loss_fn, autocast) -> tuple[float, list[float]]:
    """Validation loss (as in training) and MAE per horizon in target space."""
    network.eval()
    with torch.inference_mode(), autocast():
        prediction = torch.cat([network(X[i:i + EVAL_BATCH_SIZE]) for i in range(0, len(X), EVAL_BATCH_SIZE)]).float()
    network.train()
    loss = loss_fn(prediction, Y).item()
    return loss, (prediction - Y).abs().mean(dim=0).tolist()


def _make_optimizer(network: nn.Module, plan: TrainingPlan, device: torch.device, capturable: bool):
    optimizer_class = torch.optim.AdamW if plan.optimizer == "adamw" else torch.optim.Adam
    lr: float | torch.Tensor = plan.learning_rate
    options: dict[str, Any] = {"weight_decay": plan.weight_decay}
    if capturable:
        lr = torch.tensor(plan.learning_rate, device=device)
        options["capturable"] = True
    return optimizer_class(network.parameters(), lr=lr, **options)


def _autocast(settings: FitSettings, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A context factory: bf16 (or fp16 where bf16 is missing) autocast on CUDA, else nothing."""
    if not settings.mixed_precision:
        return contextlib.nullcontext
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # the autocast weight cache must be off while a CUDA graph is captured
    return lambda: torch.autocast(device.type, dtype=dtype, cache_enabled=not settings.cuda_graphs)


def _grad_scaler(settings: FitSettings, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling, needed for fp16 only (a no-op object otherwise)."""
    fp16 = settings.mixed_precision and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler(device.type, enabled=fp16)


def _check_accelerator_options(settings: FitSettings, device: torch.device) -> None:
    if settings.mixed_precision and device.type != "cuda":
        raise ValueError(f"mixed_precision needs a CUDA device; training runs on {device}")
    if settings.cuda_graphs and device.type != "cuda":
        raise ValueError(f"cuda_graphs needs a CUDA device; training runs on {device}")
    if settings.cuda_graphs and settings.mixed_precision and not torch.cuda.is_bf16_supported():
        raise ValueError("cuda_graphs with mixed_precision needs bf16 (fp16 loss scaling cannot be captured)")


def _check_settings(settings: FitSettings) -> None:
    for name in ("epochs", "patience"):
        if getattr(settings, name) < 1:
            raise ValueError(f"FitSettings.{name} must be >= 1, got {getattr(settings, name)}")
    if settings.batch_size is not None and settings.batch_size < 1:
        raise ValueError(f"FitSettings.batch_size must be >= 1, got {settings.batch_size}")
    if settings.loss is not None:
        _check_member("loss", settings.loss, LOSSES)


class _DeviceWindows:
    """A WindowArray on the device: its feature matrix and window ends; indexing gathers the
    windows of a batch there (the same values, in the same order, as the whole array would hold)."""

    def __init__(self, windows: WindowArray, device: torch.device) -> None:
        self.matrix = torch.as_tensor(windows.matrix, device=device)
        self.ends = torch.as_tensor(windows.ends, device=device)
        self.offsets = torch.arange(1 - windows.lookback, 1, device=device)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor:
        return self.matrix[self.ends[index][:, None] + self.offsets]


def _to_device(windows: Windows, device: torch.device) -> tuple[torch.Tensor | _DeviceWindows, torch.Tensor]:
    if isinstance(windows.X, WindowArray):
        X = _DeviceWindows(windows.X, device)
    else:
        X = torch.as_tensor(np.ascontiguousarray(windows.X, dtype=np.float32), device=device)
    Y = torch.as_tensor(np.ascontiguousarray(windows.y, dtype=np.float32), device=device)
    return X, Y


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


@dataclass
class _Progress:
    """Where a fit stands after `epoch` epochs."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_loss: float = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch: int = 0
    waited: int = 0


@dataclass
class TrainingCheckpoint:
    """The whole state of a fit in one safetensors file (no pickle): tensors under
    `weights.`, `best.`, `optimizer.`, `rng.`; everything else as JSON in its metadata."""

    network: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any
    batch_generator: torch.Generator

    def save(self, path: Path, progress: _Progress) -> None:
        tensors = {f"weights.{k}": v for k, v in _cpu_copy(self.network.state_dict()).items()}
        tensors |= {f"best.{k}": v for k, v in (progress.best_state or {}).items()}
        optimizer_state = self.optimizer.state_dict()
        scalars: dict[str, dict[str, Any]] = {}
        for index, values in optimizer_state["state"].items():
            for name, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"optimizer.{index}.{name}"] = value.detach().to("cpu", copy=True).contiguous()
                else:
                    scalars.setdefault(str(index), {})[name] = value
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.batches"] = self.batch_generator.get_state()
        if torch.cuda.is_available():
            tensors |= {f"rng.cuda.{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())}
        state = {
            "epoch": progress.epoch,
            "history": progress.history,
            "best_loss": progress.best_loss,
            "best_epoch": progress.best_epoch,
            "waited": progress.waited,
            "param_groups": optimizer_state["param_groups"],
            "optimizer_scalars": scalars,
            "schedule": _schedule_state(self.schedule),
        }
        atomic_write_bytes(path, safetensors.torch.save(tensors, metadata={"state": json.dumps(state)}))

    def load(self, path: Path) -> _Progress:
        """Restore every piece; a checkpoint of another network or optimizer is refused by name."""
        try:
            tensors = safetensors.torch.load_file(path)
            with safetensors.safe_open(path, framework="pt") as handle:
                state = json.loads(handle.metadata()["state"])
            self.network.load_state_dict(_prefixed(tensors, "weights."))
            self.optimizer.load_state_dict(_optimizer_state(tensors, state, self.optimizer))
        except (RuntimeError, KeyError, ValueError, OSError, safetensors.SafetensorError) as exc:
            raise ValueError(f"checkpoint {path} does not fit this run ({type(exc).__name__}: {str(exc).splitlines()[0]}); delete it or train without --resume") from exc
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(tensors["rng.torch"])
        self.batch_generator.set_state(tensors["rng.batches"])
        if torch.cuda.is_available() and "rng.cuda.0" in tensors:
            torch.cuda.set_rng_state_all([tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count())])
        best = _prefixed(tensors, "best.")
        return _Progress(state["epoch"], state["history"], state["best_loss"], best or None, state["best_epoch"], state["waited"])


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _optimizer_state(tensors: dict[str, torch.Tensor], state: dict, optimizer: torch.optim.Optimizer) -> dict:
    per_parameter: dict[int, dict[str, Any]] = {}
    for key, value in _prefixed(tensors, "optimizer.").items():
        index, name = key.split(".", 1)
        per_parameter.setdefault(int(index), {})[name] = value
    for index, values in state["optimizer_scalars"].items():
        per_parameter.setdefault(int(index), {}).update(values)
    groups = state["param_groups"]
    for group, current in zip(groups, optimizer.state_dict()["param_groups"]):
        for name, value in current.items():  # JSON made tuples lists (Adam's betas)
            if isinstance(value, tuple):
                group[name] = tuple(group[name])
    return {"state": per_parameter, "param_groups": groups}


def _schedule_state(schedule: Any) -> dict | None:
    """The learning-rate schedule's state (LambdaLR stores its function as None)."""
    return None if schedule is None else schedule.state_dict()


def _check_member(name: str, value: Any, valid: tuple) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {list(valid)}")
