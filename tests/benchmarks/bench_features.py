"""Time `compute_features` on the 35k-bar BTCUSDT 2-hour series, without and with funding rates.

Usage: python tests/benchmarks/bench_features.py [--data PATH] [--funding PATH] [--repeats N]
Reports the best of N timed runs after one warm-up run. Exits 0 with a message
when the shared data folder is absent (it is not part of the repository).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd

from atb.data import read_ohlcv_file
from atb.features import category_counts, compute_features, load_funding

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "BTCUSDT_2h.csv")
    parser.add_argument("--funding", type=Path, default=SHARED_DATA / "BTCUSDT_funding_8h.csv")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"skipped: candle file {args.data} not found (pass --data PATH)")
        return 0
    ohlcv = read_ohlcv_file(args.data)
    funding = load_funding(args.funding) if args.funding.is_file() else None
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; pandas {pd.__version__}")
    print(f"data: {args.data.name}, {len(ohlcv)} bars")
    cases = [("candles only", None)] + ([("with funding", funding)] if funding is not None else [])
    for label, exogenous in cases:
        seconds, features = best_time(lambda exogenous=exogenous: compute_features(ohlcv, funding=exogenous), args.repeats)
        counts = ", ".join(f"{name} {n}" for name, n in category_counts(features.columns).items() if n)
        print(f"{label}: best of {args.repeats} {seconds:.2f} s; {features.shape[0]} rows x {features.shape[1]} columns")
        print(f"  per category: {counts}")
    if funding is None:
        print(f"funding file {args.funding} not found: funding case skipped")
    return 0


def best_time(run, repeats: int):
    result = run()  # warm-up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        timings.append(time.perf_counter() - start)
    return min(timings), result


if __name__ == "__main__":
    sys.exit(main())
