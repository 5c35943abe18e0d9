"""`atb serve` on a real uvicorn server on an ephemeral loopback port: forecasts equal
`atb predict`, batch equals single calls, hot swaps under load, canary and shadow arms,
bad input never a 5xx, API keys, and a killed server keeps what it acknowledged."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from serving import Server
from typer.testing import CliRunner

from atb.cli import app as cli
from atb.data import load_candles
from atb.registry import ModelRegistry, rollout_record
from atb.serve.forecast_log import ForecastLog
from atb.serve.service import ForecastService

FIXTURE = Path(__file__).parents[1] / "fixtures" / "registry_024bb27"


@pytest.fixture
def registry(tmp_path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "models")
    return tmp_path / "models"


@pytest.fixture
def server(registry, tmp_path):
    running = Server(ForecastService(registry, log=ForecastLog(f"sqlite:///{tmp_path / 'log.db'}")), poll_seconds=0.05)
    yield running
    running.stop()


def test_a_forecast_equals_atb_predict_for_the_same_version_and_candles(server, registry, monkeypatch):
    monkeypatch.chdir(registry.parent)
    for model_type in ("lstm", "lightgbm", None):
        body = {"symbol": "BTCUSDT", **({"model_type": model_type} if model_type else {})}
        status, served = server.request("POST", "/v1/forecast", body)
        assert status == 200, served
        predicted = CliRunner().invoke(cli, ["predict", "BTCUSDT", "--json", *(["--model-type", model_type] if model_type else [])])
        expected = json.loads(predicted.stdout)
        assert served["model"] == expected["model"] and served["origin_time"] == expected["origin_time"]
        for row, other in zip(served["horizons"], expected["horizons"]):
            assert row["forecast"] == pytest.approx(other["forecast"], rel=1e-5)  # ONNX Runtime vs torch: float32 rounding
            assert row["log_return"] == pytest.approx(math.log(other["forecast"] / expected["origin_close"]), abs=1e-5)


def test_batch_equals_single_calls_with_the_candles_up_to_each_origin(server):
    frame = load_candles().frame
    origins = [frame.index[-30].isoformat(), frame.index[-10].isoformat(), frame.index[-1].isoformat()]
    status, batch = server.request("POST", "/v1/forecast/batch", {"items": [{"symbol": "BTCUSDT", "model_type": "lstm", "origins": origins}]})
    assert status == 200, batch
    assert [f["origin_time"] for f in batch["forecasts"]] == origins
    for origin, forecast in zip(origins, batch["forecasts"]):
        upto = frame.loc[:origin].reset_index()
        candles = [{"timestamp": t.isoformat(), **{c: float(r[c]) for c in ("open", "high", "low", "close", "volume")}} for t, (_, r) in zip(upto["timestamp"], upto.iterrows())]
        status, single = server.request("POST", "/v1/forecast", {"symbol": "BTCUSDT", "model_type": "lstm", "candles": candles})
        assert status == 200, single
        assert [r["forecast"] for r in single["horizons"]] == pytest.approx([r["forecast"] for r in forecast["horizons"]], rel=1e-6)


def test_bad_requests_get_a_4xx_naming_the_problem(server):
    assert server.request("POST", "/v1/forecast", {"symbol": "ETHUSDT"})[0] == 404
    assert server.request("POST", "/v1/forecast", {"symbol": "BTCUSDT", "model_type": "lstm", "version": "v0099"})[0] == 404
    status, body = server.request("POST", "/v1/forecast", {"symbol": 5})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "symbol"]
    status, body = server.request("POST", "/v1/forecast", {"symbol": "BTCUSDT", "candles": [{"timestamp": "2024-01-01", "open": 1, "high": 0.5, "low": 1, "close": 1, "volume": 1}] * 3})
    assert status == 422 and "request candles" in body["detail"]
    candles = [{"timestamp": f"2024-01-0{d}", "open": 1, "high": 2, "low": 0.5, "close": 1.5, "volume": 1} for d in (1, 2, 3)]
    candles[1]["high"] = 0.1
    status, body = server.request("POST", "/v1/forecast", {"symbol": "BTCUSDT", "candles": candles})
    assert status == 422 and "high below low at row 2" in body["detail"]
    assert server.request("POST", "/v1/forecast", raw=b"{not json")[0] == 422
    assert server.request("GET", "/v1/models/DOGEUSDT")[0] == 404
    assert server.request("GET", "/health") == (200, {"status": "ok"})
    assert server.request("GET", "/ready")[0] == 200
    status, body = server.request("GET", "/v1/models/BTCUSDT/monitor?model_type=lstm")  # a version older than monitoring
    assert status == 200 and "monitor.json (the version predates monitoring)" in body["missing"][0] and body["inputs"] == {}
    assert set(body["skill"]) == {"1", "7", "30"}
    status, body = server.request("GET", "/v1/models/BTCUSDT/monitor")  # the served ensemble
    assert status == 422 and "is an ensemble" in body["detail"]


JSON = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=10), lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
FIELDS = st.fixed_dictionaries({}, optional={
    "symbol": st.one_of(st.just("BTCUSDT"), JSON), "candles": st.one_of(JSON, st.lists(st.dictionaries(st.sampled_from(["timestamp", "open", "high", "low", "close", "volume"]), JSON), max_size=5)),
    "model_type": st.one_of(st.sampled_from(["lstm", "nosuch"]), JSON), "version": JSON, "client_id": JSON, "origins": JSON, "items": JSON,
})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
@given(body=st.one_of(FIELDS, JSON), route=st.sampled_from(["/v1/forecast", "/v1/forecast/batch"]))
def test_no_payload_gets_a_5xx(server, body, route):
    status, _ = server.request("POST", route, body)
    assert status < 500


def test_two_hundred_requests_during_three_swaps_all_answered_by_a_served_version(server, registry):
    store = ModelRegistry(registry)
    refs = {"BTCUSDT/ensemble/v0001", "BTCUSDT/lstm/v0001", "BTCUSDT/lightgbm/v0001"}

    def swaps():
        for model_type in ("lstm", "lightgbm", "ensemble"):
            time.sleep(0.15)
            store.promote("BTCUSDT", model_type, "v0001", "production")

    swapper = threading.Thread(target=swaps)
    swapper.start()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: server.request("POST", "/v1/forecast", {"symbol": "BTCUSDT"}), range(200)))
    swapper.join()
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200][:3]
    assert {body["model"] for _, body in answers} <= refs
    deadline = time.time() + 5
    while server.service.describe("BTCUSDT")["champion"] != "BTCUSDT/ensemble/v0001" and time.time() < deadline:
        time.sleep(0.05)
    assert server.request("POST", "/v1/forecast", {"symbol": "BTCUSDT"})[1]["model"] == "BTCUSDT/ensemble/v0001"


def test_canary_share_is_binomial_and_sticky_per_key(server, registry):
    ModelRegistry(registry).write_rollout("BTCUSDT", rollout_record("BTCUSDT/lightgbm/v0001", "canary", 0.1))
    assert server.request("POST", "/v1/models/BTCUSDT/reload")[0] == 200
    keys = [f"client-{i}" for i in range(2000)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda k: server.request("POST", "/v1/forecast", {"symbol": "BTCUSDT", "client_id": k})[1], keys))
    challenger = sum(a["arm"] == "challenger" for a in answers)
    assert stats.binomtest(challenger, 2000, 0.1).pvalue > 0.001, challenger
    assert all(a["model"] == ("BTCUSDT/lightgbm/v0001" if a["arm"] == "challenger" else "BTCUSDT/ensemble/v0001") for a in answers)
    again = [server.request("POST", "/v1/forecast", {"symbol": "BTCUSDT", "client_id": k})[1]["arm"] for k in keys[:100]]
    assert again == [a["arm"] for a in answers[:100]]


def test_shadow_forecasts_are_logged_and_never_returned(server, registry, tmp_path):
    ModelRegistry(registry).write_rollout("BTCUSDT", rollout_record("BTCUSDT/lstm/v0001", "shadow", 1.0))
    deadline = time.time() + 5
    while server.service.describe("BTCUSDT")["rollout"] is None and time.time() < deadline:
        time.sleep(0.05)  # picked up by the running server, no restart
    answers = [server.request("POST", "/v1/forecast", {"symbol": "BTCUSDT", "client_id": str(i)})[1] for i in range(20)]
    assert {a["arm"] for a in answers} == {"champion"} and {a["model"] for a in answers} == {"BTCUSDT/ensemble/v0001"}
    logged = ForecastLog(f"sqlite:///{tmp_path / 'log.db'}").rows("BTCUSDT")
    shadow = [row for row in logged if row["arm"] == "challenger"]
    assert len(shadow) == 20 and not any(row["returned"] for row in shadow) and {row["version"] for row in shadow} == {"BTCUSDT/lstm/v0001"}


def test_an_api_key_guards_every_route_but_health(registry):
    running = Server(ForecastService(registry), api_key="s3cret", poll_seconds=None)
    try:
        assert running.request("GET", "/health")[0] == 200
        assert running.request("GET", "/v1/models")[0] == 401
        assert running.request("GET", "/v1/models", headers={"X-API-Key": "s3cret"})[0] == 200
        assert running.request("POST", "/v1/forecast", {"symbol": "BTCUSDT"}, headers={"X-API-Key": "wrong"})[0] == 401
    finally:
        running.stop()
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--registry", str(registry)], env={"ATB_API_KEY": ""})
    assert result.exit_code == 1 and "needs --api-key" in result.output


def test_a_body_over_the_limit_is_413(registry):
    running = Server(ForecastService(registry), max_body_bytes=1000, poll_seconds=None)
    try:
        assert running.request("POST", "/v1/forecast", raw=b" " * 5000)[0] == 413
    finally:
        running.stop()


@pytest.mark.slow
def test_a_killed_server_keeps_every_forecast_it_acknowledged(registry, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    log_url = f"sqlite:///{tmp_path / 'kill.db'}"
    process = subprocess.Popen(
        [sys.executable, "-m", "atb.cli", "serve", "--port", str(port), "--registry", str(registry), "--forecast-log", log_url, "--engine", "torch"],
        env={**os.environ, "ATB_API_KEY": ""}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    acknowledged = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1)
                break
            except OSError:
                time.sleep(0.2)

        def hammer():
            while process.poll() is None:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/forecast", data=b'{"symbol": "BTCUSDT"}', headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:
                        acknowledged.append(json.loads(response.read())["request_id"])
                except OSError:
                    return

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for worker in workers:
            worker.start()
        deadline = time.time() + 120
        while len(acknowledged) < 30 and time.time() < deadline:  # mid-stream, whatever the machine's load
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        for worker in workers:
            worker.join()
    finally:
        process.kill()
        process.wait()
    assert len(acknowledged) >= 30
    logged = {row["request_id"] for row in ForecastLog(log_url).rows()}
    assert set(acknowledged) <= logged
