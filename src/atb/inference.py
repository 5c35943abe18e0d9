"""Forecasts from a stored registry version and the newest candles."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from atb.data import Candles
from atb.dataset import FeatureTransform
from atb.models import ForecastModel, load_model
from atb.pipeline import FEATURES_FILE, MODEL_DIR, feature_matrix
from atb.registry import ModelRegistry, ModelVersion, RegistryError


@dataclass
class Predictor:
    """A loaded model version: the model, its fitted transform and feature spec."""

    name: str
    model: ForecastModel
    transform: FeatureTransform
    feature_spec: dict
    predict_windows: Callable[[np.ndarray], np.ndarray] = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.predict_windows is None:
            self.predict_windows = self.model.predict

    @classmethod
    def from_directory(cls, directory: str | Path, name: str | None = None, engine: str = "torch") -> Predictor:
        """Load a model version; engine "onnx" runs a neural model through ONNX Runtime
        (one thread), the fast path for single forecasts on a CPU."""
        if engine not in ENGINES:
            raise ValueError(f"engine {engine!r} is not one of {list(ENGINES)}")
        directory = Path(directory)
        spec_path = directory / FEATURES_FILE
        try:
            spec = json.loads(spec_path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{spec_path} is missing: the model version is incomplete") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"{spec_path} is corrupt: {exc}") from exc
        model = load_model(directory / MODEL_DIR)
        return cls(
            name=name or directory.name,
            model=model,
            transform=FeatureTransform.load(directory),
            feature_spec=spec,
            predict_windows=onnx_runtime_predict(model) if engine == "onnx" else None,
        )

    @classmethod
    def from_registry(
        cls, root: str | Path, symbol: str, model_type: str | None = None, ref: str | None = None, engine: str = "torch"
    ):
        """The given version, else the type's production/latest, else the symbol's
        production/latest; an ensemble version gives an EnsemblePredictor."""
        version = resolve_version(ModelRegistry(Path(root)), symbol, model_type, ref)
        if version.metadata.get("kind") == "ensemble":
            from atb.ensemble.artifact import EnsemblePredictor

            if engine != "torch":
                raise ValueError(f"{version.ref} is an ensemble; engine {engine!r} serves single neural models only")

            return EnsemblePredictor.from_directory(version.path, name=version.ref)
        return cls.from_directory(version.path, name=version.ref, engine=engine)

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.transform.target.horizons

    def features(self, candles: Candles) -> pd.DataFrame:
        funding = self.feature_spec.get("funding_path")
        return feature_matrix(candles, Path(funding) if funding else None)

    def predict_prices(self, candles: Candles) -> tuple[pd.Timestamp, float, np.ndarray]:
        """Origin time, origin close and the forecast price per horizon from the newest bar."""
        window = self.transform.latest_window(self.features(candles))
        prediction = self.predict_windows(window)
        close = float(candles.frame["close"].iloc[-1])
        prices = self.transform.target.to_prices(prediction, np.array([close]))[0]
        return candles.frame.index[-1], close, prices

    def forecast(self, candles: Candles) -> dict:
        """JSON-ready forecast: origin, and per horizon the target bar time and price."""
        origin, close, prices = self.predict_prices(candles)
        return {
            "model": self.name,
            "symbol": candles.symbol,
            "origin_time": origin.isoformat(),
            "origin_close": close,
            "horizons": [forecast_row(origin, candles.bar_duration, h, close, price) for h, price in zip(self.horizons, prices)],
        }


ENGINES = ("torch", "onnx")


def forecast_row(origin: pd.Timestamp, bar_duration: pd.Timedelta, horizon: int, close: float, price: float) -> dict:
    """One horizon of a forecast: the target bar's time, the price and the change from `close`."""
    return {
        "horizon": horizon,
        "target_time": (origin + horizon * bar_duration).isoformat(),
        "forecast": float(price),
        "change": float(price / close - 1.0),
    }


def onnx_runtime_predict(model: ForecastModel) -> Callable[[np.ndarray], np.ndarray]:
    """`predict` through a one-thread ONNX Runtime session of the model, exported in memory."""
    from atb.export import OnnxForecaster, onnx_bytes

    return OnnxForecaster(onnx_bytes(model), threads=1).predict


def resolve_version(registry: ModelRegistry, symbol: str, model_type: str | None, ref: str | None) -> ModelVersion:
    if ref is not None:
        return registry.get(symbol, model_type, ref)
    if model_type is None:
        return registry.resolve_for_serving(symbol)
    try:
        return registry.get(symbol, model_type, "production")
    except RegistryError:  # no production version of this type: its latest
        return registry.get(symbol, model_type, "latest")
