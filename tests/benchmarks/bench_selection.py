"""Feature selection rule and feature count, chosen on the validation part.

For each rule (`--rules`) and count (`--counts`), builds the dataset of the bundled
BTCUSDT sample (or `--data`), fits each model type (`--types`) with each seed
(`--seeds`), and prints the raw (ungated) validation RMSE/naive per horizon,
mean over seeds. The choice is made on these validation figures only; the test
figures are printed after the choice column for reference, never used to choose.

    .venv/bin/python tests/benchmarks/bench_selection.py --types lightgbm,lstm --seeds 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from atb.config import TrainingConfig
from atb.evaluation.protocol import score
from atb.workflows.steps import ignore_events, prepare_data
from atb.workflows.train_model import fit_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="candles file (default: the bundled BTCUSDT sample)")
    parser.add_argument("--rules", default="return,next_return", help="selection rules (DatasetSpec.selection_target)")
    parser.add_argument("--counts", default="5,10,20,40,60", help="feature counts")
    parser.add_argument("--types", default="lightgbm,lstm", help="model types")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per configuration")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    base = TrainingConfig.build(data_path=args.data, mlflow=False, device="cpu")
    rows = []
    for rule in args.rules.split(","):
        for count in (int(c) for c in args.counts.split(",")):
            config = base.replace(selection_target=rule, n_features=count)
            dataset = prepare_data(config).dataset
            for model_type in args.types.split(","):
                val, test, seconds = [], [], []
                for seed in range(args.seeds):
                    run = config.replace(model_type=model_type, seed=42 + seed)
                    tic = time.perf_counter()
                    model = fit_model(run, dataset, Path("/tmp/atb-selection-checkpoint"), lambda row: None, ignore_events)
                    seconds.append(time.perf_counter() - tic)
                    for part, out in ((dataset.val, val), (dataset.test, test)):
                        metrics = score({"model": model.predict(part.X)}, part, dataset)["model"]
                        out.append([metrics[h]["rmse_ratio"] for h in dataset.horizons])
                row = {
                    "rule": rule, "n_features": count, "model": model_type,
                    "val_rmse_ratio": np.mean(val, axis=0).round(4).tolist(),
                    "test_rmse_ratio": np.mean(test, axis=0).round(4).tolist(),
                    "fit_s": round(float(np.mean(seconds)), 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
