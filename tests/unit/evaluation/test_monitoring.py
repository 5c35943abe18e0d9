"""The monitoring reference sees the training rows only, and holds every input and horizon."""

import numpy as np
import pandas as pd

from atb.config import DatasetSpec
from atb.dataset import build_dataset
from atb.evaluation.monitoring import monitoring_reference


def candles_and_features(n=900, seed=0):
    rng = np.random.default_rng(seed)
    index = pd.date_range("2020-01-01", periods=n, freq="1D", tz="UTC", name="timestamp")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    candles = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": rng.uniform(1, 2, n)}, index=index)
    features = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(5)}, index=index)
    features["ret"] = np.log(candles["close"]).diff()
    features.iloc[:3] = np.nan
    return candles, features


def table(dataset, value):
    rows = {h: {"rmse": value, "rmse_ratio": 1.0} for h in dataset.horizons}
    return {"m": rows, "naive": rows, "drift": rows}


def test_the_reference_is_fitted_on_training_rows_only():
    candles, features = candles_and_features()
    spec = DatasetSpec(horizons=(1, 7), lookback=20, n_features=3)
    dataset = build_dataset(candles, features, spec)
    forecast = np.zeros((len(dataset.val), 2))
    reference = monitoring_reference(dataset, features, forecast, "m", table(dataset, 1.0), table(dataset, 2.0))
    assert set(reference["inputs"]) == set(dataset.transform.feature_names) and set(reference["forecasts"]) == {"1", "7"}
    assert reference["errors"]["validation"]["7"]["model"] == 2.0
    later = features.copy()
    after_training = later.index > dataset.train_close.index[-1]
    later.loc[after_training] = later.loc[after_training] * 50 + 7  # validation and test rows changed
    moved = monitoring_reference(dataset, later, forecast, "m", table(dataset, 1.0), table(dataset, 2.0))
    assert moved["inputs"] == reference["inputs"]
