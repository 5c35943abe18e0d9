"""Forecasting models behind one interface (`ForecastModel`), built by name from the registry."""

from atb.models.base import CapabilityError, ForecastModel, ModelFileError, importance_by_feature
from atb.models.baselines import DriftModel, NaiveModel
from atb.models.factory import (
    AVAILABLE_MODELS,
    build_network,
    create_model,
    load_model,
    model_class,
    model_variants,
)
from atb.models.lightgbm import LightGBMModel
from atb.models.neural import NeuralForecastModel

__all__ = [
    "AVAILABLE_MODELS",
    "CapabilityError",
    "DriftModel",
    "ForecastModel",
    "LightGBMModel",
    "ModelFileError",
    "NaiveModel",
    "NeuralForecastModel",
    "build_network",
    "create_model",
    "importance_by_feature",
    "load_model",
    "model_class",
    "model_variants",
]
