"""Where candles come from: the bundled sample, a CSV/Parquet file, or an exchange.

`load_candles` is the one public entry point: it reads the source, validates it
with the configured policy, keeps the requested span and returns the canonical
frame (UTC `timestamp` index of bar open times; float64 open, high, low, close,
volume) with its ValidationReport. Readers only read; validation decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from atb.config import DataSpec
from atb.data.validate import (
    OHLCV_COLUMNS,
    DataValidationError,
    ValidationReport,
    infer_bar_duration,
    raise_at_first_row,
    row_number,
    validate_ohlcv,
)
from atb.timeframes import TIMEFRAMES

SAMPLE_SYMBOLS = ("BTCUSDT",)
DEFAULT_EXCHANGE_TIMEFRAME = "1d"
_TIME_ALIASES = ("timestamp", "date", "datetime", "time", "open_time", "opentime")
_UNIX_SECONDS_MAX = 1e11  # below: seconds; above: milliseconds (1e11 s is the year 5138)


class DataSourceError(ValueError):
    """A source that cannot be read: missing file, unknown symbol, unreadable columns."""


@dataclass(frozen=True)
class Candles:
    """Validated candles and how they were obtained."""

    frame: pd.DataFrame
    report: ValidationReport
    symbol: str
    source: str

    @property
    def bar_duration(self) -> pd.Timedelta:
        return self.report.bar_duration


def sample_path(symbol: str) -> Path:
    """Path of a bundled sample file."""
    normalised = symbol.replace("/", "").replace("-", "").upper()
    if normalised not in SAMPLE_SYMBOLS:
        raise DataSourceError(
            f"no bundled sample for symbol {symbol!r}; bundled: {list(SAMPLE_SYMBOLS)}. "
            "Use a file (--data PATH) or an exchange (--exchange binance) for other symbols"
        )
    return Path(str(resources.files("atb.data") / "samples" / f"{normalised}_1d.csv"))


def read_ohlcv_file(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into the canonical column layout (unvalidated, order kept)."""
    path = Path(path)
    if path.is_dir():
        raise DataSourceError(f"data file {path} is a folder; give a CSV or Parquet file")
    if not path.is_file():
        raise DataSourceError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv", ".txt"):
        raise DataSourceError(f"data file {path}: unsupported extension {suffix!r}; use .csv or .parquet")
    try:  # pandas' default NA strings cover Yahoo's "null"
        raw = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise DataSourceError(f"data file {path} could not be read: {exc}") from exc
    return _canonical(raw, str(path))


def load_candles(spec: DataSpec | None = None, now: pd.Timestamp | None = None) -> Candles:
    """Read, validate and trim the candles `spec` names: the bundled sample, a file or an
    exchange (default: the bundled BTCUSDT sample). `now` is the clock that decides
    whether an exchange's last bar has closed."""
    spec = spec or DataSpec()
    bar_duration = None
    if spec.data_path is not None:
        source = str(spec.data_path)
        raw = read_ohlcv_file(spec.data_path)
    elif spec.exchange is not None:
        from atb.data.exchange import fetch_ohlcv

        timeframe = spec.timeframe or DEFAULT_EXCHANGE_TIMEFRAME
        source = f"{spec.exchange}:{spec.symbol}:{timeframe}"
        now = now if now is not None else pd.Timestamp.now(tz="UTC")
        raw = fetch_ohlcv(
            spec.symbol, timeframe=timeframe, days=spec.days or 365, exchange=spec.exchange, now=now, cache_dir=spec.cache_dir
        )
        bar_duration = TIMEFRAMES[timeframe]
    else:
        path = sample_path(spec.symbol)
        source = f"bundled sample {path.name}"
        raw = read_ohlcv_file(path)
    if bar_duration is None and spec.timeframe is not None:
        check_timeframe(raw, source, spec.timeframe)
    frame, report = validate_ohlcv(
        raw,
        source,
        bar_duration=bar_duration,
        gap_policy=spec.gap_policy,
        drop_partial_last_bar=spec.drop_partial_last_bar,
        now=now,
    )
    if spec.days is not None:
        frame = frame.loc[frame.index > frame.index[-1] - pd.Timedelta(days=spec.days)]
    return Candles(frame=frame, report=report, symbol=spec.symbol, source=source)


def check_timeframe(raw: pd.DataFrame, source: str, timeframe: str) -> None:
    """Refuse a file whose bars are not the `timeframe` the user named."""
    inferred = infer_bar_duration(raw.index.unique().sort_values(), source)
    if inferred != TIMEFRAMES[timeframe]:
        raise DataValidationError(
            f"{source}: its bars are {inferred} apart but timeframe {timeframe!r} ({TIMEFRAMES[timeframe]}) was given; "
            "leave --timeframe out (a file's bar size is inferred) or give a file of that bar size"
        )


def _canonical(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """Rename columns case-insensitively, parse timestamps, keep OHLCV as float64."""
    if raw.empty:
        raise DataSourceError(f"{source}: no rows")
    lower = {str(c).strip().lower(): c for c in raw.columns}
    time_column = next((lower[a] for a in _TIME_ALIASES if a in lower), None)
    if time_column is None and isinstance(raw.index, pd.DatetimeIndex):
        raw = raw.reset_index()
        time_column = raw.columns[0]
    missing = [c for c in OHLCV_COLUMNS if c not in lower]
    if time_column is None or missing:
        wanted = "a timestamp column (" + "/".join(_TIME_ALIASES) + ")" if time_column is None else ""
        names = ", ".join(filter(None, [wanted, ", ".join(missing)]))
        raise DataSourceError(f"{source}: missing column(s) {names}; found {list(raw.columns)}")
    index = parse_timestamps(raw[time_column], source)
    columns = {}
    for name in OHLCV_COLUMNS:
        values = pd.to_numeric(raw[lower[name]], errors="coerce")
        unparsable = values.isna() & raw[lower[name]].notna()
        raise_at_first_row(unparsable, raw[lower[name]], f"{source}: {name} value", "is not a number", DataSourceError)
        columns[name] = values.to_numpy(dtype=float)
    return pd.DataFrame(columns, index=index)


def parse_timestamps(values: pd.Series, source: str) -> pd.DatetimeIndex:
    """ISO strings, unix seconds or unix milliseconds -> UTC DatetimeIndex named timestamp."""
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype(float)
        missing = numbers.isna().to_numpy()
        if missing.any():
            raise DataSourceError(f"{source}: missing timestamp at row {row_number(np.argmax(missing))}")
        unit = "ms" if numbers.abs().max() > _UNIX_SECONDS_MAX else "s"
        parsed = pd.to_datetime(numbers, unit=unit, utc=True)
    else:
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
        raise_at_first_row(parsed.isna(), values, f"{source}: timestamp", "is not a date/time", DataSourceError)
    index = pd.DatetimeIndex(parsed, name="timestamp")
    return index.as_unit("ns")


__all__ = [
    "Candles",
    "DataSourceError",
    "DataValidationError",
    "load_candles",
    "read_ohlcv_file",
    "sample_path",
]
