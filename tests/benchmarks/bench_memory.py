"""Peak memory of `atb train model` on a year of 1-minute bars (a benchmark, not a test).

Writes `--bars` synthetic 1-minute candles (a seeded random walk with intrabar ranges and
lognormal volume; default 525,600 = one year) to Parquet, then runs, in a child process,

    atb train model SYNUSDT --data FILE --model-type lstm --variant lightweight --epochs 1
        --lookback 60 --n-features 60 --no-mlflow --registry TMP

and reports its peak resident memory (the child's maximum RSS), its wall time, and from its
report the time of data + features and of the one epoch. `--atb` runs another installation's
`atb` (e.g. an older checkout's, for the comparison in the README), `--bars` a shorter series.

    .venv/bin/python tests/benchmarks/bench_memory.py [--bars 525600] [--atb PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_minutes(n: int, seed: int = 0) -> pd.DataFrame:
    """`n` 1-minute OHLCV bars from 2023-01-01: log-normal random-walk closes, highs and lows
    around open and close, lognormal volume."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.001, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, 0.0005, n)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, 0.0005, n)))
    return pd.DataFrame({
        "timestamp": pd.date_range("2023-01-01", periods=n, freq="min", tz="UTC"),
        "open": open_, "high": high, "low": low, "close": close, "volume": rng.lognormal(3.0, 1.0, n),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=525_600)
    parser.add_argument("--atb", default=str(Path(sys.executable).parent / "atb"), help="the atb executable to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        data = root / "SYNUSDT_1m.parquet"
        synthetic_minutes(args.bars).to_parquet(data)
        command = [args.atb, "train", "model", "SYNUSDT", "--data", str(data), "--model-type", "lstm", "--variant", "lightweight",
                   "--epochs", "1", "--lookback", "60", "--n-features", "60", "--no-mlflow", "--registry", str(root / "models")]
        started = time.perf_counter()
        result = subprocess.run(command, cwd=root, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
        wall = time.perf_counter() - started
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # Linux: KiB
        if result.returncode != 0:
            raise SystemExit(f"atb train model failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        (report_path,) = (root / "models" / "SYNUSDT" / "lstm").glob("v*/training_report.json")
        report = json.loads(report_path.read_text())
    print(json.dumps({
        "bars": args.bars,
        "windows": {part: report["data"]["splits"][part]["origins"] for part in ("train", "val", "test")},
        "peak_rss_gib": round(peak_gib, 3),
        "wall_s": round(wall, 1),
        "data_and_features_s": round(report["timings"]["data_and_features_s"], 1),
        "epoch_s": round(report["history"][0]["seconds"], 1),
        "fit_s": round(report["timings"]["fit_s"], 1),
        "evaluate_s": round(report["timings"]["evaluate_s"], 1),
        "materialised_windows_gib": round(sum(report["data"]["splits"][p]["origins"] for p in ("train", "val", "test")) * 60 * 60 * 4 / 2**30, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
