"""The registry of model types: build a model by name, list types and variants, load a saved one.

Adding an architecture: write its network file (constructor
`(n_features, lookback, n_horizons, **hyperparameters)`, `forward(x)`, `VARIANTS`,
`DESCRIPTION`) and add one line to MODEL_CLASSES.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from atb.models import attention_lstm, cnn_lstm, enhanced_lstm, lstm, tcn, transformer
from atb.models.base import ForecastModel, check_choice, read_params
from atb.models.baselines import DriftModel, NaiveModel
from atb.models.lightgbm import LightGBMModel
from atb.models.neural import NeuralForecastModel, neural_model_class

MODEL_CLASSES: dict[str, type[ForecastModel]] = {
    "lstm": neural_model_class("lstm", lstm.LSTMNetwork, lstm.VARIANTS, lstm.DESCRIPTION),
    "cnn_lstm": neural_model_class("cnn_lstm", cnn_lstm.CNNLSTMNetwork, cnn_lstm.VARIANTS, cnn_lstm.DESCRIPTION),
    "attention_lstm": neural_model_class(
        "attention_lstm", attention_lstm.AttentionLSTMNetwork, attention_lstm.VARIANTS, attention_lstm.DESCRIPTION
    ),
    "enhanced_lstm": neural_model_class(
        "enhanced_lstm", enhanced_lstm.EnhancedLSTMNetwork, enhanced_lstm.VARIANTS, enhanced_lstm.DESCRIPTION
    ),
    "tcn": neural_model_class("tcn", tcn.TCNNetwork, tcn.VARIANTS, tcn.DESCRIPTION),
    "tcn_attention": neural_model_class(
        "tcn_attention", tcn.TCNAttentionNetwork, tcn.ATTENTION_VARIANTS, tcn.ATTENTION_DESCRIPTION
    ),
    "transformer": neural_model_class(
        "transformer", transformer.TransformerNetwork, transformer.VARIANTS, transformer.DESCRIPTION
    ),
    "lightgbm": LightGBMModel,
    "naive": NaiveModel,
    "drift": DriftModel,
}

AVAILABLE_MODELS: dict[str, str] = {name: cls.description for name, cls in MODEL_CLASSES.items()}


def model_class(model_type: str) -> type[ForecastModel]:
    """The ForecastModel subclass registered as `model_type`."""
    check_choice("model type", model_type, MODEL_CLASSES)
    return MODEL_CLASSES[model_type]


def model_variants(model_type: str) -> dict[str, dict[str, Any]]:
    """Variant name -> hyperparameters for `model_type`."""
    return model_class(model_type).variants


def create_model(
    model_type: str,
    input_shape: tuple[int, int],
    horizons: tuple[int, ...] = (1, 7, 30),
    variant: str = "default",
    **overrides: Any,
) -> ForecastModel:
    """An unfitted model; unknown types, variants and override names are refused
    with the valid ones listed."""
    cls = model_class(model_type)
    _check_shape(input_shape, horizons)
    model = cls(tuple(int(v) for v in input_shape), tuple(int(h) for h in horizons), variant, **overrides)
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


def load_model(directory: str | Path) -> ForecastModel:
    """A fitted model from a directory written by `ForecastModel.save` (no unpickling)."""
    params = read_params(directory)
    return model_class(params["model_type"]).from_saved(Path(directory), params)


def _check_shape(input_shape: tuple[int, int], horizons: tuple[int, ...]) -> None:
    if len(input_shape) != 2 or any(int(v) < 1 for v in input_shape):
        raise ValueError(f"input_shape must be (lookback, n_features) of positive ints, got {input_shape}")
    if not horizons or any(int(h) < 1 for h in horizons) or len(set(horizons)) != len(horizons):
        raise ValueError(f"horizons must be distinct positive bar counts, got {horizons}")
