"""Causal building blocks shared by the feature categories.

Every function maps series indexed by bar to a series on the same index whose
value at bar t depends only on bars <= t: pandas rolling windows end at t,
EWMs use ``adjust=False`` (a recursion over the past), shifts are positive.
Values stay NaN until a window is full, so the warm-up is visible.

Flat and constant stretches (no trade, a filled gap, a pegged price) give
finite values by documented convention, never NaN: `safe_divide`'s fill where a
denominator is 0, e.g. 0.5 for a position inside an empty range, 0 for the
z-score or correlation of a flat window, 50 for RSI without moves
(`tests/unit/features/test_flat_stretches.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

WINDOW_CHUNK = 16_384  # windows reduced at once by _window_reduce


@dataclass(frozen=True)
class Bars:
    """OHLCV columns as float64 series, plus the series most indicators start from."""

    open: pd.Series
    high: pd.Series
    low: pd.Series
    close: pd.Series
    volume: pd.Series
    bar_duration: pd.Timedelta

    @classmethod
    def from_frame(cls, ohlcv: pd.DataFrame, bar_duration: pd.Timedelta) -> Bars:
        columns = {name: ohlcv[name].astype("float64") for name in ("open", "high", "low", "close", "volume")}
        return cls(**columns, bar_duration=bar_duration)

    @property
    def index(self) -> pd.DatetimeIndex:
        return self.close.index

    @cached_property
    def log_return(self) -> pd.Series:
        """log(close[t] / close[t-1]); NaN at the first bar."""
        return np.log(self.close).diff()

    @cached_property
    def typical_price(self) -> pd.Series:
        return (self.high + self.low + self.close) / 3.0

    @cached_property
    def true_range(self) -> pd.Series:
        """max(high, previous close) - min(low, previous close); NaN at the first bar."""
        previous_close = self.close.shift(1)
        return np.maximum(self.high, previous_close) - np.minimum(self.low, previous_close)


def safe_divide(numerator: pd.Series, denominator: pd.Series, fill: float) -> pd.Series:
    """numerator / denominator, with `fill` where the denominator is exactly 0.

    `fill` is the value the ratio takes by convention on a degenerate bar (e.g.
    0.5 for a position inside an empty range); NaN inputs stay NaN.
    """
    zero = denominator == 0
    return (numerator / denominator.where(~zero)).mask(zero & numerator.notna(), fill)


def as_flag(condition: pd.Series, *inputs: pd.Series) -> pd.Series:
    """1.0 / 0.0 for a boolean condition, NaN where any input it was built from is NaN."""
    valid = pd.concat(inputs, axis=1).notna().all(axis=1)
    return condition.astype("float64").where(valid)


def sma(values: pd.Series, window: int) -> pd.Series:
    return values.rolling(window).mean()


def ema(values: pd.Series, span: int) -> pd.Series:
    """Exponential moving average, alpha = 2 / (span + 1), NaN until `span` values."""
    return values.ewm(span=span, adjust=False, min_periods=span).mean()


def wilder_mean(values: pd.Series, window: int) -> pd.Series:
    """Wilder's smoothing (alpha = 1 / window), seeded with the first value, NaN until `window` values."""
    return values.ewm(alpha=1.0 / window, adjust=False, min_periods=window).mean()


def rolling_zscore(values: pd.Series, window: int) -> pd.Series:
    """(x - rolling mean) / rolling std; 0 where the window is flat."""
    rolling = values.rolling(window)
    return safe_divide(values - rolling.mean(), rolling.std(), fill=0.0)


def range_position(values: pd.Series, low: pd.Series, high: pd.Series, window: int) -> pd.Series:
    """Where `values` sits between the lowest `low` and highest `high` of the window, in [0, 1]."""
    lowest = low.rolling(window).min()
    highest = high.rolling(window).max()
    return safe_divide(values - lowest, highest - lowest, fill=0.5)


def rsi(close: pd.Series, window: int) -> pd.Series:
    """Wilder's relative strength index in [0, 100]; 50 where prices did not move."""
    change = close.diff()
    gain = wilder_mean(change.clip(lower=0.0), window)
    loss = wilder_mean((-change).clip(lower=0.0), window)
    return safe_divide(100.0 * gain, gain + loss, fill=50.0)


def average_true_range(bars: Bars, window: int) -> pd.Series:
    return wilder_mean(bars.true_range, window)


def directional_indicators(bars: Bars, window: int) -> tuple[pd.Series, pd.Series, pd.Series]:
    """+DI, -DI and ADX (Wilder), each in [0, 100]."""
    up_move = bars.high.diff()
    down_move = -bars.low.diff()
    plus_dm = up_move.where((up_move > down_move) & (up_move > 0), 0.0).where(up_move.notna())
    minus_dm = down_move.where((down_move > up_move) & (down_move > 0), 0.0).where(down_move.notna())
    atr = average_true_range(bars, window)
    plus_di = safe_divide(100.0 * wilder_mean(plus_dm, window), atr, fill=0.0)
    minus_di = safe_divide(100.0 * wilder_mean(minus_dm, window), atr, fill=0.0)
    dx = safe_divide(100.0 * (plus_di - minus_di).abs(), plus_di + minus_di, fill=0.0)
    return plus_di, minus_di, wilder_mean(dx, window)


def rolling_correlation(left: pd.Series, right: pd.Series, window: int) -> pd.Series:
    """Pearson correlation over the last `window` bars from rolling moments; 0 where either side is flat."""
    covariance = left.rolling(window).cov(right)
    scale = np.sqrt(left.rolling(window).var() * right.rolling(window).var())
    return safe_divide(covariance, scale, fill=0.0).clip(-1.0, 1.0)


def rolling_autocorr(values: pd.Series, lag: int, window: int) -> pd.Series:
    """Correlation of x[t] with x[t-lag] over the last `window` pairs."""
    return rolling_correlation(values, values.shift(lag), window)


def rolling_mean_abs_deviation(values: pd.Series, window: int) -> pd.Series:
    """Mean |x - window mean| over each window ending at t."""
    return pd.Series(_window_reduce(values, window, _mean_abs_deviation), index=values.index)


def bars_since_max(values: pd.Series, window: int) -> pd.Series:
    """Bars since the highest value of the last `window` bars (0 = the current bar)."""
    return pd.Series(_window_reduce(values, window, _bars_since_argmax), index=values.index)


def bars_since_min(values: pd.Series, window: int) -> pd.Series:
    """Bars since the lowest value of the last `window` bars (0 = the current bar)."""
    return bars_since_max(-values, window)


def _window_reduce(values: pd.Series, window: int, reduce) -> np.ndarray:
    """Apply `reduce` to each full window ending at t (rows of a strided view), WINDOW_CHUNK rows
    at a time so its temporaries stay small on long series; NaN before the first."""
    data = values.to_numpy(dtype="float64")
    out = np.full(len(data), np.nan)
    if len(data) >= window:
        windows = sliding_window_view(data, window)
        for start in range(0, len(windows), WINDOW_CHUNK):
            out[window - 1 + start : window - 1 + start + WINDOW_CHUNK] = reduce(windows[start : start + WINDOW_CHUNK])
    return out


def _mean_abs_deviation(windows: np.ndarray) -> np.ndarray:
    return np.abs(windows - windows.mean(axis=1, keepdims=True)).mean(axis=1)


def _bars_since_argmax(windows: np.ndarray) -> np.ndarray:
    # argmax finds the first maximum; flip so ties resolve to the most recent bar.
    result = np.argmax(windows[:, ::-1], axis=1).astype("float64")
    result[np.isnan(windows).any(axis=1)] = np.nan
    return result
