"""How `atb train production` wall time grows with symbols x base models x seeds, run here
(local backend) and as Ray tasks on a local Ray of 1 and 2 CPUs, i.e. 1 and 2 tasks at a time
(a benchmark, not a test). With seeds > 1, each seed is a task, then each base model's assembly.

For each size, the three ways run one after another (interleaved, so a noisy machine hurts
them alike), each in a fresh folder, fits on 1 thread each (`threads=1`, so the three give the
same models), 900 days, 3 MC samples; small sizes fit lightweight variants for 2 epochs (the
fixed costs dominate), the last ones default variants for 30 epochs (the fits dominate).
Symbols are the bundled BTCUSDT sample and, from `../shared/data`, ETHUSDT (then BNBUSDT).

    .venv/bin/python tests/benchmarks/bench_scaling.py [--repeats 1] [--sizes 0,1,...]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from atb.config import TrainingConfig
from atb.data import sample_path
from atb.workflows.production import train_production

SHARED = Path(__file__).parents[3] / "shared" / "data"
SMALL, HEAVY = {"variant": "lightweight", "epochs": 2}, {"variant": "default", "epochs": 30}
SIZES = [  # (symbols, base models, seeds, fit settings)
    (("BTCUSDT",), ("lstm", "lightgbm"), 1, SMALL),
    (("BTCUSDT", "ETHUSDT"), ("lstm", "lightgbm"), 1, SMALL),
    (("BTCUSDT", "ETHUSDT"), ("lstm", "lightgbm"), 2, SMALL),
    (("BTCUSDT", "ETHUSDT", "BNBUSDT"), ("lstm", "lightgbm"), 1, SMALL),
    (("BTCUSDT", "ETHUSDT"), ("lstm", "lightgbm"), 1, HEAVY),
    (("BTCUSDT", "ETHUSDT"), ("lstm", "lightgbm"), 2, HEAVY),
]
WAYS = ("local", "ray-1", "ray-2")


def run(way: str, symbols: tuple[str, ...], bases: tuple[str, ...], seeds: int, settings: dict) -> float:
    """Wall seconds of one production run, `way` being local or ray-N (a local Ray of N CPUs)."""
    import ray

    paths = {s: sample_path(s) if s == "BTCUSDT" else SHARED / f"{s}_1d.csv" for s in symbols}
    with tempfile.TemporaryDirectory() as scratch:
        config = TrainingConfig.build(
            **settings, base_models=bases, base_seeds=seeds, patience=settings["epochs"], days=900, mc_samples=3, threads=1,
            backend="local" if way == "local" else "ray", mlflow=False,
            registry_dir=Path(scratch) / "models", output_dir=Path(scratch) / "out",
        )
        started = time.perf_counter()
        if way != "local":
            ray.init(num_cpus=int(way.split("-")[1]), include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            results = train_production(config, list(symbols), paths)
        finally:
            if way != "local":
                ray.shutdown()
        elapsed = time.perf_counter() - started
    failed = [r.error for r in results if r.error]
    if failed:
        raise SystemExit(f"{way} {symbols}: {failed}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sizes", default=",".join(str(i) for i in range(len(SIZES))), help="Which sizes to run (indexes).")
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} is missing: this benchmark reads ETHUSDT and BNBUSDT daily candles from ../shared/data")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    rows = []
    for symbols, bases, seeds, settings in (SIZES[int(i)] for i in args.sizes.split(",")):
        times: dict[str, list[float]] = {way: [] for way in WAYS}
        for _ in range(args.repeats):
            for way in WAYS:
                times[way].append(run(way, symbols, bases, seeds, settings))
        row = {"symbols": len(symbols), "bases": len(bases), "seeds": seeds, "fits": len(symbols) * len(bases) * seeds, **settings,
               **{way: round(min(values), 1) for way, values in times.items()}}
        row["speedup_ray2_vs_ray1"] = round(row["ray-1"] / row["ray-2"], 2)
        row["speedup_ray2_vs_local"] = round(row["local"] / row["ray-2"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
