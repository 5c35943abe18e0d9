"""A local stand-in for the Binance spot REST API, enough for ccxt's `binance` class.

Serves GET /api/v3/exchangeInfo and GET /api/v3/klines on 127.0.0.1 with
deterministic candles, caps pages at `max_limit`, records every request and can
fail the next requests on demand (an HTTP status, a Binance error body, or a
dropped connection).
"""

from __future__ import annotations

import functools
import json
import math
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import ccxt

DROP = "drop"  # close the connection without answering
INVALID_SYMBOL = (400, {"code": -1121, "msg": "Invalid symbol."})
KLINES_PATH = "/api/v3/klines"


def candle(open_ms: int, bar_ms: int) -> list[float]:
    """Deterministic [open, high, low, close, volume] of the bar opening at `open_ms`."""
    step = open_ms // bar_ms

    def price(k: int) -> float:
        return round(100.0 + 10.0 * math.sin(k / 7.0) + 0.01 * k, 6)

    open_, close = price(step), price(step + 1)
    return [open_, max(open_, close) + 0.5, min(open_, close) - 0.5, close, float(1 + step % 7)]


class FakeBinance:
    """Context manager running the fake API; `client()` gives a ccxt.binance pointed at it.

    Bars exist from `first_open_ms` up to and including the bar forming at
    `now_ms` (as on the real exchange, the last bar returned may be partial).
    With `repeat_first_bar` each page sends its first bar twice, as a glitchy
    exchange may.
    """

    def __init__(
        self,
        now_ms: int,
        first_open_ms: int = 0,
        max_limit: int = 500,
        repeat_first_bar: bool = False,
        markets=(("BTC", "USDT"), ("ETH", "BTC")),
    ):
        self.now_ms = now_ms
        self.first_open_ms = first_open_ms
        self.max_limit = max_limit
        self.repeat_first_bar = repeat_first_bar
        self.markets = markets
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._failures: deque = deque()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        serve = functools.partial(self._server.serve_forever, poll_interval=0.01)
        self._thread = threading.Thread(target=serve, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeBinance:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def fail_next(self, *failures) -> None:
        """Fail the next requests, in order: a status (plain-text body), (status, JSON body) or DROP."""
        self._failures.extend(failures)

    def kline_starts(self) -> list[int]:
        """startTime of every klines request received, in order."""
        return [int(params["startTime"]) for path, params in self.requests if path == KLINES_PATH]

    def client(self) -> ccxt.binance:
        """A real ccxt.binance whose REST URLs all point to this server (spot markets only)."""
        exchange = ccxt.binance({"enableRateLimit": True, "rateLimit": 1, "timeout": 5000})
        api = exchange.urls["api"]
        exchange.urls["api"] = {name: self.url + urlsplit(address).path for name, address in api.items()}
        exchange.options["fetchMarkets"] = {"types": ["spot"]}
        return exchange

    def respond(self, path: str, params: dict[str, str]):
        """(status, body) for a request, or DROP."""
        self.requests.append((path, params))
        if self._failures:
            failure = self._failures.popleft()
            if failure == DROP:
                return DROP
            return failure if isinstance(failure, tuple) else (failure, "failure injected")
        if path == "/api/v3/exchangeInfo":
            return 200, self._exchange_info()
        if path == KLINES_PATH:
            return self._klines(params)
        return 404, {"code": -1, "msg": f"no route {path}"}

    def _exchange_info(self) -> dict:
        symbols = [
            {
                "symbol": base + quote,
                "status": "TRADING",
                "baseAsset": base,
                "quoteAsset": quote,
                "baseAssetPrecision": 8,
                "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"],
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "permissions": ["SPOT"],
                "filters": [],
            }
            for base, quote in self.markets
        ]
        return {"timezone": "UTC", "serverTime": self.now_ms, "rateLimits": [], "symbols": symbols}

    def _klines(self, params: dict[str, str]):
        if params.get("symbol") not in {base + quote for base, quote in self.markets}:
            return INVALID_SYMBOL
        bar_ms = ccxt.Exchange.parse_timeframe(params["interval"]) * 1000
        limit = min(int(params.get("limit", 500)), self.max_limit)
        forming = self.now_ms // bar_ms * bar_ms
        if "startTime" in params:
            first = max(-(-int(params["startTime"]) // bar_ms) * bar_ms, self.first_open_ms)
        else:
            first = max(forming - (limit - 1) * bar_ms, self.first_open_ms)
        opens = range(first, min(forming, first + (limit - 1) * bar_ms) + 1, bar_ms)
        rows = []
        for open_ms in opens:
            values = candle(open_ms, bar_ms)
            if open_ms == forming:  # the bar still forming: so far less volume
                values[4] /= 10
            rows.append([open_ms, *(f"{v:.8f}" for v in values), open_ms + bar_ms - 1, "0", 1, "0", "0", "0"])
        return 200, rows[:1] + rows if self.repeat_first_bar else rows


def _handler_for(exchange: FakeBinance) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            params = {key: values[0] for key, values in parse_qs(parts.query).items()}
            answer = exchange.respond(parts.path, params)
            if answer == DROP:
                self.close_connection = True
                return
            status, body = answer
            plain = isinstance(body, str)
            data = (body if plain else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if plain else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
