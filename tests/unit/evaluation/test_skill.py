"""The skill gate keeps a model's weight only with significant validation skill over the baseline mix."""

import numpy as np

from atb.evaluation.skill import DRIFT_SIGNIFICANCE, MODEL_SIGNIFICANCE, fit_baseline_gate, fit_skill_gate
from atb.models.gate import SkillGate

RNG = np.random.default_rng(0)
N, DRIFT = 400, np.array([0.002, 0.014])


def test_a_forecast_with_real_skill_keeps_its_weight_and_noise_falls_back_to_the_baseline_mix():
    signal = RNG.normal(0.0, 0.03, size=(N, 2))
    y = DRIFT + signal + RNG.normal(0.0, 0.03, size=(N, 2))
    skilled = DRIFT + signal
    noise = DRIFT + RNG.normal(0.0, 0.03, size=(N, 2))
    forecasts = np.column_stack([skilled[:, 0], noise[:, 1]])  # skill at the first horizon only
    gate = fit_skill_gate(forecasts, y, DRIFT, horizons=(1, 7))
    assert gate.evidence["model_kept"] == [True, False]
    assert gate.evidence["pvalue"][0] < MODEL_SIGNIFICANCE <= gate.evidence["pvalue"][1]
    least_squares = SkillGate.fit(forecasts, y, DRIFT)
    assert gate.model_weight[0] == least_squares.model_weight[0] > 0.5
    assert gate.model_weight[1] == 0.0
    assert gate.drift_weight[1] == fit_baseline_gate(y, DRIFT, (1, 7)).drift_weight[1]


def test_the_baseline_mix_is_naive_when_the_validation_part_fell():
    y = -0.01 + RNG.normal(0.0, 0.02, size=(N, 2))  # drift said up, validation went down
    gate = fit_skill_gate(DRIFT + RNG.normal(0.0, 0.02, size=(N, 2)), y, DRIFT, horizons=(1, 7))
    np.testing.assert_array_equal(gate.model_weight, 0.0)
    np.testing.assert_array_equal(gate.drift_weight, 0.0)  # naive
    assert SkillGate.from_dict(gate.to_dict()).evidence == gate.evidence


def test_the_drift_weight_is_kept_only_where_the_mix_beats_naive_significantly():
    rng = np.random.default_rng(1)
    steady = DRIFT + rng.normal(0.0, 0.002, size=(N, 2))  # validation rose as the training part did: drift is clearly better
    gate = fit_baseline_gate(steady, DRIFT, (1, 7))
    assert gate.evidence["drift_kept"] == [True, True]
    np.testing.assert_array_equal(gate.drift_weight, SkillGate.baseline_only(steady, DRIFT).drift_weight)
    noise = rng.normal(0.0, 0.3, size=(N, 2))
    noisy = DRIFT + noise - noise.mean(axis=0)  # the same mean as drift, lost in noise: not significant
    gate = fit_baseline_gate(noisy, DRIFT, (1, 7))
    np.testing.assert_allclose(SkillGate.baseline_only(noisy, DRIFT).drift_weight, 1.0)
    assert gate.evidence["drift_kept"] == [False, False] and min(gate.evidence["drift_pvalue"]) >= DRIFT_SIGNIFICANCE
    np.testing.assert_array_equal(gate.drift_weight, 0.0)
