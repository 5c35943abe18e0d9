"""Moving-average features, all as ratios to price (never raw levels): distance, crossovers, slopes, MACD."""

from __future__ import annotations

import pandas as pd

from atb.features.primitives import Bars, as_flag, ema, sma

WINDOWS = (5, 10, 20, 50, 100, 200)
SMA_PAIRS = ((5, 20), (10, 50), (20, 50), (50, 200))
EMA_PAIRS = ((12, 26), (20, 50), (50, 200))
ABOVE_SMA = (20, 50, 200)
SMA_SLOPES = (20, 50, 200)
EMA_SLOPES = (20, 50)
SLOPE_BARS = 5
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
ICHIMOKU_TENKAN, ICHIMOKU_KIJUN, ICHIMOKU_SPAN_B = 9, 26, 52


def features(bars: Bars) -> dict[str, pd.Series]:
    close = bars.close
    smas = {window: sma(close, window) for window in WINDOWS}
    emas = {window: ema(close, window) for window in {*WINDOWS, MACD_FAST, MACD_SLOW}}
    out: dict[str, pd.Series] = {}
    for window in WINDOWS:
        out[f"sma_{window}_ratio"] = close / smas[window] - 1.0
        out[f"ema_{window}_ratio"] = close / emas[window] - 1.0
    for fast, slow in SMA_PAIRS:
        out[f"sma_{fast}_{slow}_spread"] = smas[fast] / smas[slow] - 1.0
    for fast, slow in EMA_PAIRS:
        out[f"ema_{fast}_{slow}_spread"] = emas[fast] / emas[slow] - 1.0
    for window in ABOVE_SMA:
        out[f"close_above_sma_{window}"] = as_flag(close > smas[window], smas[window])
    for window in SMA_SLOPES:
        out[f"sma_{window}_slope_{SLOPE_BARS}"] = smas[window] / smas[window].shift(SLOPE_BARS) - 1.0
    for window in EMA_SLOPES:
        out[f"ema_{window}_slope_{SLOPE_BARS}"] = emas[window] / emas[window].shift(SLOPE_BARS) - 1.0
    out.update(_double_triple_ema(close, 20))
    out.update(_macd(close, emas[MACD_FAST], emas[MACD_SLOW]))
    out.update(_ichimoku(bars))
    return out


def _double_triple_ema(close: pd.Series, span: int) -> dict[str, pd.Series]:
    first = ema(close, span)
    second = ema(first, span)
    third = ema(second, span)
    dema = 2.0 * first - second
    tema = 3.0 * first - 3.0 * second + third
    return {f"dema_{span}_ratio": close / dema - 1.0, f"tema_{span}_ratio": close / tema - 1.0}


def _macd(close: pd.Series, fast: pd.Series, slow: pd.Series) -> dict[str, pd.Series]:
    """MACD line, signal and histogram divided by the close."""
    line = (fast - slow) / close
    signal = ema(line, MACD_SIGNAL)
    return {"macd_line": line, "macd_signal": signal, "macd_hist": line - signal}


def _ichimoku(bars: Bars) -> dict[str, pd.Series]:
    """Close relative to the Ichimoku mid-range lines (no forward-plotted or lagging span)."""

    def midpoint(window: int) -> pd.Series:
        return (bars.high.rolling(window).max() + bars.low.rolling(window).min()) / 2.0

    tenkan, kijun, span_b = midpoint(ICHIMOKU_TENKAN), midpoint(ICHIMOKU_KIJUN), midpoint(ICHIMOKU_SPAN_B)
    return {
        "ichimoku_tenkan_ratio": bars.close / tenkan - 1.0,
        "ichimoku_kijun_ratio": bars.close / kijun - 1.0,
        "ichimoku_span_b_ratio": bars.close / span_b - 1.0,
        "ichimoku_tenkan_kijun_spread": tenkan / kijun - 1.0,
    }
