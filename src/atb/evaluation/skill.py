"""Validated skill: the skill gate keeps a model's weight only where validation shows, with
significance, that the gated forecast beats the best baseline mix.

Per horizon, two gates are fitted on the validation origins: the least-squares
gate (`a_h`, `k_h`) and the baseline gate (`k_h = 0`). The baseline gate's drift
weight `a_h` is the least-squares mix of naive and drift, kept only where that
mix beats the naive forecast on validation (one-sided p below
`DRIFT_SIGNIFICANCE`, 5%); elsewhere it is 0 (naive). The model keeps its weight
where it beats the baseline gate at one-sided p below `MODEL_SIGNIFICANCE`, 1%.
"Beats" is the Diebold-Mariano test (squared errors, Newey-West variance over
h-1 lags, HLN correction, as in the protocol). The weights are fitted on the same
validation origins the tests are run on, which favours the model side; no model
has seen them (networks and LightGBM stop early on a held-out tail of the
training part).

Both levels were chosen without the test part. The drift weight's: on inner
walk-forward folds of the training and validation parts of the seven daily
series (`tests/benchmarks/bench_gate_rule.py`), the unconditional least-squares
drift weight lost 1.5% to naive at h=30 on average (4.9% on the worst series),
the 5% rule 0.1% (0.7%). The model weight's: on the validation part alone of
every model type on those series (`tests/benchmarks/bench_model_gate_rule.py`,
gates fitted on the earlier half of the validation origins and scored on the
later half; at the time the networks were early-stopped on validation), model
weights kept at 5% lost out of sample (the worst type's mean over series 1.022
RMSE/naive at h=7; 9 of 231 (run, horizon) pairs above 1.01); at 1% none was
kept that lost (1.000, none above 1.01), as with no model weight at all.
"""

from __future__ import annotations

import math

import numpy as np

from atb.evaluation.metrics import diebold_mariano
from atb.models.gate import SkillGate

MODEL_SIGNIFICANCE = 0.01  # the model weight against the baseline mix
DRIFT_SIGNIFICANCE = 0.05  # the drift weight against naive


def fit_skill_gate(
    val_prediction: np.ndarray, val_target: np.ndarray, drift: np.ndarray, horizons: tuple[int, ...], level: float = MODEL_SIGNIFICANCE
) -> SkillGate:
    """The gate per horizon: least squares where the model's skill on validation is significant
    (one-sided p < `level`), the baseline mix elsewhere; the evidence (p-values, which kept the
    model) is recorded."""
    y = np.asarray(val_target, dtype=float)
    full = SkillGate.fit(val_prediction, y, drift)
    baseline = fit_baseline_gate(y, drift, horizons)
    gated, base = full.apply(val_prediction), baseline.apply(val_prediction)
    pvalues = [one_sided_pvalue(y[:, j] - gated[:, j], y[:, j] - base[:, j], h) for j, h in enumerate(horizons)]
    keep = np.array([p < level for p in pvalues])
    return SkillGate(
        drift=full.drift,
        drift_weight=np.where(keep, full.drift_weight, baseline.drift_weight),
        model_weight=np.where(keep, full.model_weight, 0.0),
        evidence={
            "test": f"Diebold-Mariano, one-sided, on validation: gated model vs baseline gate at p < {level}, "
                    f"baseline mix vs naive at p < {DRIFT_SIGNIFICANCE}",
            "pvalue": pvalues,
            "model_kept": keep.tolist(),
            "drift_pvalue": baseline.evidence["drift_pvalue"],
            "drift_kept": baseline.evidence["drift_kept"],
            "least_squares": {"drift_weight": full.drift_weight.tolist(), "model_weight": full.model_weight.tolist()},
        },
    )


def fit_baseline_gate(val_target: np.ndarray, drift: np.ndarray, horizons: tuple[int, ...]) -> SkillGate:
    """`k_h = 0`; `a_h` the least-squares mix of naive and drift where that mix beats naive
    on validation (one-sided DM p < `DRIFT_SIGNIFICANCE`), else 0: the naive forecast."""
    y = np.asarray(val_target, dtype=float)
    mix = SkillGate.baseline_only(y, drift)
    pvalues = [one_sided_pvalue(y[:, j] - mix.drift_weight[j] * mix.drift[j], y[:, j], h) for j, h in enumerate(horizons)]
    keep = np.array([p < DRIFT_SIGNIFICANCE for p in pvalues])
    return SkillGate(
        drift=mix.drift,
        drift_weight=np.where(keep, mix.drift_weight, 0.0),
        model_weight=mix.model_weight,
        evidence={"drift_pvalue": pvalues, "drift_kept": keep.tolist()},
    )


def one_sided_pvalue(errors_model: np.ndarray, errors_reference: np.ndarray, horizon: int) -> float:
    """P-value of "the model's squared errors are smaller" (1.0 where the test is undefined)."""
    statistic, two_sided = diebold_mariano(errors_model, errors_reference, horizon)
    if math.isnan(statistic):
        return 1.0
    return two_sided / 2 if statistic < 0 else 1.0 - two_sided / 2
