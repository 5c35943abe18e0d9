"""A loaded single-model version: its model, fitted transform and feature spec, forecasting
from the newest candles."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from atb.data import Candles
from atb.dataset import FeatureTransform
from atb.features import feature_matrix
from atb.layout import FEATURES_FILE, GATE_FILE, MODEL_DIR, TRANSFORM_FILE
from atb.models import ForecastModel, load_model
from atb.models.gate import GatedModel, SkillGate

ENGINES = ("torch", "onnx")


class ForecastError(ValueError):
    """A version cannot forecast from these candles; the message names the version and the cause."""


@dataclass
class Predictor:
    """A loaded model version: the model (behind its skill gate when the version has one),
    its fitted transform and feature spec."""

    name: str
    model: ForecastModel | GatedModel
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
        if (directory / GATE_FILE).is_file():
            model = GatedModel(model, SkillGate.load(directory / GATE_FILE))
        return cls(
            name=name or directory.name,
            model=model,
            transform=FeatureTransform.load(directory / TRANSFORM_FILE),
            feature_spec=spec,
            predict_windows=onnx_runtime_predict(model) if engine == "onnx" else None,
        )

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.transform.target.horizons

    def features(self, candles: Candles) -> pd.DataFrame:
        """The candidate feature matrix of `candles`, refused when their bar size is not the version's."""
        check_bar_size(self.name, self.feature_spec, candles)
        funding = self.feature_spec.get("funding_path")
        return feature_matrix(candles, Path(funding) if funding else None)

    def forecast(self, candles: Candles) -> dict:
        """JSON-ready forecast from the newest bar: origin, and per horizon the target bar time and
        price (a direction version: the probability of "up")."""
        return self.forecast_at(candles)[0]

    def forecast_at(self, candles: Candles, origin_times: list | None = None) -> list[dict]:
        """Forecasts from several origins of `candles` (default: the newest bar), in one model call."""
        ends = origin_positions(candles, origin_times)
        windows = self.transform.windows_at(self.features(candles), ends)
        closes = candles.frame["close"].to_numpy(dtype=float)[ends]
        predictions = self.predict_windows(windows)
        direction = self.transform.target.is_direction
        values = predictions if direction else self.transform.target.to_prices(predictions, closes)
        row_of = direction_row if direction else forecast_row
        return [
            checked_forecast({
                "model": self.name,
                "symbol": candles.symbol,
                "origin_time": candles.frame.index[end].isoformat(),
                "origin_close": float(close),
                "horizons": [row_of(candles.frame.index[end], candles.bar_duration, h, close, v) for h, v in zip(self.horizons, row)],
            })
            for end, close, row in zip(ends, closes, values)
        ]


def origin_positions(candles: Candles, origin_times: list | None) -> np.ndarray:
    """Row positions of the requested origin bars (default: the newest), each one a bar of `candles`."""
    if origin_times is None:
        return np.array([len(candles.frame) - 1])
    wanted = pd.DatetimeIndex([pd.Timestamp(t) for t in origin_times])
    wanted = wanted.tz_localize("UTC") if wanted.tz is None else wanted.tz_convert("UTC")
    positions = candles.frame.index.get_indexer(wanted)
    if (positions < 0).any():
        raise ForecastError(f"origin {wanted[int(np.argmax(positions < 0))]} is not a bar of {candles.source}")
    return positions


def check_bar_size(name: str, feature_spec: dict, candles: Candles) -> None:
    """Refuse candles whose bar size differs from the one the version was trained on."""
    trained = feature_spec.get("bar_duration")
    if trained is not None and pd.Timedelta(trained) != candles.bar_duration:
        raise ForecastError(
            f"{name} was trained on {pd.Timedelta(trained)} bars but {candles.source} has {candles.bar_duration} bars; "
            "give candles of the version's bar size"
        )


def checked_forecast(forecast: dict) -> dict:
    """The forecast, refused when any number in it is not finite (never served as NaN)."""
    bad = [f"h={row['horizon']} {key}" for row in forecast["horizons"] for key, value in row.items() if isinstance(value, float) and not np.isfinite(value)]
    bad += [f"base {name}" for name, values in forecast.get("bases", {}).items() if not np.isfinite(values).all()]
    if bad or not np.isfinite(forecast["origin_close"]):
        raise ForecastError(f"{forecast['model']}: the forecast is not finite ({', '.join(bad[:5]) or 'origin close'}); nothing is served")
    return forecast


def forecast_row(origin: pd.Timestamp, bar_duration: pd.Timedelta, horizon: int, close: float, price: float) -> dict:
    """One horizon of a forecast: the target bar's time, the price and the change from `close`."""
    return {
        "horizon": horizon,
        "target_time": (origin + horizon * bar_duration).isoformat(),
        "forecast": float(price),
        "change": float(price / close - 1.0),
    }


def direction_row(origin: pd.Timestamp, bar_duration: pd.Timedelta, horizon: int, close: float, probability: float) -> dict:
    """One horizon of a direction forecast: the target bar's time and the probability that its
    close is above `close`."""
    return {"horizon": horizon, "target_time": (origin + horizon * bar_duration).isoformat(), "probability_up": float(probability)}


def onnx_runtime_predict(model: ForecastModel | GatedModel) -> Callable[[np.ndarray], np.ndarray]:
    """`predict` through a one-thread ONNX Runtime session of the model (its gate included),
    exported in memory."""
    from atb.models.onnx import OnnxForecaster, onnx_bytes

    return OnnxForecaster(onnx_bytes(model), threads=1).predict
