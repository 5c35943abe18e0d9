"""Reading candles: bundled sample, CSV/Parquet layouts, timestamp formats, errors."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fake_exchange import FakeBinance

from atb.config import DataSpec
from atb.data import DataSourceError, DataValidationError, load_candles, read_ohlcv_file, sample_path


def _frame(n=40, start="2024-01-01", freq="1D"):
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp").as_unit("ns")
    close = 100 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close, "volume": 10.0 + np.arange(n)},
        index=index,
    )


def test_bundled_sample_loads_without_network():
    candles = load_candles()
    frame = candles.frame
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(frame.index.tz) == "UTC" and frame.index.is_monotonic_increasing
    assert len(frame) > 2900
    assert candles.bar_duration == pd.Timedelta("1D")
    # the sample's last day is partial and is dropped by default
    assert candles.report.partial_bar_dropped == pd.Timestamp("2025-08-26", tz="UTC")
    assert frame.index[-1] == pd.Timestamp("2025-08-25", tz="UTC")


def test_keep_last_bar_keeps_it():
    assert load_candles(DataSpec(drop_partial_last_bar=False)).frame.index[-1] == pd.Timestamp("2025-08-26", tz="UTC")


def test_unknown_symbol_is_a_clear_error():
    with pytest.raises(DataSourceError, match=r"no bundled sample for symbol 'DOGEUSDT'.*--data"):
        sample_path("DOGEUSDT")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataSourceError, match=r"nope\.csv does not exist"):
        read_ohlcv_file(tmp_path / "nope.csv")


@pytest.mark.parametrize("unit", ["iso", "s", "ms"])
def test_timestamp_formats(tmp_path, unit):
    frame = _frame()
    out = frame.reset_index()
    if unit == "s":
        out["timestamp"] = out["timestamp"].astype("int64") // 10**9
    elif unit == "ms":
        out["timestamp"] = out["timestamp"].astype("int64") // 10**6
    else:
        out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    path = tmp_path / "candles.csv"
    out.to_csv(path, index=False)
    loaded = read_ohlcv_file(path)
    pd.testing.assert_frame_equal(loaded, frame, check_freq=False)


def test_parquet_and_case_insensitive_columns(tmp_path):
    frame = _frame()
    out = frame.reset_index().rename(columns=str.upper)
    path = tmp_path / "candles.parquet"
    out.to_parquet(path)
    pd.testing.assert_frame_equal(read_ohlcv_file(path), frame, check_freq=False)


def test_yahoo_csv_with_missing_rows_loads_with_a_report(tmp_path):
    frame = _frame(30)
    rows = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for i, (t, r) in enumerate(frame.iterrows()):
        if i in (10, 11, 20):
            rows.append(f"{t:%Y-%m-%d},null,null,null,null,null,null")
        else:
            rows.append(f"{t:%Y-%m-%d},{r.open},{r.high},{r.low},{r.close},{r.close},{r.volume}")
    path = tmp_path / "BTC-USD.csv"
    path.write_text("\n".join(rows) + "\n")

    candles = load_candles(DataSpec(data_path=path, drop_partial_last_bar=False))

    assert len(candles.frame) == 30
    assert candles.report.missing_value_rows == [frame.index[i] for i in (10, 11, 20)]
    assert candles.report.filled_bars == 3
    text = " ".join(candles.report.messages())
    assert "3 row(s) with all prices missing" in text and "2024-01-11" in text
    # filled bars carry the previous close and no volume
    assert candles.frame["close"].iloc[10] == frame["close"].iloc[9]
    assert candles.frame["volume"].iloc[10] == 0.0


def test_unsupported_extension_and_unreadable_file_are_clear_errors(tmp_path):
    path = tmp_path / "candles.json"
    path.write_text("{}")
    with pytest.raises(DataSourceError, match=r"candles\.json: unsupported extension '\.json'; use \.csv or \.parquet"):
        read_ohlcv_file(path)
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(DataSourceError, match=r"data file .*broken\.parquet could not be read"):
        read_ohlcv_file(path)


def test_unparsable_number_names_row_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    frame = _frame(5).reset_index()
    frame["close"] = frame["close"].astype(object)
    frame.loc[3, "close"] = "abc"
    frame.to_csv(path, index=False)
    with pytest.raises(DataSourceError, match=r"bad\.csv: close value 'abc' at row 4 is not a number"):
        read_ohlcv_file(path)


def test_missing_columns_are_listed(tmp_path):
    path = tmp_path / "cols.csv"
    _frame(5).reset_index().drop(columns=["volume"]).to_csv(path, index=False)
    with pytest.raises(DataSourceError, match=r"missing column\(s\) volume"):
        read_ohlcv_file(path)


def test_bad_timestamp_names_row(tmp_path):
    path = tmp_path / "ts.csv"
    frame = _frame(5).reset_index()
    frame["timestamp"] = frame["timestamp"].astype(str)
    frame.loc[2, "timestamp"] = "not a date"
    frame.to_csv(path, index=False)
    with pytest.raises(DataSourceError, match=r"timestamp 'not a date' at row 3"):
        read_ohlcv_file(path)


def test_exchange_candles_take_the_timeframe_as_bar_duration(tmp_path, monkeypatch):
    now = pd.Timestamp("2024-03-01 10:25", tz="UTC")
    with FakeBinance(now_ms=now.value // 1_000_000) as fake:
        monkeypatch.setattr("atb.data.exchange.create_client", lambda exchange: fake.client())
        candles = load_candles(DataSpec(exchange="binance", timeframe="15m", days=1, cache_dir=tmp_path), now=now)
    assert candles.bar_duration == pd.Timedelta(minutes=15)
    assert candles.source == "binance:BTCUSDT:15m"
    assert candles.frame.index[-1] == pd.Timestamp("2024-03-01 10:00", tz="UTC")
    assert len(candles.frame) == 96


def test_days_keeps_the_newest_span():
    frame = load_candles(DataSpec(days=100)).frame
    assert len(frame) == 100
    assert frame.index[-1] == pd.Timestamp("2025-08-25", tz="UTC")


def test_sample_is_packaged_file():
    assert Path(sample_path("btc/usdt")).name == "BTCUSDT_1d.csv"


def test_a_timeframe_given_with_a_file_is_checked_against_its_bars(tmp_path):
    path = tmp_path / "two_hourly.csv"
    _frame(n=60, freq="2h").to_csv(path)
    assert load_candles(DataSpec(data_path=path, timeframe="2h")).bar_duration == pd.Timedelta("2h")
    assert load_candles(DataSpec(data_path=path)).bar_duration == pd.Timedelta("2h")
    with pytest.raises(DataValidationError, match=r"two_hourly.csv: its bars are 0 days 02:00:00 apart but timeframe '1h'"):
        load_candles(DataSpec(data_path=path, timeframe="1h"))
