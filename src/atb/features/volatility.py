"""Volatility features: realised and range-based estimators, ATR, Bollinger, Keltner and Donchian channels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atb.features.primitives import Bars, average_true_range, ema, safe_divide, sma

RETURN_STD_WINDOWS = (5, 10, 20, 30, 60)
RANGE_ESTIMATOR_WINDOWS = (10, 20)
ATR_WINDOWS = (7, 14, 28)
BOLLINGER_WINDOWS, BOLLINGER_WIDTH = (20, 40), 2.0
KELTNER_SPAN, KELTNER_ATR, KELTNER_WIDTH = 20, 10, 2.0
DONCHIAN_WINDOWS = (20, 55)
STD_RATIOS = ((5, 20), (20, 60))
SEMIDEVIATION_WINDOW = 20
RISKMETRICS_ALPHA = 0.06  # lambda = 0.94
CHAIKIN_SPAN = 10
ULCER_WINDOW = 14
VOL_OF_VOL_WINDOW = 20


def features(bars: Bars) -> dict[str, pd.Series]:
    close, log_return = bars.close, bars.log_return
    out: dict[str, pd.Series] = {}
    stds = {window: log_return.rolling(window).std() for window in RETURN_STD_WINDOWS}
    for window, values in stds.items():
        out[f"return_std_{window}"] = values
    for short, long in STD_RATIOS:
        out[f"return_std_{short}_{long}_ratio"] = safe_divide(stds[short], stds[long], fill=1.0)
    out[f"vol_of_vol_{VOL_OF_VOL_WINDOW}"] = _coefficient_of_variation(stds[5], VOL_OF_VOL_WINDOW)
    out["riskmetrics_vol"] = np.sqrt(
        (log_return**2).ewm(alpha=RISKMETRICS_ALPHA, adjust=False, min_periods=20).mean()
    )
    downside = log_return.clip(upper=0.0) ** 2
    upside = log_return.clip(lower=0.0) ** 2
    out[f"downside_dev_{SEMIDEVIATION_WINDOW}"] = np.sqrt(downside.rolling(SEMIDEVIATION_WINDOW).mean())
    out[f"upside_dev_{SEMIDEVIATION_WINDOW}"] = np.sqrt(upside.rolling(SEMIDEVIATION_WINDOW).mean())
    for window in RANGE_ESTIMATOR_WINDOWS:
        out[f"parkinson_{window}"] = _parkinson(bars, window)
        out[f"garman_klass_{window}"] = _garman_klass(bars, window)
    out["rogers_satchell_20"] = _rogers_satchell(bars, 20)
    atrs = {window: average_true_range(bars, window) for window in ATR_WINDOWS}
    for window, values in atrs.items():
        out[f"atr_{window}_norm"] = values / close
    out["true_range_to_atr_14"] = safe_divide(bars.true_range, atrs[14], fill=1.0)
    for window in BOLLINGER_WINDOWS:
        middle, spread = sma(close, window), BOLLINGER_WIDTH * close.rolling(window).std()
        out[f"bollinger_width_{window}"] = 2.0 * spread / middle
        out[f"bollinger_pctb_{window}"] = safe_divide(close - (middle - spread), 2.0 * spread, fill=0.5)
    keltner_middle = ema(close, KELTNER_SPAN)
    keltner_spread = KELTNER_WIDTH * average_true_range(bars, KELTNER_ATR)
    out["keltner_position"] = safe_divide(close - (keltner_middle - keltner_spread), 2.0 * keltner_spread, fill=0.5)
    out["keltner_width"] = 2.0 * keltner_spread / keltner_middle
    for window in DONCHIAN_WINDOWS:
        out[f"donchian_width_{window}"] = (bars.high.rolling(window).max() - bars.low.rolling(window).min()) / close
    out["donchian_breakout_20"] = _channel_breakout(bars, 20)
    range_ema = ema(bars.high - bars.low, CHAIKIN_SPAN)
    out[f"chaikin_volatility_{CHAIKIN_SPAN}"] = safe_divide(range_ema, range_ema.shift(CHAIKIN_SPAN), fill=1.0) - 1.0
    out[f"ulcer_index_{ULCER_WINDOW}"] = _ulcer_index(close, ULCER_WINDOW)
    return out


def _channel_breakout(bars: Bars, window: int) -> pd.Series:
    """Close against the channel of the `window` bars before it: above 1 or below 0 is a breakout."""
    highest = bars.high.rolling(window).max().shift(1)
    lowest = bars.low.rolling(window).min().shift(1)
    return safe_divide(bars.close - lowest, highest - lowest, fill=0.5)


def _coefficient_of_variation(values: pd.Series, window: int) -> pd.Series:
    rolling = values.rolling(window)
    return safe_divide(rolling.std(), rolling.mean(), fill=0.0)


def _parkinson(bars: Bars, window: int) -> pd.Series:
    squared_range = np.log(bars.high / bars.low) ** 2
    return np.sqrt(squared_range.rolling(window).mean() / (4.0 * np.log(2.0)))


def _garman_klass(bars: Bars, window: int) -> pd.Series:
    per_bar = 0.5 * np.log(bars.high / bars.low) ** 2 - (2.0 * np.log(2.0) - 1.0) * np.log(bars.close / bars.open) ** 2
    return np.sqrt(per_bar.rolling(window).mean().clip(lower=0.0))


def _rogers_satchell(bars: Bars, window: int) -> pd.Series:
    per_bar = np.log(bars.high / bars.close) * np.log(bars.high / bars.open) + np.log(bars.low / bars.close) * np.log(
        bars.low / bars.open
    )
    return np.sqrt(per_bar.rolling(window).mean().clip(lower=0.0))


def _ulcer_index(close: pd.Series, window: int) -> pd.Series:
    drawdown = 100.0 * (close / close.rolling(window).max() - 1.0)
    return np.sqrt((drawdown**2).rolling(window).mean())
