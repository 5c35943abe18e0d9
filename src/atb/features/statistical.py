"""Statistical features of recent returns and prices: moments, z-scores, autocorrelation, trend fit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atb.features.primitives import Bars, rolling_autocorr, rolling_zscore, safe_divide

MOMENT_WINDOWS = (20, 60, 120)
PRICE_ZSCORE_WINDOWS = (10, 50, 100)
RETURN_ZSCORE_WINDOWS = (20, 60)
LOG_PRICE_ZSCORE_WINDOW = 200
AUTOCORR_LAGS = (1, 2, 3, 4, 5)
AUTOCORR_WINDOWS = (30, 90)
ABS_AUTOCORR_WINDOW = 60
VARIANCE_RATIO_HORIZONS, VARIANCE_RATIO_WINDOW = (5, 10), 60
MEDIAN_WINDOW = 20
RANK_WINDOWS = (50, 200)
SHARPE_WINDOWS = (20, 60)
TREND_WINDOWS = (20, 50)


def features(bars: Bars) -> dict[str, pd.Series]:
    close, log_return = bars.close, bars.log_return
    log_close = np.log(close)
    out: dict[str, pd.Series] = {}
    for window in MOMENT_WINDOWS:
        out[f"return_skew_{window}"] = log_return.rolling(window).skew()
        out[f"return_kurt_{window}"] = log_return.rolling(window).kurt()
    for window in PRICE_ZSCORE_WINDOWS:
        out[f"close_zscore_{window}"] = rolling_zscore(close, window)
    for window in RETURN_ZSCORE_WINDOWS:
        out[f"return_zscore_{window}"] = rolling_zscore(log_return, window)
    out[f"log_close_zscore_{LOG_PRICE_ZSCORE_WINDOW}"] = rolling_zscore(log_close, LOG_PRICE_ZSCORE_WINDOW)
    for window in AUTOCORR_WINDOWS:
        for lag in AUTOCORR_LAGS:
            out[f"return_autocorr_{lag}_{window}"] = rolling_autocorr(log_return, lag, window)
    out[f"abs_return_autocorr_1_{ABS_AUTOCORR_WINDOW}"] = rolling_autocorr(log_return.abs(), 1, ABS_AUTOCORR_WINDOW)
    one_bar_variance = log_return.rolling(VARIANCE_RATIO_WINDOW).var()
    for horizon in VARIANCE_RATIO_HORIZONS:
        multi_bar = (log_close - log_close.shift(horizon)).rolling(VARIANCE_RATIO_WINDOW).var()
        out[f"variance_ratio_{horizon}"] = safe_divide(multi_bar, horizon * one_bar_variance, fill=1.0)
    out[f"return_median_{MEDIAN_WINDOW}"] = log_return.rolling(MEDIAN_WINDOW).median()
    for window in RANK_WINDOWS:
        out[f"close_rank_{window}"] = close.rolling(window).rank(pct=True)
    for window in SHARPE_WINDOWS:
        rolling = log_return.rolling(window)
        out[f"return_sharpe_{window}"] = safe_divide(rolling.mean(), rolling.std(), fill=0.0)
    for window in TREND_WINDOWS:
        slope, r_squared = _linear_trend(log_close, window)
        out[f"trend_slope_{window}"] = slope
        out[f"trend_r2_{window}"] = r_squared
    return out


def _linear_trend(log_close: pd.Series, window: int) -> tuple[pd.Series, pd.Series]:
    """Least-squares slope of log price per bar over the window, and the fit's R^2."""
    bar_number = pd.Series(np.arange(len(log_close), dtype="float64"), index=log_close.index)
    rolling = log_close.rolling(window)
    covariance = rolling.cov(bar_number)
    price_variance = rolling.var()
    time_variance = window * (window + 1) / 12.0  # sample variance (ddof=1) of `window` consecutive integers
    slope = covariance / time_variance
    r_squared = safe_divide(covariance**2, price_variance * time_variance, fill=0.0).clip(0.0, 1.0)
    return slope, r_squared
