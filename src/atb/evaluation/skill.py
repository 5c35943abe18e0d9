"""Validated skill: the skill gate keeps a model's weight only where validation shows, with
significance, that the gated forecast beats the best baseline mix.

Per horizon, two gates are fitted on the validation origins: the least-squares
gate (`a_h`, `k_h`) and the baseline-only gate (`k_h = 0`, `a_h` the best mix
of naive and drift). The model keeps its weight when the Diebold-Mariano test
(squared errors, Newey-West variance over h-1 lags, HLN correction, as in the
protocol) finds the first more accurate than the second, one-sided p below
`SIGNIFICANCE`; otherwise the horizon is served by the baseline mix. Both gates
are fitted on the same validation origins the test is run on, so the test
favours the model a little; the threshold is the conventional 5%, not tuned.
"""

from __future__ import annotations

import math

import numpy as np

from atb.evaluation.metrics import diebold_mariano
from atb.models.gate import SkillGate

SIGNIFICANCE = 0.05


def fit_skill_gate(
    val_prediction: np.ndarray, val_target: np.ndarray, drift: np.ndarray, horizons: tuple[int, ...]
) -> SkillGate:
    """The gate per horizon: least squares where the model's skill on validation is significant,
    the baseline mix elsewhere; the evidence (p-values, which kept the model) is recorded."""
    y = np.asarray(val_target, dtype=float)
    full = SkillGate.fit(val_prediction, y, drift)
    baseline = SkillGate.baseline_only(y, drift)
    gated, base = full.apply(val_prediction), baseline.apply(val_prediction)
    pvalues = [one_sided_pvalue(y[:, j] - gated[:, j], y[:, j] - base[:, j], h) for j, h in enumerate(horizons)]
    keep = np.array([p < SIGNIFICANCE for p in pvalues])
    return SkillGate(
        drift=full.drift,
        drift_weight=np.where(keep, full.drift_weight, baseline.drift_weight),
        model_weight=np.where(keep, full.model_weight, 0.0),
        evidence={
            "test": f"Diebold-Mariano, one-sided, gated model vs baseline mix on validation, p < {SIGNIFICANCE}",
            "pvalue": pvalues,
            "model_kept": keep.tolist(),
            "least_squares": {"drift_weight": full.drift_weight.tolist(), "model_weight": full.model_weight.tolist()},
        },
    )


def one_sided_pvalue(errors_model: np.ndarray, errors_reference: np.ndarray, horizon: int) -> float:
    """P-value of "the model's squared errors are smaller" (1.0 where the test is undefined)."""
    statistic, two_sided = diebold_mariano(errors_model, errors_reference, horizon)
    if math.isnan(statistic):
        return 1.0
    return two_sided / 2 if statistic < 0 else 1.0 - two_sided / 2
