"""Market regime features: trend state, volatility regime against the past, drawdown stress, choppiness.

Percentiles rank the current value among the trailing window ending at the
current bar, so a "high volatility" flag compares with the past only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from atb.features.primitives import (
    Bars,
    as_flag,
    average_true_range,
    bars_since_max,
    directional_indicators,
    safe_divide,
    sma,
)

TREND_FAST, TREND_SLOW = 50, 200
VOLATILITY_WINDOW = 20
PERCENTILE_WINDOW = 180
HIGH_PERCENTILE, LOW_PERCENTILE = 0.8, 0.2
DRAWDOWN_WINDOWS = (50, 200)
STRESS_DRAWDOWN = -0.2
TRENDING_ADX = 25.0
EFFICIENCY_WINDOWS = (20, 60)
CHOPPINESS_WINDOW = 14


def features(bars: Bars) -> dict[str, pd.Series]:
    close = bars.close
    fast, slow = sma(close, TREND_FAST), sma(close, TREND_SLOW)
    out: dict[str, pd.Series] = {
        "bull": as_flag((fast > slow) & (close > slow), fast, slow),
        "bear": as_flag((fast < slow) & (close < slow), fast, slow),
    }
    volatility = bars.log_return.rolling(VOLATILITY_WINDOW).std()
    volatility_percentile = volatility.rolling(PERCENTILE_WINDOW).rank(pct=True)
    out["volatility_percentile"] = volatility_percentile
    out["high_volatility"] = as_flag(volatility_percentile > HIGH_PERCENTILE, volatility_percentile)
    out["low_volatility"] = as_flag(volatility_percentile < LOW_PERCENTILE, volatility_percentile)
    out["atr_percentile"] = (average_true_range(bars, 14) / close).rolling(PERCENTILE_WINDOW).rank(pct=True)
    for window in DRAWDOWN_WINDOWS:
        out[f"drawdown_{window}"] = close / close.rolling(window).max() - 1.0
    out["stress"] = as_flag(out["drawdown_200"] < STRESS_DRAWDOWN, out["drawdown_200"])
    out["rally_from_low_200"] = close / close.rolling(200).min() - 1.0
    out["bars_since_high_200"] = bars_since_max(close, 200) / 200.0
    adx = directional_indicators(bars, 14)[2]
    out["trending"] = as_flag(adx > TRENDING_ADX, adx)
    for window in EFFICIENCY_WINDOWS:
        out[f"efficiency_ratio_{window}"] = _efficiency_ratio(close, window)
    out[f"choppiness_{CHOPPINESS_WINDOW}"] = _choppiness(bars, CHOPPINESS_WINDOW)
    return out


def _efficiency_ratio(close: pd.Series, window: int) -> pd.Series:
    """Kaufman's efficiency ratio: net move over the path length of the window, in [0, 1]."""
    net_move = (close - close.shift(window)).abs()
    path = close.diff().abs().rolling(window).sum()
    return safe_divide(net_move, path, fill=0.0)


def _choppiness(bars: Bars, window: int) -> pd.Series:
    """Choppiness index: 100 = range-bound, near 0 = one-directional."""
    path = bars.true_range.rolling(window).sum()
    span = bars.high.rolling(window).max() - bars.low.rolling(window).min()
    return 100.0 * np.log10(safe_divide(path, span, fill=1.0)) / np.log10(window)
