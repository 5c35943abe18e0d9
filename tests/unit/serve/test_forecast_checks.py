"""Nothing is served unchecked: candles of another bar size are refused, and a forecast
with a non-finite number is an error naming the version, never NaN."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixture_registry import copy_registry

from atb.data import load_candles
from atb.serve import ForecastError, load_version


@pytest.fixture
def registry(tmp_path) -> Path:
    return copy_registry(tmp_path)


@pytest.fixture(scope="module")
def daily():
    return load_candles()


def twelve_hour_candles(daily, tmp_path):
    """The daily sample relabelled as 12-hour bars: right prices, wrong bar size."""
    frame = daily.frame.iloc[-400:].copy()
    frame.index = pd.date_range("2024-01-01", periods=len(frame), freq="12h", tz="UTC", name="timestamp")
    path = tmp_path / "BTCUSDT_12h.csv"
    frame.to_csv(path)
    from atb.config import DataSpec

    return load_candles(DataSpec(data_path=path))


@pytest.mark.parametrize("model_type", ["lstm", None])
def test_candles_of_another_bar_size_are_refused(registry, daily, tmp_path, model_type):
    predictor = load_version(registry, "BTCUSDT", model_type=model_type)
    assert np.isfinite(predictor.forecast(daily)["horizons"][0]["forecast"])
    with pytest.raises(ForecastError, match=r"trained on 1 days 00:00:00 bars but .*BTCUSDT_12h.csv has 0 days 12:00:00 bars"):
        predictor.forecast(twelve_hour_candles(daily, tmp_path))


def test_a_non_finite_single_forecast_is_an_error_naming_the_version(registry, daily):
    predictor = load_version(registry, "BTCUSDT", model_type="lstm", ref="v0001")
    predictor.predict_windows = lambda window: np.full((1, 3), np.nan)
    with pytest.raises(ForecastError, match=r"BTCUSDT/lstm/v0001: the forecast is not finite \(h=1 forecast"):
        predictor.forecast(daily)


def test_a_non_finite_base_stops_the_ensemble(registry, daily, monkeypatch):
    ensemble = load_version(registry, "BTCUSDT")
    base = ensemble.bases["lightgbm"].model
    monkeypatch.setattr(base, "predict", lambda window: np.full((len(window), 3), np.inf))
    with pytest.raises(ForecastError, match=r"BTCUSDT/ensemble/v0001: the forecast is not finite"):
        ensemble.forecast(daily)


def test_a_window_with_non_finite_features_names_them(registry, daily):
    predictor = load_version(registry, "BTCUSDT", model_type="lstm", ref="v0001")
    features = predictor.features(daily)
    name = predictor.transform.feature_names[0]
    features.loc[features.index[-3], name] = np.nan
    with pytest.raises(ValueError, match=re.escape(f"non-finite features ['{name}'] (first at {features.index[-3]})")):
        predictor.transform.latest_window(features)
