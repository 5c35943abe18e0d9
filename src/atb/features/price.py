"""Price-derived features: returns, candle shape, gaps and position in recent ranges."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atb.features.primitives import Bars, range_position, safe_divide

LOG_RETURN_HORIZONS = (1, 2, 3, 5, 7, 10, 14, 20, 30)
SIMPLE_RETURN_HORIZONS = (1, 7, 30)
LAGGED_RETURNS = (1, 2, 3, 4, 5)
RANGE_WINDOWS = (5, 20, 50, 100)
EXTREME_WINDOWS = (20, 50)
UP_SHARE_WINDOWS = (10, 20)


def features(bars: Bars) -> dict[str, pd.Series]:
    close, high, low, open_ = bars.close, bars.high, bars.low, bars.open
    log_close = np.log(close)
    log_return = bars.log_return
    out: dict[str, pd.Series] = {}
    for horizon in LOG_RETURN_HORIZONS:
        out[f"logret_{horizon}"] = log_close - log_close.shift(horizon)
    for horizon in SIMPLE_RETURN_HORIZONS:
        out[f"ret_{horizon}"] = close / close.shift(horizon) - 1.0
    for lag in LAGGED_RETURNS:
        out[f"logret_1_lag_{lag}"] = log_return.shift(lag)
    out["hl_range"] = (high - low) / close
    out["oc_body"] = close / open_ - 1.0
    out["upper_wick"] = (high - np.maximum(open_, close)) / close
    out["lower_wick"] = (np.minimum(open_, close) - low) / close
    out["gap"] = open_ / close.shift(1) - 1.0
    out["close_position"] = safe_divide(close - low, high - low, fill=0.5)
    for window in RANGE_WINDOWS:
        out[f"close_range_position_{window}"] = range_position(close, close, close, window)
    for window in EXTREME_WINDOWS:
        out[f"to_high_{window}"] = close / high.rolling(window).max() - 1.0
        out[f"to_low_{window}"] = close / low.rolling(window).min() - 1.0
    up = (log_return > 0).astype("float64").where(log_return.notna())
    for window in UP_SHARE_WINDOWS:
        out[f"up_share_{window}"] = up.rolling(window).mean()
    out["streak"] = _signed_streak(log_return)
    return out


def _signed_streak(log_return: pd.Series) -> pd.Series:
    """+n after n consecutive up closes, -n after n down closes, 0 on an unchanged close."""
    direction = np.sign(log_return)
    run_id = (direction != direction.shift(1)).cumsum()
    run_length = direction.groupby(run_id).cumcount() + 1.0
    return (direction * run_length).where(log_return.notna())
