"""The registry of model types: build a model by name, list types and variants, load a saved one.

Adding an architecture: write its network file (constructor
`(n_features, lookback, n_horizons, **hyperparameters)`, `forward(x)`, and the
class attributes `description`, `variants`, `ensemble_family` and, to be
tunable, a static `search_space(trial)`), then add one line to MODEL_CLASSES.
Everything else (the CLI, tuning, the ensemble, the test harness) reads the
registry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from atb.models.attention_lstm import AttentionLSTMNetwork
from atb.models.base import ForecastModel, check_choice, read_params
from atb.models.baselines import DriftModel, NaiveModel
from atb.models.cnn_lstm import CNNLSTMNetwork
from atb.models.enhanced_lstm import EnhancedLSTMNetwork
from atb.models.lightgbm import LightGBMModel
from atb.models.lstm import LSTMNetwork
from atb.models.neural import NeuralForecastModel, neural_model_class
from atb.models.seeds import SeedAverage
from atb.models.statistical import ArimaModel, EtsModel
from atb.models.tcn import TCNAttentionNetwork, TCNNetwork
from atb.models.transformer import TransformerNetwork

MODEL_CLASSES: dict[str, type[ForecastModel]] = {
    "lstm": neural_model_class("lstm", LSTMNetwork),
    "cnn_lstm": neural_model_class("cnn_lstm", CNNLSTMNetwork),
    "attention_lstm": neural_model_class("attention_lstm", AttentionLSTMNetwork),
    "enhanced_lstm": neural_model_class("enhanced_lstm", EnhancedLSTMNetwork),
    "tcn": neural_model_class("tcn", TCNNetwork),
    "tcn_attention": neural_model_class("tcn_attention", TCNAttentionNetwork),
    "transformer": neural_model_class("transformer", TransformerNetwork),
    "lightgbm": LightGBMModel,
    "arima": ArimaModel,
    "ets": EtsModel,
    "naive": NaiveModel,
    "drift": DriftModel,
}


class _Descriptions(Mapping[str, str]):
    """Model type -> description, read live from MODEL_CLASSES."""

    def __getitem__(self, model_type: str) -> str:
        return MODEL_CLASSES[model_type].description

    def __iter__(self) -> Iterator[str]:
        return iter(MODEL_CLASSES)

    def __len__(self) -> int:
        return len(MODEL_CLASSES)


AVAILABLE_MODELS: Mapping[str, str] = _Descriptions()


def model_class(model_type: str) -> type[ForecastModel]:
    """The ForecastModel subclass registered as `model_type`."""
    check_choice("model type", model_type, MODEL_CLASSES)
    return MODEL_CLASSES[model_type]


def model_variants(model_type: str) -> dict[str, dict[str, Any]]:
    """Variant name -> hyperparameters for `model_type`."""
    return model_class(model_type).variants


def tunable_models() -> list[str]:
    """The registered types that declare a search space."""
    return [name for name, cls in MODEL_CLASSES.items() if cls.search_space is not None]


def create_model(
    model_type: str,
    input_shape: tuple[int, int],
    horizons: tuple[int, ...] = (1, 7, 30),
    variant: str = "default",
    task: str = "regression",
    **overrides: Any,
) -> ForecastModel:
    """An unfitted model; unknown types, variants and override names are refused
    with the valid ones listed."""
    cls = model_class(model_type)
    _check_shape(input_shape, horizons)
    model = cls(tuple(int(v) for v in input_shape), tuple(int(h) for h in horizons), variant, task, **overrides)
    model.hyperparameters()
    return model


def build_network(
    model_type: str, input_shape: tuple[int, int], n_horizons: int, variant: str = "default", **overrides: Any
) -> nn.Module:
    """The bare torch network of a neural model type (untrained), e.g. for tuning or export."""
    model = create_model(model_type, input_shape, tuple(range(1, n_horizons + 1)), variant, **overrides)
    if not isinstance(model, NeuralForecastModel):
        raise ValueError(
            f"{model_type!r} is not a neural model type; neural types: "
            f"{[name for name, cls in MODEL_CLASSES.items() if cls.is_neural]}"
        )
    return model.build_network()


def load_model(directory: str | Path) -> ForecastModel | SeedAverage:
    """A fitted model (or seed ensemble) from a directory written by its `save` (no unpickling)."""
    params = read_params(directory)
    if "seeds" in params:
        return SeedAverage.load(Path(directory), params, load_model)
    return model_class(params["model_type"]).from_saved(Path(directory), params)


def _check_shape(input_shape: tuple[int, int], horizons: tuple[int, ...]) -> None:
    if len(input_shape) != 2 or any(int(v) < 1 for v in input_shape):
        raise ValueError(f"input_shape must be (lookback, n_features) of positive ints, got {input_shape}")
    if not horizons or any(int(h) < 1 for h in horizons) or len(set(horizons)) != len(horizons):
        raise ValueError(f"horizons must be distinct positive bar counts, got {horizons}")
