"""Momentum oscillators: RSI, stochastics, Williams %R, ROC, CCI, MFI, ADX, Aroon and friends."""

from __future__ import annotations

import pandas as pd

from atb.features.primitives import (
    Bars,
    bars_since_max,
    bars_since_min,
    directional_indicators,
    ema,
    range_position,
    rolling_mean_abs_deviation,
    rsi,
    safe_divide,
    sma,
)

RSI_WINDOWS = (7, 14, 21)
STOCHASTIC_WINDOW, STOCHASTIC_SMOOTHING = 14, 3
WILLIAMS_WINDOWS = (10, 28)
ROC_WINDOWS = (5, 10, 20)
CCI_WINDOWS = (20, 40)
MFI_WINDOW = 14
ADX_WINDOW = 14
AROON_WINDOW = 25
CMO_WINDOW = 14
TRIX_SPAN = 15
ELDER_SPAN = 13
RSI_SLOPE_BARS = 5


def features(bars: Bars) -> dict[str, pd.Series]:
    close = bars.close
    out: dict[str, pd.Series] = {}
    rsis = {window: rsi(close, window) for window in RSI_WINDOWS}
    for window, values in rsis.items():
        out[f"rsi_{window}"] = values
    out["rsi_14_change_5"] = rsis[14] - rsis[14].shift(RSI_SLOPE_BARS)
    out["stoch_rsi_14"] = range_position(rsis[14], rsis[14], rsis[14], 14)
    stochastic_k = 100.0 * range_position(close, bars.low, bars.high, STOCHASTIC_WINDOW)
    out[f"stoch_k_{STOCHASTIC_WINDOW}"] = stochastic_k
    out[f"stoch_d_{STOCHASTIC_WINDOW}"] = sma(stochastic_k, STOCHASTIC_SMOOTHING)
    for window in WILLIAMS_WINDOWS:
        out[f"williams_r_{window}"] = 100.0 * range_position(close, bars.low, bars.high, window) - 100.0
    for window in ROC_WINDOWS:
        out[f"roc_{window}"] = 100.0 * (close / close.shift(window) - 1.0)
    for window in CCI_WINDOWS:
        out[f"cci_{window}"] = _cci(bars.typical_price, window)
    out[f"mfi_{MFI_WINDOW}"] = _money_flow_index(bars, MFI_WINDOW)
    plus_di, minus_di, adx = directional_indicators(bars, ADX_WINDOW)
    out[f"plus_di_{ADX_WINDOW}"] = plus_di
    out[f"minus_di_{ADX_WINDOW}"] = minus_di
    out[f"adx_{ADX_WINDOW}"] = adx
    aroon_bars = AROON_WINDOW + 1  # the current bar and the `AROON_WINDOW` before it
    out[f"aroon_up_{AROON_WINDOW}"] = 100.0 * (1.0 - bars_since_max(bars.high, aroon_bars) / AROON_WINDOW)
    out[f"aroon_down_{AROON_WINDOW}"] = 100.0 * (1.0 - bars_since_min(bars.low, aroon_bars) / AROON_WINDOW)
    out[f"cmo_{CMO_WINDOW}"] = _chande_momentum(close, CMO_WINDOW)
    out["ultimate_oscillator"] = _ultimate_oscillator(bars)
    out["tsi"] = _true_strength_index(close)
    out["awesome_oscillator"] = _awesome_oscillator(bars)
    out[f"trix_{TRIX_SPAN}"] = _trix(close, TRIX_SPAN)
    elder_base = ema(close, ELDER_SPAN)
    out["elder_bull_power"] = (bars.high - elder_base) / close
    out["elder_bear_power"] = (bars.low - elder_base) / close
    return out


def _cci(typical_price: pd.Series, window: int) -> pd.Series:
    deviation = rolling_mean_abs_deviation(typical_price, window)
    return safe_divide(typical_price - sma(typical_price, window), 0.015 * deviation, fill=0.0)


def _money_flow_index(bars: Bars, window: int) -> pd.Series:
    typical = bars.typical_price
    flow = typical * bars.volume
    change = typical.diff()
    positive = flow.where(change > 0, 0.0).where(change.notna()).rolling(window).sum()
    negative = flow.where(change < 0, 0.0).where(change.notna()).rolling(window).sum()
    return safe_divide(100.0 * positive, positive + negative, fill=50.0)


def _chande_momentum(close: pd.Series, window: int) -> pd.Series:
    change = close.diff()
    up = change.clip(lower=0.0).rolling(window).sum()
    down = (-change).clip(lower=0.0).rolling(window).sum()
    return safe_divide(100.0 * (up - down), up + down, fill=0.0)


def _ultimate_oscillator(bars: Bars) -> pd.Series:
    previous_close = bars.close.shift(1)
    buying_pressure = bars.close - pd.concat([bars.low, previous_close], axis=1).min(axis=1, skipna=False)
    true_range = bars.true_range
    averages = [
        safe_divide(buying_pressure.rolling(w).sum(), true_range.rolling(w).sum(), fill=0.5) for w in (7, 14, 28)
    ]
    return 100.0 * (4.0 * averages[0] + 2.0 * averages[1] + averages[2]) / 7.0


def _true_strength_index(close: pd.Series, long: int = 25, short: int = 13) -> pd.Series:
    change = close.diff()
    smoothed = ema(ema(change, long), short)
    smoothed_abs = ema(ema(change.abs(), long), short)
    return safe_divide(100.0 * smoothed, smoothed_abs, fill=0.0)


def _awesome_oscillator(bars: Bars) -> pd.Series:
    median = (bars.high + bars.low) / 2.0
    return (sma(median, 5) - sma(median, 34)) / bars.close


def _trix(close: pd.Series, span: int) -> pd.Series:
    triple = ema(ema(ema(close, span), span), span)
    return 100.0 * (triple / triple.shift(1) - 1.0)
