"""Serving latency and throughput, loopback only, bounded in requests.

Starts `atb serve`'s app on a uvicorn server in this process over a copy of the test
fixture registry (an LSTM, a LightGBM and their stacking ensemble on the bundled
BTCUSDT sample) and measures, with 1 and 16 concurrent keep-alive clients:
- a single ONNX model (the LSTM) and the ensemble, from the candles the server holds
  (cached: the forecast of unchanged candles is computed once);
- the same with the candles in the request body (validation + features each time);
beside the wall time of `atb predict` for the same forecast (a new process each time).

    .venv/bin/python tests/benchmarks/bench_serve.py [--requests 400]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import uvicorn

from atb.data import load_candles
from atb.serve.api import create_app
from atb.serve.service import ForecastService

FIXTURE = Path(__file__).parents[1] / "fixtures" / "registry_024bb27"


def serve(registry: Path) -> tuple[uvicorn.Server, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(ForecastService(registry, engine="onnx"), poll_seconds=None), log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, sock.getsockname()[1]


def run(port: int, body: bytes, clients: int, requests: int) -> dict:
    """Latency of each request (keep-alive connection per client) and requests per second."""
    per_client = max(1, requests // clients)

    def client(_):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        times, errors = [], 0
        for _ in range(per_client):
            tic = time.perf_counter()
            connection.request("POST", "/v1/forecast", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            times.append(time.perf_counter() - tic)
            errors += response.status != 200
        connection.close()
        return times, errors

    tic = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    wall = time.perf_counter() - tic
    times = np.concatenate([np.array(t) for t, _ in results]) * 1000
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)), "requests_per_s": len(times) / wall,
            "requests": len(times), "errors": int(sum(e for _, e in results))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per cached measurement (a tenth with candles in the body)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="atb-bench-serve-"))
    shutil.copytree(FIXTURE, folder / "models")
    server, port = serve(folder / "models")
    frame = load_candles().frame.iloc[-700:].reset_index()
    candles = [{"timestamp": t.isoformat(), **{c: float(v) for c, v in zip(("open", "high", "low", "close", "volume"), row)}}
               for t, row in zip(frame["timestamp"], frame[["open", "high", "low", "close", "volume"]].to_numpy())]
    rows = []
    for label, extra in (("single ONNX model (lstm)", {"model_type": "lstm"}), ("ensemble", {})):
        for source, with_candles in (("cached", False), ("candles in body", True)):
            body = json.dumps({"symbol": "BTCUSDT", **extra, **({"candles": candles} if with_candles else {})}).encode()
            run(port, body, 1, 5)  # warm-up: load, first forecast
            for clients in (1, 16):
                count = args.requests // 10 if with_candles else args.requests
                rows.append({"model": label, "candles": source, "clients": clients, **run(port, body, clients, count)})
                print(json.dumps(rows[-1]), flush=True)
    server.should_exit = True
    cli = []
    for model_type in (["--model-type", "lstm"], []):
        tic = time.perf_counter()
        subprocess.run([sys.executable, "-m", "atb.cli", "predict", "--registry", str(folder / "models"), "--json", *model_type], check=True, capture_output=True)
        cli.append({"model": "lstm" if model_type else "ensemble", "atb_predict_s": time.perf_counter() - tic})
    print(json.dumps({"atb_predict": cli}))
    print("\n| model | candles | clients | p50 ms | p99 ms | requests/s | errors |\n|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['model']} | {row['candles']} | {row['clients']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['requests_per_s']:.0f} | {row['errors']} |")
    for row in cli:
        print(f"`atb predict` ({row['model']}, new process): {row['atb_predict_s']:.1f} s")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
