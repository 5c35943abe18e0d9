"""The HTTP API of `atb serve` (FastAPI): forecasts, batch forecasts, the served models,
reload, health, readiness and Prometheus metrics.

Errors: a malformed body or a field of the wrong type is 422 naming the field (FastAPI's
validation); candles that validation refuses are 422 with the CLI's message; an unknown
symbol or version is 404; a body over `max_body_bytes` is 413; a missing or wrong API key
is 401 (every route but /health).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from atb.serve.forecast_log import ForecastLog
from atb.serve.monitor import STATUSES
from atb.serve.service import ForecastService, UnknownError

MAX_BODY_BYTES = 8 * 1024 * 1024
API_KEY_HEADER = "X-API-Key"
API_KEY_VARIABLE = "ATB_API_KEY"


class Candle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timestamp: str | int | float = Field(description="ISO time or unix seconds/milliseconds of the bar's open")
    open: float
    high: float
    low: float
    close: float
    volume: float


class ForecastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(min_length=1, max_length=64)
    candles: list[Candle] | None = Field(default=None, max_length=200_000, description="replace the candles held for the symbol")
    model_type: str | None = None
    version: str | None = None
    client_id: str | None = Field(default=None, max_length=200, description="sticky key of a canary rollout")


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(min_length=1, max_length=64)
    origins: list[str] | None = Field(default=None, max_length=10_000, description="bar times to forecast from (default: the newest)")
    model_type: str | None = None
    version: str | None = None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[BatchItem] = Field(min_length=1, max_length=1000)
    client_id: str | None = None


def create_app(
    service: ForecastService, api_key: str | None = None, max_body_bytes: int = MAX_BODY_BYTES, poll_seconds: float | None = 1.0
) -> FastAPI:
    """The API over `service`; with `api_key`, every route but /health requires it. Every
    `poll_seconds` the registry is checked and changed symbols are reloaded (hot reload)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()
        if poll_seconds:
            def poll() -> None:
                while not stop.wait(poll_seconds):
                    service.refresh_all()
            threading.Thread(target=poll, name="atb-registry-poll", daemon=True).start()
        yield
        stop.set()

    app = FastAPI(title="atb forecasting service", version="1", lifespan=lifespan)
    metrics = CollectorRegistry()
    requests = Counter("atb_requests_total", "HTTP requests", ["route", "status"], registry=metrics)
    latency = Histogram("atb_request_seconds", "HTTP request latency", ["route"], registry=metrics,
                        buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
    forecasts = Counter("atb_forecasts_total", "Forecasts served", ["symbol", "version", "arm"], registry=metrics)
    loads = Counter("atb_model_loads_total", "Versions loaded or reloaded", ["symbol"], registry=metrics)
    monitor_status = Gauge("atb_monitor_status", "Last monitoring status (0 ok, 1 warning, 2 alert)", ["symbol", "version"], registry=metrics)
    drifted_share = Gauge("atb_monitor_drifted_input_share", "Share of inputs drifted in the last monitoring", ["symbol", "version"], registry=metrics)
    realised = Gauge("atb_monitor_realised_rmse_ratio", "Realised RMSE/naive in the last monitoring", ["symbol", "version", "horizon"], registry=metrics)
    for symbol in service.symbols:
        loads.labels(symbol).inc()
    service.on_load = lambda symbol, ref: loads.labels(symbol).inc()

    @app.middleware("http")
    async def guard_and_measure(request: Request, call_next):
        started = time.perf_counter()
        route = request.url.path
        if api_key is not None and route != "/health" and not secrets.compare_digest(request.headers.get(API_KEY_HEADER, ""), api_key):
            response: Response = JSONResponse({"detail": f"missing or wrong {API_KEY_HEADER} header"}, status_code=401)
        elif int(request.headers.get("content-length") or 0) > max_body_bytes:
            response = JSONResponse({"detail": f"body over {max_body_bytes} bytes"}, status_code=413)
        else:
            response = await call_next(request)
        route_name = request.scope.get("route").path if request.scope.get("route") else "unmatched"
        requests.labels(route_name, str(response.status_code)).inc()
        latency.labels(route_name).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(UnknownError)
    async def unknown(request: Request, exc: UnknownError):
        return JSONResponse({"detail": str(exc).strip("'\"")}, status_code=404)

    @app.exception_handler(ValueError)
    async def refused(request: Request, exc: ValueError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    def respond(results: list[dict]) -> list[dict]:
        for result in results:
            forecasts.labels(result["symbol"], result["model"], result["arm"]).inc()
        return results

    @app.post("/v1/forecast")
    def forecast(body: ForecastRequest) -> dict:
        """Forecast every horizon from the newest bar of the symbol's candles."""
        candles = service.candles_from_rows(body.symbol, [c.model_dump() for c in body.candles]) if body.candles else None
        return respond(service.forecast(body.symbol, candles, body.model_type, body.version, body.client_id))[0]

    @app.post("/v1/forecast/batch")
    def forecast_batch(body: BatchRequest) -> dict:
        """Many symbols and many origins: each item (a symbol and its origins) is one model call."""
        out = []
        for item in body.items:
            out.extend(respond(service.forecast(item.symbol, None, item.model_type, item.version, body.client_id, item.origins)))
        return {"forecasts": out}

    @app.get("/v1/models")
    def models() -> dict:
        return {"models": service.models()}

    @app.get("/v1/models/{symbol}")
    def model(symbol: str) -> dict:
        return service.describe(symbol)

    @app.post("/v1/models/{symbol}/reload")
    def reload(symbol: str) -> dict:
        service.describe(symbol)  # 404 for a symbol not served
        service.refresh(symbol, force=True)
        return service.describe(symbol)

    @app.get("/v1/models/{symbol}/monitor")
    def monitor_route(symbol: str, window: int = 90, model_type: str | None = None) -> dict:
        """`atb monitor` on the candles the server holds; the figures also become Prometheus gauges."""
        report = service.monitor(symbol, window, model_type)
        version = report["version"]
        monitor_status.labels(symbol, version).set(STATUSES.index(report["status"]))
        drifted = [d for d in report["inputs"].values() if d["psi"] is not None and d["limit"] is not None and d["psi"] > d["limit"]]
        drifted_share.labels(symbol, version).set(len(drifted) / max(len(report["inputs"]), 1))
        for h, skill in report["skill"].items():
            realised.labels(symbol, version, h).set(skill["rmse_ratio"] if skill["rmse_ratio"] is not None else float("nan"))
        return report

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    def ready() -> Response:
        ok = service.ready
        return JSONResponse({"ready": ok, "symbols": service.symbols}, status_code=200 if ok else 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    return app



def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker, configured by the `ATB_SERVE_*` variables `atb serve` sets."""
    environment = json.loads(os.environ["ATB_SERVE_SETTINGS"])
    log = ForecastLog(environment["log_url"]) if environment.get("log_url") else None
    service = ForecastService(
        environment["registry"],
        symbols=environment.get("symbols"),
        engine=environment.get("engine", "onnx"),
        data={symbol: Path(path) for symbol, path in (environment.get("data") or {}).items()},
        log=log,
        combiner=environment.get("combiner", "stacking"),
    )
    return create_app(service, api_key=os.environ.get(API_KEY_VARIABLE), poll_seconds=environment.get("poll_seconds", 1.0))
