"""Volume features: relative volume, breakouts, OBV, VPT, money flow, VWAP distance, volume-price links.

Cumulative series (OBV, VPT) depend on where the data starts, so only their
changes over a window (divided by the window's volume) and z-scores are used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from atb.features.primitives import Bars, as_flag, ema, rolling_correlation, rolling_zscore, safe_divide, sma

RATIO_WINDOWS = (5, 10, 20, 50)
AVERAGE_PAIRS = ((5, 20), (20, 50))
ZSCORE_WINDOWS = (20, 50)
BREAKOUT_WINDOW, BREAKOUT_MULTIPLE = 20, 2.0
OBV_CHANGE_WINDOWS = (5, 10, 20)
VPT_CHANGE_WINDOWS = (10, 20)
CMF_WINDOWS = (10, 20)
VWAP_WINDOWS = (20, 50)
FORCE_SPAN = 13
EASE_WINDOW = 14
CORRELATION_WINDOW = 20


def features(bars: Bars) -> dict[str, pd.Series]:
    volume, close = bars.volume, bars.close
    log_return = bars.log_return
    averages = {window: sma(volume, window) for window in RATIO_WINDOWS}
    out: dict[str, pd.Series] = {}
    for window, average in averages.items():
        # The window includes the current bar: a zero average means zero volume now too, a neutral ratio.
        out[f"ratio_sma_{window}"] = safe_divide(volume, average, fill=1.0)
    for short, long in AVERAGE_PAIRS:
        out[f"sma_{short}_{long}_ratio"] = safe_divide(averages[short], averages[long], fill=1.0)
    for window in ZSCORE_WINDOWS:
        out[f"zscore_{window}"] = rolling_zscore(volume, window)
    previous_high = volume.rolling(BREAKOUT_WINDOW).max().shift(1)
    out[f"breakout_{BREAKOUT_WINDOW}"] = as_flag(volume > previous_high, previous_high)
    surge_level = BREAKOUT_MULTIPLE * averages[BREAKOUT_WINDOW]
    out[f"surge_{BREAKOUT_WINDOW}"] = as_flag(volume > surge_level, surge_level)
    signed_volume = np.sign(log_return) * volume
    obv = signed_volume.cumsum()
    for window in OBV_CHANGE_WINDOWS:
        out[f"obv_change_{window}"] = _flow_share(signed_volume, volume, window)
    out["obv_zscore_20"] = rolling_zscore(obv, 20)
    price_volume = log_return * volume
    for window in VPT_CHANGE_WINDOWS:
        out[f"vpt_change_{window}"] = _flow_share(price_volume, volume, window)
    out["vpt_zscore_20"] = rolling_zscore(price_volume.cumsum(), 20)
    bar_range = bars.high - bars.low
    money_flow_multiplier = safe_divide((close - bars.low) - (bars.high - close), bar_range, fill=0.0)
    for window in CMF_WINDOWS:
        out[f"cmf_{window}"] = _flow_share(money_flow_multiplier * volume, volume, window)
    for window in VWAP_WINDOWS:
        traded, volume_sum = (bars.typical_price * volume).rolling(window).sum(), volume.rolling(window).sum()
        vwap = (traded / volume_sum).where(volume_sum > 0, sma(bars.typical_price, window))
        out[f"vwap_{window}_ratio"] = close / vwap - 1.0
    out[f"force_index_{FORCE_SPAN}"] = safe_divide(ema(price_volume, FORCE_SPAN), ema(volume, FORCE_SPAN), fill=0.0)
    out[f"ease_of_movement_{EASE_WINDOW}"] = _ease_of_movement(bars, out["ratio_sma_20"], EASE_WINDOW)
    up_volume = volume.where(log_return > 0, 0.0).where(log_return.notna())
    out["up_volume_share_20"] = _flow_share(up_volume, volume, 20)
    out[f"return_volume_corr_{CORRELATION_WINDOW}"] = rolling_correlation(
        log_return.abs(), out["ratio_sma_20"], CORRELATION_WINDOW
    )
    return out


def _flow_share(flow: pd.Series, volume: pd.Series, window: int) -> pd.Series:
    """Sum of a volume-weighted flow over the window divided by the window's volume; 0 without volume."""
    return safe_divide(flow.rolling(window).sum(), volume.rolling(window).sum(), fill=0.0)


def _ease_of_movement(bars: Bars, relative_volume: pd.Series, window: int) -> pd.Series:
    """Midpoint move times relative range per unit of relative volume, both scale-free, averaged."""
    midpoint = (bars.high + bars.low) / 2.0
    move = midpoint / midpoint.shift(1) - 1.0
    relative_range = (bars.high - bars.low) / bars.close
    per_bar = safe_divide(move * relative_range, relative_volume, fill=0.0)
    return sma(per_bar, window)

