"""Calendar features of each bar's open time (UTC), as sine/cosine pairs so cycles wrap around.

A cycle is emitted only when bars are shorter than it (hour of day only for
intraday bars, day of week only below weekly bars ...): otherwise it would be
constant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from atb.features.primitives import Bars

DAY = pd.Timedelta(days=1)


def features(bars: Bars) -> dict[str, pd.Series]:
    index, duration = bars.index, bars.bar_duration
    utc = index.tz_convert("UTC")
    out: dict[str, pd.Series] = {}
    if duration < DAY:
        out.update(_cycle("hour", utc.hour + utc.minute / 60.0, 24.0, index))
    if duration < 7 * DAY:
        out.update(_cycle("day_of_week", utc.day_of_week, 7.0, index))
        out["is_weekend"] = pd.Series((utc.day_of_week >= 5).astype("float64"), index=index)
    if duration < 28 * DAY:
        out.update(_cycle("day_of_month", utc.day - 1, utc.days_in_month, index))
    if duration < 365 * DAY:
        out.update(_cycle("day_of_year", utc.day_of_year - 1, 365.25, index))
        out.update(_cycle("month", utc.month - 1, 12.0, index))
        out.update(_cycle("quarter", utc.quarter - 1, 4.0, index))
    return out


def _cycle(name: str, position: pd.Index, period: float | pd.Index, index: pd.DatetimeIndex) -> dict[str, pd.Series]:
    angle = 2.0 * np.pi * np.asarray(position, dtype="float64") / np.asarray(period, dtype="float64")
    return {f"{name}_sin": pd.Series(np.sin(angle), index=index), f"{name}_cos": pd.Series(np.cos(angle), index=index)}
