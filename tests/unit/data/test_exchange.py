"""fetch_ohlcv against a real ccxt.binance talking to a local fake Binance API."""

from __future__ import annotations

import ccxt
import numpy as np
import pandas as pd
import pytest
from fake_exchange import DROP, INVALID_SYMBOL, FakeBinance, candle

from atb.data.exchange import (
    ExchangeDataError,
    cache_path,
    create_client,
    fetch_ohlcv,
    normalize_symbol,
)

HOUR_MS = 3_600_000
NOW = pd.Timestamp("2024-03-01 10:25", tz="UTC")  # inside the 10:00 hourly bar
NOW_MS = NOW.value // 1_000_000


class SleepRecorder:
    def __init__(self):
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def server():
    with FakeBinance(now_ms=NOW_MS, max_limit=500) as fake:
        yield fake


def fetch(server: FakeBinance, cache_dir, **overrides) -> pd.DataFrame:
    arguments = dict(timeframe="1h", days=60, cache_dir=cache_dir, now=NOW, sleep=SleepRecorder())
    arguments.update(overrides)
    arguments.setdefault("client", server.client())
    return fetch_ohlcv("BTCUSDT", **arguments)


def expected_bars(start: pd.Timestamp, end: pd.Timestamp, bar_ms: int = HOUR_MS) -> pd.DataFrame:
    """The fake exchange's closed bars with open time in [start, end)."""
    opens = range(start.value // 1_000_000, end.value // 1_000_000, bar_ms)
    index = pd.DatetimeIndex(pd.to_datetime(list(opens), unit="ms", utc=True), name="timestamp").as_unit("ns")
    columns = ["open", "high", "low", "close", "volume"]
    return pd.DataFrame([candle(t, bar_ms) for t in opens], index=index, columns=columns)


@pytest.mark.parametrize("text", ["BTCUSDT", "btcusdt", "BTC/USDT", "BTC-USDT", "btc_usdt", " BTCUSDT"])
def test_symbol_spellings_normalise_to_the_unified_symbol(text):
    assert normalize_symbol(text) == "BTC/USDT"


@pytest.mark.parametrize(
    ("text", "unified"),
    [("ETHBTC", "ETH/BTC"), ("SOLFDUSD", "SOL/FDUSD"), ("BTCTRY", "BTC/TRY"), ("BTCUSD", "BTC/USD")],
)
def test_symbols_split_at_the_longest_known_quote(text, unified):
    assert normalize_symbol(text) == unified


@pytest.mark.parametrize("text", ["XYZABC", "USDT", "BTC/", "A/B/C"])
def test_unreadable_symbols_are_refused(text):
    with pytest.raises(ValueError, match="symbol"):
        normalize_symbol(text)


def test_cache_path_layout(tmp_path):
    assert cache_path(tmp_path, "binance", "btc/usdt", "4h") == tmp_path / "binance" / "BTCUSDT" / "4h.parquet"


def test_unknown_exchange_id_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match=r"unknown exchange 'binanse'.*binance"):
        fetch_ohlcv("BTCUSDT", exchange="binanse", cache_dir=tmp_path)


def test_built_client_uses_ccxt_rate_limiter():
    client = create_client("binance")
    assert isinstance(client, ccxt.binance)
    assert client.enableRateLimit is True


def test_client_of_another_exchange_is_refused(server, tmp_path):
    with pytest.raises(ValueError, match="'binance' but exchange='kraken'"):
        fetch(server, tmp_path, exchange="kraken")
    assert server.requests == []


@pytest.mark.parametrize("timeframe", ["7m", "1w", "1s"])
def test_unsupported_timeframe_is_refused_before_any_request(server, tmp_path, timeframe):
    with pytest.raises(ValueError, match=f"timeframe '{timeframe}'.*1m"):
        fetch(server, tmp_path, timeframe=timeframe)
    assert server.requests == []


def test_timeframe_the_exchange_lacks_is_refused(server, tmp_path):
    client = server.client()
    del client.timeframes["4h"]
    with pytest.raises(ValueError, match="binance does not offer timeframe '4h'"):
        fetch(server, tmp_path, timeframe="4h", client=client)


def test_unlisted_market_names_exchange_and_symbol(server, tmp_path):
    with pytest.raises(ValueError, match=r"binance does not list market 'DOGE/USDT' \(from 'DOGEUSDT'\)"):
        fetch_ohlcv("DOGEUSDT", cache_dir=tmp_path, client=server.client(), now=NOW)
    assert server.kline_starts() == []


def test_naive_now_is_refused(server, tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        fetch(server, tmp_path, now=pd.Timestamp("2024-03-01"))


def test_pages_cover_the_span_with_every_closed_bar_once(server, tmp_path):
    frame = fetch(server, tmp_path)

    end = pd.Timestamp("2024-03-01 10:00", tz="UTC")
    start = end - pd.Timedelta(days=60)
    pd.testing.assert_frame_equal(frame, expected_bars(start, end))
    assert len(frame) == 60 * 24
    start_ms = start.value // 1_000_000
    assert server.kline_starts() == [start_ms, start_ms + 500 * HOUR_MS, start_ms + 1000 * HOUR_MS]


def test_repeated_bars_are_kept_once(tmp_path):
    with FakeBinance(now_ms=NOW_MS, max_limit=100, repeat_first_bar=True) as fake:
        frame = fetch(fake, tmp_path, days=20)

    end = pd.Timestamp("2024-03-01 10:00", tz="UTC")
    pd.testing.assert_frame_equal(frame, expected_bars(end - pd.Timedelta(days=20), end))


def test_result_is_the_canonical_frame(server, tmp_path):
    frame = fetch(server, tmp_path, days=3)

    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC"
    assert frame.index.name == "timestamp"
    assert frame.index.is_monotonic_increasing and frame.index.is_unique


@pytest.mark.parametrize(
    ("now", "last_closed"),
    [
        (NOW, "2024-03-01 09:00"),
        (pd.Timestamp("2024-03-01 10:00", tz="UTC"), "2024-03-01 09:00"),  # the 10:00 bar has only just opened
        (pd.Timestamp("2024-03-01 10:59:59.999", tz="UTC"), "2024-03-01 09:00"),
    ],
)
def test_bar_still_forming_at_now_is_left_out(server, tmp_path, now, last_closed):
    frame = fetch(server, tmp_path, days=2, now=now)

    assert frame.index[-1] == pd.Timestamp(last_closed, tz="UTC")
    assert len(frame) == 48


def test_daily_bars_end_at_the_day_before_now(server, tmp_path):
    frame = fetch(server, tmp_path, timeframe="1d", days=30)

    assert frame.index[-1] == pd.Timestamp("2024-02-29", tz="UTC")
    assert frame.index[0] == pd.Timestamp("2024-01-31", tz="UTC")


def test_transient_failures_are_retried_with_growing_delays(server, tmp_path):
    sleep = SleepRecorder()
    server.fail_next(429, 503, DROP)

    frame = fetch(server, tmp_path, days=2, sleep=sleep)

    assert sleep.delays == [1.0, 2.0, 4.0]
    pd.testing.assert_frame_equal(frame, fetch(server, tmp_path / "fresh", days=2))


def test_retries_give_up_after_max_retries(server, tmp_path):
    sleep = SleepRecorder()
    server.fail_next(*[429] * 3)

    with pytest.raises(ExchangeDataError, match="still failing after 3 attempt") as caught:
        fetch(server, tmp_path, days=2, sleep=sleep, max_retries=2)

    assert isinstance(caught.value.__cause__, ccxt.DDoSProtection)
    assert sleep.delays == [1.0, 2.0]
    assert not cache_path(tmp_path, "binance", "BTCUSDT", "1h").exists()


@pytest.mark.parametrize(
    ("failure", "error"), [(INVALID_SYMBOL, ccxt.BadSymbol), (401, ccxt.AuthenticationError)]
)
def test_non_retryable_errors_raise_at_once(server, tmp_path, failure, error):
    sleep = SleepRecorder()
    client = server.client()
    client.load_markets()
    server.fail_next(failure)

    with pytest.raises(ExchangeDataError, match="BTC/USDT 1h: fetch_ohlcv") as caught:
        fetch(server, tmp_path, days=2, sleep=sleep, client=client)

    assert isinstance(caught.value.__cause__, error)
    assert sleep.delays == []
    assert len(server.kline_starts()) == 1


def test_second_call_downloads_only_bars_after_the_cache_end(server, tmp_path):
    fetch(server, tmp_path, days=30)
    later = NOW + pd.Timedelta(hours=5)
    server.now_ms = later.value // 1_000_000
    server.requests.clear()

    resumed = fetch(server, tmp_path, days=30, now=later)

    last_cached_open = pd.Timestamp("2024-03-01 09:00", tz="UTC").value // 1_000_000
    assert server.kline_starts() == [last_cached_open + HOUR_MS]
    pd.testing.assert_frame_equal(resumed, fetch(server, tmp_path / "fresh", days=30, now=later))
    assert resumed.index[-1] == pd.Timestamp("2024-03-01 14:00", tz="UTC")


def test_call_with_nothing_new_downloads_nothing(server, tmp_path):
    first = fetch(server, tmp_path, days=10)
    server.requests.clear()

    again = fetch(server, tmp_path, days=10, now=NOW + pd.Timedelta(minutes=20))

    assert server.kline_starts() == []
    pd.testing.assert_frame_equal(again, first)


def test_call_the_cache_covers_makes_no_request(server, tmp_path):
    first = fetch(server, tmp_path, days=10)
    server.requests.clear()

    again = fetch(server, tmp_path, days=10)

    assert server.requests == []
    pd.testing.assert_frame_equal(again, first)


def test_longer_span_downloads_only_bars_before_the_cache_start(server, tmp_path):
    fetch(server, tmp_path, days=10)
    server.requests.clear()

    longer = fetch(server, tmp_path, days=20)

    end = pd.Timestamp("2024-03-01 10:00", tz="UTC")
    assert server.kline_starts() == [(end - pd.Timedelta(days=20)).value // 1_000_000]
    pd.testing.assert_frame_equal(longer, expected_bars(end - pd.Timedelta(days=20), end))


def test_shorter_span_is_served_from_the_cache(server, tmp_path):
    fetch(server, tmp_path, days=20)
    server.requests.clear()

    shorter = fetch(server, tmp_path, days=5)

    end = pd.Timestamp("2024-03-01 10:00", tz="UTC")
    assert server.kline_starts() == []
    pd.testing.assert_frame_equal(shorter, expected_bars(end - pd.Timedelta(days=5), end))


def test_cache_file_is_written_atomically_in_place(server, tmp_path):
    frame = fetch(server, tmp_path, days=3)

    path = cache_path(tmp_path, "binance", "BTCUSDT", "1h")
    assert sorted(p.name for p in path.parent.iterdir()) == ["1h.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


def test_corrupt_cache_file_is_an_error_naming_it(server, tmp_path):
    path = cache_path(tmp_path, "binance", "BTCUSDT", "1h")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")

    with pytest.raises(ExchangeDataError, match=f"cache file {path} cannot be read"):
        fetch(server, tmp_path, days=3)
    assert path.read_bytes() == b"not parquet"


def test_cache_file_of_another_layout_is_an_error(server, tmp_path):
    path = cache_path(tmp_path, "binance", "BTCUSDT", "1h")
    path.parent.mkdir(parents=True)
    pd.DataFrame({"price": [1.0, 2.0]}).to_parquet(path)

    with pytest.raises(ExchangeDataError, match="does not hold canonical candles"):
        fetch(server, tmp_path, days=3)


def test_market_listed_after_the_span_start_returns_what_exists(tmp_path):
    listed = pd.Timestamp("2024-02-25", tz="UTC")
    with FakeBinance(now_ms=NOW_MS, first_open_ms=listed.value // 1_000_000) as fake:
        frame = fetch(fake, tmp_path, days=30)

    pd.testing.assert_frame_equal(frame, expected_bars(listed, pd.Timestamp("2024-03-01 10:00", tz="UTC")))
