import json

import numpy as np
import pandas as pd
import pytest

from atb.ensemble.regime import REGIMES, RegimeDetector, regime_shares


def _close(log_returns: np.ndarray, start: str = "2020-01-01") -> pd.Series:
    index = pd.date_range(start, periods=len(log_returns) + 1, freq="D")
    return pd.Series(100.0 * np.exp(np.concatenate([[0.0], np.cumsum(log_returns)])), index=index)


@pytest.fixture
def random_walk_returns() -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 0.01, size=600)


def _fitted(close: pd.Series, n_train_bars: int) -> RegimeDetector:
    return RegimeDetector(window=30, vol_window=30).fit(close, close.index[n_train_bars - 1])


def test_labels_at_earlier_bars_ignore_later_data(random_walk_returns):
    close = _close(random_walk_returns)
    detector = _fitted(close, 400)
    labels = detector.transform(close.iloc[:500])
    altered = close.copy()
    altered.iloc[500:] = altered.iloc[500:] * np.random.default_rng(1).uniform(0.2, 5.0, size=len(altered) - 500)
    appended = _close(np.full(50, 0.05), start=str(close.index[-1].date())).iloc[1:] * 3.0
    longer = pd.concat([altered, appended])
    assert longer.index.is_monotonic_increasing and len(longer) == len(close) + 50
    pd.testing.assert_series_equal(detector.transform(longer).iloc[:500], labels, check_freq=False)


def test_thresholds_ignore_data_after_train_end(random_walk_returns):
    close = _close(random_walk_returns)
    altered = close.copy()
    altered.iloc[400:] = altered.iloc[400:] * np.linspace(1.0, 7.0, len(altered) - 400)
    first, second = _fitted(close, 400), _fitted(altered, 400)
    for name in ("efficiency_threshold_", "autocorr_threshold_", "volatility_threshold_"):
        assert getattr(first, name) == getattr(second, name)
    assert _fitted(altered, 500).volatility_threshold_ != first.volatility_threshold_


def test_synthetic_regimes_are_recognised(random_walk_returns):
    rng = np.random.default_rng(2)
    trend = 0.01 + rng.normal(0.0, 0.001, size=120)
    alternating = np.tile([0.004, -0.004], 60)
    burst = rng.normal(0.0, 0.05, size=120)
    returns = np.concatenate([random_walk_returns, trend, alternating, burst])
    close = _close(returns)
    labels = _fitted(close, len(random_walk_returns)).transform(close)
    start = len(random_walk_returns) + 1
    settled = slice(30, 120)  # skip the bars whose window still spans the previous segment
    segments = {
        "trending": labels.iloc[start : start + 120].iloc[settled],
        "mean_reverting": labels.iloc[start + 120 : start + 240].iloc[settled],
        "volatile": labels.iloc[start + 240 : start + 360].iloc[settled],
    }
    for regime, segment in segments.items():
        assert regime_shares(segment)[regime] > 0.95, (regime, regime_shares(segment))


def test_warm_up_bars_are_ranging(random_walk_returns):
    close = _close(random_walk_returns)
    detector = RegimeDetector(window=20, vol_window=40).fit(close, close.index[399])
    labels = detector.transform(close)
    assert (labels.iloc[:40] == "ranging").all()
    assert set(labels) <= set(REGIMES)


def test_regime_shares_lists_every_regime_and_sums_to_one():
    shares = regime_shares(["trending", "trending", "volatile", "ranging"])
    assert shares == {"trending": 0.5, "mean_reverting": 0.0, "volatile": 0.25, "ranging": 0.25}
    with pytest.raises(ValueError, match="unknown regime"):
        regime_shares(["sideways"])


def test_clear_errors():
    close = _close(np.zeros(10) + 0.01)
    with pytest.raises(ValueError, match="at least 32 bars"):
        RegimeDetector().fit(close, close.index[-1])
    with pytest.raises(RuntimeError, match="not fitted"):
        RegimeDetector().transform(close)
    with pytest.raises(ValueError, match="window must be an integer"):
        RegimeDetector(window=1).features(close)


def test_detector_round_trips_through_its_dict():
    rng = np.random.default_rng(3)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 400))), index=pd.date_range("2020-01-01", periods=400, freq="D", tz="UTC"))
    fitted = RegimeDetector().fit(close, close.index[250])
    restored = RegimeDetector.from_dict(json.loads(json.dumps(fitted.to_dict())))
    pd.testing.assert_series_equal(restored.transform(close), fitted.transform(close))
