"""How the skill gate should set its drift weight, chosen without the test part.

For each series, only the origins before its test part (training and validation)
are used: inner expanding walk-forward folds (`--folds`), each with its own
training, validation and test blocks and a purge of the longest horizon. Every
fold fits the drift `m_h` on its training targets and the drift weight `a_h` on
its validation targets under each rule, then scores `a_h * m_h` on its inner test
block against the naive forecast (the model weight is 0 here, as it is wherever
no model shows significant skill):

- least_squares: `a_h` the least-squares mix of naive and drift;
- significant:   that `a_h`, kept only where the mix beats naive on validation by a
                 one-sided Diebold-Mariano test at p < 0.05, else 0 (naive): the
                 gate's rule (`atb.evaluation.skill.fit_baseline_gate`);
- drift, naive:  `a_h` = 1 or 0 always, for reference.

    .venv/bin/python tests/benchmarks/bench_gate_rule.py ../shared/data/*_1d.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from atb.config import DatasetSpec, DataSpec
from atb.data import load_candles
from atb.dataset import forecast_origins, idle_stretches, split_origins
from atb.evaluation.skill import fit_baseline_gate
from atb.features import feature_matrix
from atb.folds import walk_forward_folds
from atb.models.gate import SkillGate

RULES = ("least_squares", "significant", "drift", "naive")


def drift_weight(rule: str, y_val: np.ndarray, drift: np.ndarray, horizons: tuple[int, ...]) -> np.ndarray:
    if rule == "drift":
        return np.ones_like(drift)
    if rule == "naive":
        return np.zeros_like(drift)
    if rule == "significant":
        return fit_baseline_gate(y_val, drift, horizons).drift_weight
    return SkillGate.baseline_only(y_val, drift).drift_weight


def series_ratios(path: Path, spec: DatasetSpec, n_folds: int) -> dict[str, list[list[float]]]:
    """Per rule, per inner fold: test RMSE of a*m over the naive forecast's, per horizon."""
    candles = load_candles(DataSpec(symbol=path.stem.split("_")[0], data_path=path))
    features = feature_matrix(candles)
    origins = forecast_origins(features, spec.lookback, spec.max_horizon, idle_stretches(candles.frame, spec.max_idle_bars))
    _, val_part, _ = split_origins(len(origins), spec.split, purge=spec.max_horizon)
    before_test = origins[: val_part.stop]  # training and validation origins only
    close = candles.frame["close"].to_numpy(dtype=float)
    y = np.stack([np.log(close[before_test + h] / close[before_test]) for h in spec.horizons], axis=1)
    out: dict[str, list[list[float]]] = {rule: [] for rule in RULES}
    for fold in walk_forward_folds(len(before_test), n_splits=n_folds, max_horizon=spec.max_horizon):
        drift = y[fold.train].mean(axis=0)
        for rule in RULES:
            served = drift_weight(rule, y[fold.val], drift, spec.horizons) * drift
            error = y[fold.test] - served
            out[rule].append((np.sqrt((error**2).mean(axis=0) / (y[fold.test] ** 2).mean(axis=0))).tolist())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    spec = DatasetSpec()
    results = {path.stem: series_ratios(path, spec, args.folds) for path in args.files}
    print(f"inner folds on the training and validation parts; RMSE of a*m over naive's, per horizon {list(spec.horizons)}")
    print("| rule | mean over series and folds | worst series (mean over its folds) |\n|---|---|---|")
    for rule in RULES:
        every = np.array([row for series in results.values() for row in series[rule]])
        per_series = {name: np.mean(series[rule], axis=0) for name, series in results.items()}
        worst = " / ".join(f"{max(v[j] for v in per_series.values()):.3f}" for j in range(len(spec.horizons)))
        print(f"| {rule} | {' / '.join(f'{v:.3f}' for v in every.mean(axis=0))} | {worst} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
