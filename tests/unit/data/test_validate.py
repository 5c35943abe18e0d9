"""Every validation case names the source, where the problem is, and what it is."""

import numpy as np
import pandas as pd
import pytest

from atb.data.validate import DataValidationError, find_gaps, validate_ohlcv


def _frame(n=20, freq="1D"):
    index = pd.date_range("2024-01-01", periods=n, freq=freq, tz="UTC", name="timestamp")
    close = 100 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close, "volume": np.full(n, 5.0)},
        index=index,
    )


def _validate(frame, **kwargs):
    kwargs.setdefault("drop_partial_last_bar", False)
    return validate_ohlcv(frame, "src.csv", **kwargs)


def test_clean_frame_passes_unchanged():
    frame = _frame()
    out, report = _validate(frame)
    pd.testing.assert_frame_equal(out, frame)
    assert report.messages() == []


def test_duplicates():
    frame = _frame()
    frame = pd.concat([frame.iloc[:6], frame.iloc[5:]])
    with pytest.raises(DataValidationError, match=r"src\.csv: duplicate timestamp 2024-01-06 00:00:00\+00:00 at rows 6, 7"):
        _validate(frame)


def test_non_monotonic_time():
    frame = _frame()
    frame = frame.iloc[[0, 1, 3, 2, 4, 5, 6, 7]]
    with pytest.raises(DataValidationError, match=r"src\.csv: timestamps not increasing at row 4: 2024-01-03 .* after 2024-01-04"):
        _validate(frame)


def test_nan_in_part_of_a_row():
    frame = _frame()
    frame.iloc[7, 1] = np.nan
    with pytest.raises(DataValidationError, match=r"src\.csv: high is nan \(NaN or infinite\) at row 8 \(2024-01-08"):
        _validate(frame)


def test_infinite_value():
    frame = _frame()
    frame.iloc[4, 4] = np.inf
    with pytest.raises(DataValidationError, match=r"volume is inf .* at row 5 \(2024-01-05"):
        _validate(frame)


@pytest.mark.parametrize(
    "column, value, problem",
    [
        ("close", -1.0, "a non-positive price"),
        ("volume", -3.0, "a negative volume"),
        ("low", 200.0, "high below low"),
        ("open", 500.0, r"open outside \[low, high\]"),
        ("close", 90.0, r"close outside \[low, high\]"),
    ],
)
def test_price_consistency(column, value, problem):
    frame = _frame()
    frame.loc[frame.index[9], column] = value
    with pytest.raises(DataValidationError, match=rf"src\.csv: {problem} at row 10 \(2024-01-10"):
        _validate(frame)


def test_row_numbers_survive_dropped_empty_rows():
    frame = _frame()
    frame.iloc[2, :4] = np.nan  # an all-missing row, repaired
    frame.loc[frame.index[9], "low"] = 500.0
    with pytest.raises(DataValidationError, match=r"high below low at row 10 "):
        _validate(frame)


def test_off_grid_timestamp():
    frame = _frame()
    index = frame.index.tolist()
    index[5] = index[5] + pd.Timedelta(hours=3)
    frame.index = pd.DatetimeIndex(index, name="timestamp")
    with pytest.raises(DataValidationError, match=r"2024-01-06 03:00:00\+00:00 at row 6 is off the 1 days"):
        _validate(frame)


def test_gap_policies():
    frame = _frame().drop(index=_frame().index[[5, 6, 12]])
    gaps = find_gaps(frame.index, pd.Timedelta("1D"))
    assert [(g.after.day, g.before.day, g.missing_bars) for g in gaps] == [(5, 8, 2), (12, 14, 1)]

    with pytest.raises(DataValidationError, match=r"src\.csv: 2 gap\(s\) in the bars: 2024-01-05 .* -> 2024-01-08 .*\(2 bar\(s\)\).*'ffill'"):
        _validate(frame, gap_policy="error", bar_duration=pd.Timedelta("1D"))

    kept, report = _validate(frame, gap_policy="keep", bar_duration=pd.Timedelta("1D"))
    assert len(kept) == 17 and report.filled_bars == 0 and len(report.gaps) == 2

    filled, report = _validate(frame, gap_policy="ffill", bar_duration=pd.Timedelta("1D"))
    assert len(filled) == 20 and report.filled_bars == 3
    assert filled.loc["2024-01-06", "close"].item() == frame.loc["2024-01-05", "close"].item()
    assert "3 missing bar(s) filled forward" in " ".join(report.messages())


def test_partial_last_bar_with_a_clock():
    frame = _frame()
    now = frame.index[-1] + pd.Timedelta(hours=5)
    out, report = validate_ohlcv(frame, "binance", now=now)
    assert len(out) == 19
    assert report.partial_bar_dropped == frame.index[-1]
    assert "closes at 2024-01-21" in report.partial_bar_reason
    complete, report = validate_ohlcv(frame, "binance", now=frame.index[-1] + pd.Timedelta(days=1))
    assert len(complete) == 20 and report.partial_bar_dropped is None


def test_partial_last_bar_of_a_file_is_dropped_by_default():
    out, report = validate_ohlcv(_frame(), "src.csv")
    assert len(out) == 19
    assert "src.csv: last bar 2024-01-20 00:00:00+00:00 dropped as partial" in report.messages()[0]


def test_too_few_rows():
    with pytest.raises(DataValidationError, match=r"src\.csv: only 2 row\(s\)"):
        _validate(_frame(2))


def test_an_all_zero_volume_column_is_flagged():
    index = pd.date_range("2024-01-01", periods=50, freq="1D", tz="UTC", name="timestamp")
    candles = pd.DataFrame({"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 0.0}, index=index)
    _, report = validate_ohlcv(candles, "zero.csv", drop_partial_last_bar=False)
    assert any("zero.csv: volume is 0 on 50 of 50 bars" in line for line in report.messages())
