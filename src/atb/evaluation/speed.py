"""Inference speed as the protocol measures it: single-forecast latency (p50, p99 over
repeated calls after warm-up) and throughput on a batch of 1,000 windows."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

BATCH = 1000


def time_inference(
    engines: dict[str, Callable[[np.ndarray], object]], X: np.ndarray, calls: int = 300, warm_up: int = 20
) -> dict[str, dict[str, float]]:
    """Per engine: single-origin latency percentiles (ms) and batch-of-1000 throughput
    (windows/s). Single calls are interleaved engine by engine, the first engine
    rotating, so a noisy machine slows every engine alike and their ratio holds
    within the run."""
    for i in range(warm_up):
        for predict in engines.values():
            predict(X[i % len(X)][None])
    latencies: dict[str, list[float]] = {name: [] for name in engines}
    names = list(engines)
    for i in range(calls):
        window = X[i % len(X)][None]
        first = i % len(names)
        for name in names[first:] + names[:first]:
            latencies[name].append(_timed(engines[name], window))
    batch = np.resize(X, (BATCH, *X.shape[1:]))
    results = {}
    for name, predict in engines.items():
        predict(batch)
        batch_seconds = min(_timed(predict, batch) for _ in range(3))
        results[name] = {
            "p50_ms": 1e3 * float(np.percentile(latencies[name], 50)),
            "p99_ms": 1e3 * float(np.percentile(latencies[name], 99)),
            "batch1000_per_second": BATCH / batch_seconds,
        }
    return results


def _timed(function: Callable, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started
