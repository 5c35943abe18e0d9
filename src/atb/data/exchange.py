"""Candles from an exchange through CCXT, kept in a local Parquet cache.

`fetch_ohlcv` returns the canonical frame (UTC `timestamp` index of bar open
times; float64 open, high, low, close, volume) for the closed bars of the last
`days` days. The span ends at the open of the bar still forming at `now`
(excluded) and starts `days` whole days earlier.

Each (exchange, symbol, timeframe) has one cache file,
`{cache_dir}/{exchange}/{BASEQUOTE}/{timeframe}.parquet`, holding one unbroken
run of closed bars. A call downloads only what the cache lacks: the bars after
its last bar and, when the requested span starts earlier, the bars before its
first one; it then writes the merged run back atomically. The exchange's
market list is loaded only when something must be downloaded, so a call the
cache covers makes no request. An unreadable cache file is an error naming the
file (it is never silently replaced); delete it to download again.

Transient failures (timeouts, exchange unavailable, rate limits: ccxt's
`NetworkError` family) are retried with exponential backoff; any other ccxt
error stops at once. Candles are not validated here (see `atb.data.validate`).
"""

from __future__ import annotations

import difflib
import functools
import itertools
import logging
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import ccxt
import numpy as np
import pandas as pd

from atb.data.validate import OHLCV_COLUMNS
from atb.io import atomic_write_with
from atb.timeframes import TIMEFRAMES

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "atb" / "exchange"
# Longest first, so that "SOLFDUSD" splits as SOL/FDUSD and not SOLFD/USD.
KNOWN_QUOTES = tuple(
    sorted(
        ("USDT", "USDC", "BUSD", "FDUSD", "TUSD", "DAI", "BTC", "ETH", "BNB", "EUR", "USD", "TRY", "GBP", "JPY", "BRL"),
        key=len,
        reverse=True,
    )
)
PAGE_LIMIT = 1000
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
_DAY_MS = 86_400_000
_RETRYABLE = (ccxt.NetworkError,)  # parent of RequestTimeout, ExchangeNotAvailable, DDoSProtection, RateLimitExceeded

T = TypeVar("T")


class ExchangeDataError(RuntimeError):
    """The exchange or the cache could not supply candles; the message says which and why."""


def normalize_symbol(symbol: str) -> str:
    """Unified CCXT symbol: "BTCUSDT", "btcusdt", "BTC-USDT", "BTC_USDT" -> "BTC/USDT"."""
    text = symbol.strip().upper()
    for separator in ("/", "-", "_"):
        if separator in text:
            base, _, quote = text.partition(separator)
            if base and quote and separator not in quote:
                return f"{base}/{quote}"
            raise ValueError(f"cannot read symbol {symbol!r}: expected BASE{separator}QUOTE, e.g. BTC{separator}USDT")
    for quote in KNOWN_QUOTES:
        if text.endswith(quote) and len(text) > len(quote):
            return f"{text[: -len(quote)]}/{quote}"
    raise ValueError(
        f"cannot split symbol {symbol!r} into base and quote; write it as BASE/QUOTE "
        f"(known quote currencies: {', '.join(KNOWN_QUOTES)})"
    )


def cache_path(cache_dir: str | Path, exchange: str, symbol: str, timeframe: str) -> Path:
    """Cache file of one exchange, symbol and timeframe, e.g. binance/BTCUSDT/1d.parquet."""
    return Path(cache_dir) / exchange / normalize_symbol(symbol).replace("/", "") / f"{timeframe}.parquet"


def create_client(exchange: str) -> ccxt.Exchange:
    """A public (no keys) CCXT client with CCXT's own rate limiter switched on."""
    if exchange not in ccxt.exchanges:
        popular = ["binance", "bybit", "coinbase", "kraken", "okx"]
        suggestions = difflib.get_close_matches(exchange, ccxt.exchanges, n=5) or popular
        raise ValueError(
            f"unknown exchange {exchange!r}; did you mean one of {suggestions}? "
            f"(ccxt.exchanges lists all {len(ccxt.exchanges)} ids)"
        )
    return getattr(ccxt, exchange)({"enableRateLimit": True})


def fetch_ohlcv(
    symbol: str,
    timeframe: str = "1d",
    days: int = 365,
    exchange: str = "binance",
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    client: Any = None,
    now: pd.Timestamp | None = None,
    max_retries: int = 5,
    sleep: Callable[[float], None] = time.sleep,
    page_limit: int = PAGE_LIMIT,
) -> pd.DataFrame:
    """Closed candles of the last `days` days before `now` (default: the current time).

    `client` is a CCXT exchange instance for `exchange` (built with
    `create_client` when None); `sleep` waits between retries; `page_limit` is
    the number of bars asked for per request.
    """
    market = normalize_symbol(symbol)
    if days < 1:
        raise ValueError(f"days must be a positive number of days, got {days}")
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware (e.g. pd.Timestamp(..., tz='UTC')), got {now}")
    if client is None:
        client = create_client(exchange)
    elif getattr(client, "id", exchange) != exchange:
        raise ValueError(f"client is for exchange {client.id!r} but exchange={exchange!r}; pass the matching id")
    bar_ms = _bar_milliseconds(client, exchange, timeframe)

    call = functools.partial(
        _call_with_retries,
        max_retries=max_retries,
        base_delay=max(BACKOFF_BASE_S, client.rateLimit / 1000),
        sleep=sleep,
    )
    end_ms = _to_ms(now) // bar_ms * bar_ms  # open of the bar still forming at `now`
    start_ms = end_ms - days * _DAY_MS
    path = cache_path(cache_dir, exchange, market, timeframe)
    cached = _read_cache(path)
    missing = _missing_spans(cached, start_ms, end_ms, bar_ms)
    series = f"{exchange} {market} {timeframe}"

    def fetch_page(since: int) -> list:
        action = functools.partial(client.fetch_ohlcv, market, timeframe, since=since, limit=page_limit)
        return call(action, f"{series}: fetch_ohlcv since {since}")

    if missing:
        _check_listed(call, client, exchange, market, symbol)
    downloads = [_download(fetch_page, series, bar_ms, lo, hi) for lo, hi in missing]
    downloaded = sum(len(frame) for frame in downloads)
    logger.info("%s: %d bar(s) from cache %s, %d downloaded", series, len(cached), path, downloaded)
    merged = _merge([cached, *downloads])
    if downloaded:
        atomic_write_with(path, merged.to_parquet)
    start, end = (pd.Timestamp(ms, unit="ms", tz="UTC") for ms in (start_ms, end_ms))
    return merged[(merged.index >= start) & (merged.index < end)]


def _bar_milliseconds(client: Any, exchange: str, timeframe: str) -> int:
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"timeframe {timeframe!r} is not supported; valid: {', '.join(TIMEFRAMES)}")
    offered = getattr(client, "timeframes", None) or {}
    if timeframe not in offered:
        raise ValueError(f"{exchange} does not offer timeframe {timeframe!r}; it offers: {', '.join(offered)}")
    return TIMEFRAMES[timeframe] // pd.Timedelta(milliseconds=1)


def _check_listed(call: Callable, client: Any, exchange: str, market: str, symbol: str) -> None:
    """Load the exchange's markets and refuse a market it does not list."""
    call(client.load_markets, f"{exchange} load_markets")
    if market not in client.markets:
        listed = sorted(client.markets)
        hint = difflib.get_close_matches(market, listed, n=5) or listed[:5]
        raise ValueError(f"{exchange} does not list market {market!r} (from {symbol!r}); listed markets include {hint}")


def _missing_spans(cached: pd.DataFrame, start_ms: int, end_ms: int, bar_ms: int) -> list[tuple[int, int]]:
    """Non-empty [start, end) spans of bar opens to download so that the cached run covers [start_ms, end_ms)."""
    if cached.empty:
        spans = [(start_ms, end_ms)]
    else:  # extend the cached run at both ends so that it stays unbroken
        spans = [(start_ms, _to_ms(cached.index[0])), (_to_ms(cached.index[-1]) + bar_ms, end_ms)]
    return [(lo, hi) for lo, hi in spans if lo < hi]


def _call_with_retries(
    action: Callable[[], T], description: str, *, max_retries: int, base_delay: float, sleep: Callable[[float], None]
) -> T:
    """Run `action`; retry transient ccxt errors after base_delay * 2**attempt seconds."""
    for attempt in itertools.count():
        try:
            return action()
        except _RETRYABLE as exc:
            if attempt == max_retries:
                raise ExchangeDataError(
                    f"{description} still failing after {attempt + 1} attempt(s): {type(exc).__name__}: {exc}"
                ) from exc
            delay = min(base_delay * 2**attempt, BACKOFF_MAX_S)
            logger.warning(
                "%s failed (%s: %s); retry %d/%d in %.1f s",
                description, type(exc).__name__, exc, attempt + 1, max_retries, delay,
            )
            sleep(delay)
        except ccxt.BaseError as exc:
            raise ExchangeDataError(f"{description} failed: {type(exc).__name__}: {exc}") from exc


def _download(fetch_page: Callable[[int], list], series: str, bar_ms: int, start_ms: int, end_ms: int) -> pd.DataFrame:
    """Bars of `series` with open time in [start_ms, end_ms), page by page."""
    rows: list[list] = []
    since = start_ms
    while since < end_ms:
        page = fetch_page(since)
        if not page:
            break
        last_open = max(int(row[0]) for row in page)
        if last_open < since:
            raise ExchangeDataError(
                f"{series}: the exchange returned bars older than the requested start {since}; "
                "it does not seem to page by start time"
            )
        rows.extend(row for row in page if start_ms <= row[0] < end_ms)
        since = last_open + bar_ms
    return _to_frame(rows)


def _to_frame(rows: list[list]) -> pd.DataFrame:
    """Canonical frame from CCXT rows [ms, open, high, low, close, volume]."""
    opened = np.array([int(row[0]) for row in rows], dtype="int64")
    values = np.array([row[1:6] for row in rows], dtype="float64").reshape(len(rows), len(OHLCV_COLUMNS))
    index = pd.DatetimeIndex(pd.to_datetime(opened, unit="ms", utc=True), name="timestamp").as_unit("ns")
    return pd.DataFrame(values, index=index, columns=list(OHLCV_COLUMNS))


def _merge(frames: list[pd.DataFrame]) -> pd.DataFrame:
    merged = pd.concat(frames).sort_index()
    return merged[~merged.index.duplicated(keep="last")]


def _read_cache(path: Path) -> pd.DataFrame:
    """The cached run of bars; an empty canonical frame when there is no cache file yet."""
    if not path.exists():
        return _to_frame([])
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ExchangeDataError(f"cache file {path} cannot be read ({exc}); delete it to download again") from exc
    index = frame.index
    if (
        list(frame.columns) != list(OHLCV_COLUMNS)
        or not isinstance(index, pd.DatetimeIndex)
        or str(index.tz) != "UTC"
        or not (index.is_monotonic_increasing and index.is_unique)
        or not all(dtype == np.float64 for dtype in frame.dtypes)
    ):
        raise ExchangeDataError(
            f"cache file {path} does not hold canonical candles (UTC timestamp index, float64 "
            f"{', '.join(OHLCV_COLUMNS)}); delete it to download again"
        )
    return frame.set_axis(index.as_unit("ns").rename("timestamp"))


def _to_ms(timestamp: pd.Timestamp) -> int:
    return (timestamp - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
