"""How the skill gate should decide a model's weight, chosen on the validation part alone.

Reads the `predictions.parquet` that `atb benchmark` writes (every run's raw
forecasts of the validation origins; the test rows are never read). For every
gated run (series, model, seed, split) the validation origins are cut in time:
the earlier `--fit-share` fits the gate under each rule, and the rest, after a
purge of the longest horizon (so no fitting target overlaps a scoring one), is
scored: RMSE of the served price forecast over the naive forecast's. The drift
`m_h` is the run's own (its training part's mean), read back from its drift column.

Rules (each gives `a_h`, `k_h` from the fitting block):

- significant:  the model weight kept where the least-squares gated forecast beats
                the baseline mix by a one-sided Diebold-Mariano test at p < 0.05,
                on the same origins the weights were fitted on (the gate's rule
                before this comparison);
- cross_fitted: the same test on out-of-fold forecasts: the fitting block cut in
                two (purged), each half's gate and baseline mix fitted on the other
                half; kept weights are then fitted on the whole block;
- strict:       as significant, at p < 0.01 (the gate's rule since, chosen by this
                comparison: see `atb.evaluation.skill`);
- baseline:     the model weight is never kept (the baseline mix always).

The baseline mix (drift weight) follows the gate's own rule in every case.

    .venv/bin/python tests/benchmarks/bench_model_gate_rule.py BENCHMARK_DIR/predictions.parquet
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from atb.evaluation.predictions import wide_forecasts
from atb.evaluation.skill import fit_baseline_gate, fit_skill_gate, one_sided_pvalue
from atb.models.gate import SkillGate

UNGATED = ("naive", "drift")


def cross_fitted_rule(f: np.ndarray, y: np.ndarray, drift: np.ndarray, horizons: tuple[int, ...]) -> SkillGate:
    half, purge = len(y) // 2, max(horizons)
    parts = (slice(0, half - purge), slice(half, len(y)))
    model, reference = [], []
    for fit_part, score_part in (parts[::-1], parts):  # each half scored by the other half's fit
        model.append(SkillGate.fit(f[fit_part], y[fit_part], drift).apply(f[score_part]))
        reference.append(fit_baseline_gate(y[fit_part], drift, horizons).apply(f[score_part]))
    scored, model, reference = np.concatenate([y[p] for p in parts]), np.concatenate(model), np.concatenate(reference)
    pvalues = [one_sided_pvalue(scored[:, j] - model[:, j], scored[:, j] - reference[:, j], h) for j, h in enumerate(horizons)]
    full, base, keep = SkillGate.fit(f, y, drift), fit_baseline_gate(y, drift, horizons), np.array(pvalues) < 0.05
    return SkillGate(drift=full.drift, drift_weight=np.where(keep, full.drift_weight, base.drift_weight),
                     model_weight=np.where(keep, full.model_weight, 0.0))


def baseline_rule(f: np.ndarray, y: np.ndarray, drift: np.ndarray, horizons: tuple[int, ...]) -> SkillGate:
    return fit_baseline_gate(y, drift, horizons)


RULES = {
    "significant": partial(fit_skill_gate, level=0.05),
    "cross_fitted": cross_fitted_rule,
    "strict": partial(fit_skill_gate, level=0.01),
    "baseline": baseline_rule,
}


def run_arrays(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """One run's validation origins: origin close `(n,)`, realised close, raw log-return forecast
    and target `(n, H)`, the drift `(H,)`, and the horizons."""
    horizons, close, realised, forecasts = wide_forecasts(rows)
    raw = np.log(forecasts["raw"] / close[:, None])
    drift = np.log(forecasts["drift"] / close[:, None])[0]
    return close, realised, raw, np.log(realised / close[:, None]), drift, horizons


def block_ratios(rows: pd.DataFrame, fit_share: float) -> dict[str, dict[int, float]]:
    """Per rule: RMSE/naive per horizon on the later block of a run's validation origins."""
    close, realised, raw, target, drift, horizons = run_arrays(rows)
    cut = int(len(close) * fit_share)
    fit, score = slice(0, cut), slice(cut + max(horizons), len(close))
    naive_mse = ((realised[score] - close[score, None]) ** 2).mean(axis=0)
    out = {}
    for name, rule in RULES.items():
        served = close[score, None] * np.exp(rule(raw[fit], target[fit], drift, horizons).apply(raw[score]))
        out[name] = dict(zip(horizons, np.sqrt(((realised[score] - served) ** 2).mean(axis=0) / naive_mse).tolist()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", type=Path)
    parser.add_argument("--fit-share", type=float, default=0.5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    frame = pd.read_parquet(args.predictions)
    frame = frame[(frame["part"] == "validation") & ~frame["model"].isin(UNGATED)]
    records = []
    for (series, split, model, seed), rows in frame.groupby(["series", "split", "model", "seed"], sort=False):
        for rule, ratios in block_ratios(rows, args.fit_share).items():
            records += [{"series": series, "split": split, "model": model, "seed": seed, "rule": rule, "horizon": j, "ratio": r}
                        for j, r in ratios.items()]
    table = pd.DataFrame(records)
    per_type = table.groupby(["rule", "model", "horizon"])["ratio"].mean().unstack("horizon")
    print(f"later {1 - args.fit_share:.0%} of each run's validation origins (purged), gate fitted on the earlier part; RMSE/naive")
    print("| rule | mean over runs | worst type (mean over its series) | (run, horizon) pairs above 1.01 |\n|---|---|---|---|")
    for rule in RULES:
        mean = table[table["rule"] == rule].groupby("horizon")["ratio"].mean()
        worst = per_type.loc[rule].max(axis=0)
        above = table[(table["rule"] == rule) & (table["ratio"] > 1.01)]
        print(f"| {rule} | {' / '.join(f'{v:.3f}' for v in mean)} | {' / '.join(f'{v:.3f}' for v in worst)} | {len(above)} of {len(table) // len(RULES)} |")
    print("\nper type, mean over series:\n" + per_type.round(3).to_string())
    if args.json:
        args.json.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
