"""Property: whatever a candle file holds, loading it (and `atb features` on it) either works or
fails with one line naming the file, never a traceback. Random malformed CSV and Parquet files
are generated from a valid one by hypothesis (bounded in examples and time)."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from atb.cli import app
from atb.config import DataSpec
from atb.data import load_candles

runner = CliRunner()
BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
CELLS = st.one_of(
    st.sampled_from(["", "nan", "inf", "-1", "0", "abc", "1e400", "null", "2024-13-45", "  ", "1,5", "0x10", "None"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=8),
)


def valid_frame(n: int = 40) -> pd.DataFrame:
    close = 100 + np.cumsum(np.random.default_rng(0).normal(0, 1, n))
    return pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=n, freq="1D").strftime("%Y-%m-%d"),
        "open": close, "high": close + 2, "low": close - 2, "close": close, "volume": np.full(n, 10.0),
    })


@st.composite
def malformed_csv(draw) -> bytes:
    frame = valid_frame().astype(object)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["cell", "drop_column", "rename", "swap_rows", "duplicate_row", "truncate", "extra_column", "drop_rows"]))
        if kind == "cell":
            frame.iat[draw(st.integers(0, len(frame) - 1)), draw(st.integers(0, len(frame.columns) - 1))] = draw(CELLS)
        elif kind == "drop_column" and len(frame.columns) > 1:
            frame = frame.drop(columns=draw(st.sampled_from(list(frame.columns))))
        elif kind == "rename":
            frame = frame.rename(columns={draw(st.sampled_from(list(frame.columns))): draw(st.text(max_size=6))})
        elif kind == "swap_rows" and len(frame) > 2:
            i, j = draw(st.integers(0, len(frame) - 1)), draw(st.integers(0, len(frame) - 1))
            frame.iloc[[i, j]] = frame.iloc[[j, i]].to_numpy()
        elif kind == "duplicate_row" and len(frame):
            frame = pd.concat([frame, frame.iloc[[draw(st.integers(0, len(frame) - 1))]]]).sort_index(kind="stable")
        elif kind == "extra_column":
            frame[draw(st.text(min_size=1, max_size=5))] = draw(CELLS)
        elif kind == "drop_rows":
            frame = frame.iloc[: draw(st.integers(0, len(frame)))]
    text = frame.to_csv(index=False)
    if draw(st.booleans()) and draw(st.booleans()):  # cut mid-line, or garbage bytes
        text = text[: draw(st.integers(0, len(text)))]
    data = text.encode()
    if draw(st.integers(0, 9)) == 0:
        data = draw(st.binary(max_size=200))
    return data


@st.composite
def malformed_parquet(draw) -> bytes:
    frame = valid_frame()
    column = draw(st.sampled_from(COLUMNS))
    kind = draw(st.sampled_from(["strings", "nulls", "drop", "ints", "bools", "negative"]))
    if kind == "strings":
        frame[column] = frame[column].astype(str) + draw(st.sampled_from(["", "x", " "]))
    elif kind == "nulls":
        frame[column] = frame[column].astype(object).where(np.arange(len(frame)) % draw(st.integers(2, 7)) != 0, None)
    elif kind == "drop":
        frame = frame.drop(columns=column)
    elif kind == "ints":
        frame[column] = np.arange(len(frame))
    elif kind == "bools":
        frame[column] = np.arange(len(frame)) % 2 == 0
    else:
        frame[column] = -1.0
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def check_loads_or_names_the_file(path: Path) -> None:
    try:
        load_candles(DataSpec(data_path=path, drop_partial_last_bar=False))
    except ValueError as exc:  # DataSourceError, DataValidationError
        message = str(exc)
        assert str(path) in message and "\n" not in message, message


@BOUNDED
@given(content=malformed_csv())
def test_a_malformed_csv_loads_or_fails_with_one_line_naming_it(tmp_path, content):
    path = tmp_path / "candles.csv"
    path.write_bytes(content)
    check_loads_or_names_the_file(path)


@BOUNDED
@given(content=malformed_parquet())
def test_a_malformed_parquet_loads_or_fails_with_one_line_naming_it(tmp_path, content):
    path = tmp_path / "candles.parquet"
    path.write_bytes(content)
    check_loads_or_names_the_file(path)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
@given(content=st.one_of(malformed_csv(), st.binary(max_size=100)))
def test_the_cli_never_shows_a_traceback_for_a_malformed_file(tmp_path, monkeypatch, content):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "candles.csv").write_bytes(content)
    result = runner.invoke(app, ["features", "--data", "candles.csv", "-o", "out.parquet"])
    assert result.exit_code in (0, 1), result.output
    if result.exit_code == 1:
        assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "candles.csv" in errors[0], result.output


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00garbage", b"timestamp,open\n"])
def test_classic_unreadable_files(tmp_path, content):
    path = tmp_path / "candles.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="candles.csv"):
        load_candles(DataSpec(data_path=path))
