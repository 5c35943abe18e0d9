"""Perpetual-futures funding rates as exogenous features, aligned to bars without look-ahead.

A bar opening at t closes at t + bar_duration; its features use only funding
events timestamped strictly before that close (an event exactly at the close is
not yet known). Event timestamps need not sit on the 8-hour mark
(``16:00:00.010`` is common). Bars before the first usable event, or whose
latest event is older than ``max_age``, get NaN; the dataset builder drops
rows holding NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from atb.data.validate import raise_at_first_row
from atb.features.categories import prefixed
from atb.features.primitives import safe_divide

MEAN_WINDOWS = (3, 9, 21)  # events: 1, 3 and 7 days of 8-hour funding
ZSCORE_WINDOW = 90  # events: 30 days
POSITIVE_SHARE_WINDOW = 21
DEFAULT_MAX_AGE = pd.Timedelta(hours=24)
_COLUMNS = ("timestamp", "funding_rate")


def load_funding(path: str | Path) -> pd.Series:
    """Read a `timestamp,funding_rate` CSV into a float Series on a sorted UTC DatetimeIndex.

    Naive timestamps are taken as UTC. Raises FileNotFoundError for a missing
    file and ValueError naming the file and data row (1-based, header not
    counted) for a missing column, an unparsable value or a duplicate time.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"funding file {path} does not exist")
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in _COLUMNS if column not in raw.columns]
    if missing:
        raise ValueError(f"funding file {path}: missing column(s) {missing}; found {list(raw.columns)}")
    times = pd.to_datetime(raw["timestamp"].str.strip(), utc=True, errors="coerce", format="ISO8601")
    context = f"funding file {path}"
    raise_at_first_row(times.isna(), raw["timestamp"], f"{context}: timestamp", "is not a date/time")
    rates = pd.to_numeric(raw["funding_rate"].str.strip(), errors="coerce")
    raise_at_first_row(~np.isfinite(rates), raw["funding_rate"], f"{context}: funding_rate", "is not a finite number")
    series = pd.Series(rates.to_numpy(dtype="float64"), index=pd.DatetimeIndex(times, name="timestamp"))
    raise_at_first_row(series.index.duplicated(), raw["timestamp"], f"{context}: timestamp", "is a duplicate")
    return series.sort_index().rename("funding_rate")


def funding_features(
    funding: pd.Series,
    bar_index: pd.DatetimeIndex,
    bar_duration: pd.Timedelta,
    max_age: pd.Timedelta = DEFAULT_MAX_AGE,
) -> pd.DataFrame:
    """Funding features per bar (columns `funding_*`), from events strictly before each bar's close.

    Per-event statistics (rolling over events, each from that event and earlier
    ones) are computed first, then every bar takes the row of the latest event
    with time < close time and time >= close time - max_age.
    """
    events = _checked_events(funding)
    if not isinstance(bar_index, pd.DatetimeIndex) or bar_index.tz is None:
        raise TypeError("bar_index must be a timezone-aware pandas DatetimeIndex")
    if bar_duration <= pd.Timedelta(0) or max_age <= pd.Timedelta(0):
        raise ValueError(f"bar_duration and max_age must be positive; got {bar_duration} and {max_age}")
    per_event = _event_statistics(events)
    close_time = (bar_index.tz_convert("UTC") + bar_duration).as_unit("ns")
    aligned = pd.merge_asof(
        pd.DataFrame({"close_time": close_time}),
        per_event.rename_axis("event_time").reset_index(),
        left_on="close_time",
        right_on="event_time",
        direction="backward",
        allow_exact_matches=False,
        tolerance=max_age,
    )
    return aligned[list(per_event.columns)].set_axis(bar_index, axis=0).astype("float64")


def _event_statistics(events: pd.Series) -> pd.DataFrame:
    """Statistics at each event over the events up to and including it (partial windows allowed)."""
    out = {"rate": events}
    for window in MEAN_WINDOWS:
        out[f"mean_{window}"] = events.rolling(window, min_periods=1).mean()
    zscore_window = events.rolling(ZSCORE_WINDOW, min_periods=1)
    out[f"zscore_{ZSCORE_WINDOW}"] = safe_divide(events - zscore_window.mean(), zscore_window.std(ddof=0), fill=0.0)
    positive = (events > 0).astype("float64")
    out[f"positive_share_{POSITIVE_SHARE_WINDOW}"] = positive.rolling(POSITIVE_SHARE_WINDOW, min_periods=1).mean()
    frame = pd.DataFrame(out)
    frame.columns = [prefixed("exogenous", name) for name in frame.columns]
    return frame


def _checked_events(funding: pd.Series) -> pd.Series:
    if not isinstance(funding, pd.Series) or not isinstance(funding.index, pd.DatetimeIndex):
        raise TypeError("funding must be a pandas Series on a DatetimeIndex (see load_funding)")
    if funding.index.tz is None:
        raise ValueError("funding timestamps must be timezone-aware (UTC)")
    if funding.empty:
        raise ValueError("funding holds no events")
    values = funding.to_numpy(dtype="float64")
    if not np.isfinite(values).all():
        first = funding.index[np.flatnonzero(~np.isfinite(values))[0]]
        raise ValueError(f"funding rate at {first} is NaN or infinite")
    if funding.index.duplicated().any():
        first = funding.index[funding.index.duplicated()][0]
        raise ValueError(f"funding has more than one event at {first}")
    index = funding.index.tz_convert("UTC").as_unit("ns")
    return pd.Series(values, index=index).sort_index()
