"""Candle validation with an explicit policy.

Refused (DataValidationError naming the source, the row and the problem):
duplicate or non-increasing timestamps, timestamps off the bar grid, NaN/inf in
part of a row, non-positive prices, negative volume, high < low, open or close
outside [low, high], and gaps when the gap policy is "error".

Repaired and reported (ValidationReport): rows whose prices are all missing
(Yahoo's "null" rows) become missing bars; missing bars are filled forward
("ffill": OHLC = previous close, volume 0, as freqtrade does) or kept as they are
("keep"); a partial last bar is dropped unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
_MAX_LISTED = 5
ZERO_VOLUME_WARNING = 0.5  # share of bars with volume 0 above which the report warns


class DataValidationError(ValueError):
    """Candles that cannot be used; the message says where and what."""


@dataclass(frozen=True)
class Gap:
    """Bars missing between two present bars (exclusive)."""

    after: pd.Timestamp
    before: pd.Timestamp
    missing_bars: int


@dataclass
class ValidationReport:
    """What validation found and changed; shown to the user and stored with models."""

    source: str
    bar_duration: pd.Timedelta
    rows_in: int
    rows_out: int = 0
    missing_value_rows: list[pd.Timestamp] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    filled_bars: int = 0
    partial_bar_dropped: pd.Timestamp | None = None
    partial_bar_reason: str | None = None
    zero_volume_bars: int = 0  # of the bars as given (before any fill)

    def messages(self) -> list[str]:
        """Human-readable lines, one per finding."""
        lines = []
        if self.missing_value_rows:
            lines.append(
                f"{self.source}: {len(self.missing_value_rows)} row(s) with all prices missing treated as "
                f"missing bars: {_list_times(self.missing_value_rows)}"
            )
        if self.gaps:
            missing = sum(g.missing_bars for g in self.gaps)
            lines.append(f"{self.source}: {len(self.gaps)} gap(s), {missing} missing bar(s): {_list_gaps(self.gaps)}")
        if self.filled_bars:
            lines.append(f"{self.source}: {self.filled_bars} missing bar(s) filled forward (OHLC = previous close, volume 0)")
        if self.zero_volume_bars > ZERO_VOLUME_WARNING * self.rows_in:
            lines.append(
                f"{self.source}: volume is 0 on {self.zero_volume_bars} of {self.rows_in} bars: volume features carry "
                "little information; check the file's volume column"
            )
        if self.partial_bar_dropped is not None:
            lines.append(f"{self.source}: last bar {self.partial_bar_dropped} dropped as partial ({self.partial_bar_reason})")
        return lines

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "bar_duration": str(self.bar_duration),
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "missing_value_rows": [t.isoformat() for t in self.missing_value_rows],
            "gaps": [
                {"after": g.after.isoformat(), "before": g.before.isoformat(), "missing_bars": g.missing_bars}
                for g in self.gaps
            ],
            "filled_bars": self.filled_bars,
            "partial_bar_dropped": None if self.partial_bar_dropped is None else self.partial_bar_dropped.isoformat(),
            "partial_bar_reason": self.partial_bar_reason,
            "zero_volume_bars": self.zero_volume_bars,
        }


def infer_bar_duration(index: pd.DatetimeIndex, source: str) -> pd.Timedelta:
    """The most common step between bars."""
    if len(index) < 3:
        raise DataValidationError(f"{source}: only {len(index)} row(s); at least 3 bars are needed")
    steps = pd.Series(index[1:] - index[:-1])
    return steps.mode().iloc[0]


def validate_ohlcv(
    frame: pd.DataFrame,
    source: str,
    bar_duration: pd.Timedelta | None = None,
    gap_policy: str = "ffill",
    drop_partial_last_bar: bool = True,
    now: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, ValidationReport]:
    """Check a canonical OHLCV frame (UTC index `timestamp`, float columns) and apply the policy."""
    _check_order(frame, source)
    bar_duration = bar_duration or infer_bar_duration(frame.index, source)
    report = ValidationReport(source=source, bar_duration=bar_duration, rows_in=len(frame))

    rows = np.arange(1, len(frame) + 1)  # row numbers as the user counts them, kept through filtering
    empty = frame[list(PRICE_COLUMNS)].isna().all(axis=1).to_numpy()
    report.missing_value_rows = list(frame.index[empty])
    frame, rows = frame.loc[~empty], rows[~empty]
    _check_values(frame, rows, source)
    report.zero_volume_bars = int((frame["volume"] == 0).sum())
    _check_grid(frame.index, rows, bar_duration, source)

    if drop_partial_last_bar:
        reason = _partial_reason(frame, bar_duration, now)
        if reason is not None:
            report.partial_bar_dropped = frame.index[-1]
            report.partial_bar_reason = reason
            frame = frame.iloc[:-1]

    report.gaps = find_gaps(frame.index, bar_duration)
    if report.gaps and gap_policy == "error":
        raise DataValidationError(
            f"{source}: {len(report.gaps)} gap(s) in the bars: {_list_gaps(report.gaps)}; "
            "choose gap_policy 'ffill' (fill forward) or 'keep'"
        )
    if report.gaps and gap_policy == "ffill":
        frame, report.filled_bars = _fill_forward(frame, bar_duration)
    report.rows_out = len(frame)
    return frame, report


def find_gaps(index: pd.DatetimeIndex, bar_duration: pd.Timedelta) -> list[Gap]:
    steps = index[1:] - index[:-1]
    where = np.flatnonzero(steps > bar_duration)
    return [Gap(index[i], index[i + 1], int(steps[i] / bar_duration) - 1) for i in where]


def _check_order(frame: pd.DataFrame, source: str) -> None:
    index = frame.index
    duplicated = index.duplicated(keep=False)
    if duplicated.any():
        rows = np.flatnonzero(duplicated)
        raise DataValidationError(
            f"{source}: duplicate timestamp {index[rows[0]]} at rows {_rows(rows[:_MAX_LISTED])}"
            f" ({int(duplicated.sum())} duplicated rows in all)"
        )
    steps = index[1:] - index[:-1]
    backwards = np.flatnonzero(steps <= pd.Timedelta(0))
    if len(backwards):
        i = backwards[0] + 1
        raise DataValidationError(
            f"{source}: timestamps not increasing at row {row_number(i)}: {index[i]} comes after {index[i - 1]}"
        )


def _check_values(frame: pd.DataFrame, rows: np.ndarray, source: str) -> None:
    values = frame[list(OHLCV_COLUMNS)]
    bad = ~np.isfinite(values.to_numpy(dtype=float))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataValidationError(
            f"{source}: {OHLCV_COLUMNS[col]} is {values.iat[row, col]} (NaN or infinite) at row {rows[row]} ({frame.index[row]})"
        )
    checks = [
        *sign_problems(values),
        (values["high"] < values["low"], "high below low"),
        ((values["open"] > values["high"]) | (values["open"] < values["low"]), "open outside [low, high]"),
        ((values["close"] > values["high"]) | (values["close"] < values["low"]), "close outside [low, high]"),
    ]
    for mask, problem in checks:
        failing = np.flatnonzero(mask.to_numpy())
        if len(failing):
            row = failing[0]
            ohlcv = ", ".join(f"{c}={values.iat[row, i]:g}" for i, c in enumerate(OHLCV_COLUMNS))
            more = f" ({len(failing)} rows in all)" if len(failing) > 1 else ""
            raise DataValidationError(f"{source}: {problem} at row {rows[row]} ({frame.index[row]}) ({ohlcv}){more}")


def sign_problems(values: pd.DataFrame) -> list[tuple[pd.Series, str]]:
    """(row mask, problem) for a non-positive price and for a negative volume; `values` holds finite OHLCV."""
    return [
        ((values[list(PRICE_COLUMNS)] <= 0).any(axis=1), "a non-positive price"),
        (values["volume"] < 0, "a negative volume"),
    ]


def _check_grid(index: pd.DatetimeIndex, rows: np.ndarray, bar_duration: pd.Timedelta, source: str) -> None:
    offsets = (index - index[0]) % bar_duration
    off = np.flatnonzero(offsets != pd.Timedelta(0))
    if len(off):
        i = off[0]
        raise DataValidationError(
            f"{source}: timestamp {index[i]} at row {rows[i]} is off the {bar_duration} bar grid started at {index[0]}"
        )


def _partial_reason(frame: pd.DataFrame, bar_duration: pd.Timedelta, now: pd.Timestamp | None) -> str | None:
    """Why the last bar is treated as incomplete, or None.

    With a clock (`now`, exchange data) the rule is exact: a bar closing after
    now is still forming. A file cannot show whether its last bar had closed when
    it was saved (the bundled sample's last day is partial), so without a clock
    the last bar is dropped; `drop_partial_last_bar=False` keeps it.
    """
    last = frame.index[-1]
    if now is None:
        return "a file cannot show whether its last bar had closed when it was saved; keep it with --keep-last-bar"
    if last + bar_duration > now:
        return f"it closes at {last + bar_duration}, after now ({now})"
    return None


def _fill_forward(frame: pd.DataFrame, bar_duration: pd.Timedelta) -> tuple[pd.DataFrame, int]:
    full_index = pd.date_range(frame.index[0], frame.index[-1], freq=bar_duration, name=frame.index.name)
    filled = frame.reindex(full_index)
    missing = filled["close"].isna()
    previous_close = filled["close"].ffill()
    for column in PRICE_COLUMNS:
        filled[column] = filled[column].fillna(previous_close)
    filled["volume"] = filled["volume"].fillna(0.0)
    return filled, int(missing.sum())


def row_number(position: int) -> int:
    """Data row number as a user counts it (1-based, header not counted)."""
    return int(position) + 1


def raise_at_first_row(mask, values: pd.Series, head: str, problem: str, error: type[ValueError] = ValueError) -> None:
    """Raise `error` for the first row flagged in `mask`: "<head> <value!r> at row <n> <problem>"."""
    flagged = np.flatnonzero(np.asarray(mask))
    if len(flagged):
        position = flagged[0]
        raise error(f"{head} {values.iloc[position]!r} at row {row_number(position)} {problem}")


def _rows(positions) -> str:
    return ", ".join(str(row_number(p)) for p in positions)


def _list_times(times: list[pd.Timestamp]) -> str:
    shown = ", ".join(str(t) for t in times[:_MAX_LISTED])
    return shown + (f" and {len(times) - _MAX_LISTED} more" if len(times) > _MAX_LISTED else "")


def _list_gaps(gaps: list[Gap]) -> str:
    shown = "; ".join(f"{g.after} -> {g.before} ({g.missing_bars} bar(s))" for g in gaps[:_MAX_LISTED])
    return shown + (f"; and {len(gaps) - _MAX_LISTED} more" if len(gaps) > _MAX_LISTED else "")
