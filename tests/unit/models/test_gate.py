"""The skill gate: least squares in the unit box, fitted on validation only, applied identically
by every serving path (predict, MC samples, the exported network)."""

import itertools
import json

import numpy as np
import pytest

from atb.models import create_model
from atb.models.gate import GatedModel, SkillGate
from atb.models.onnx import OnnxForecaster, onnx_bytes
from atb.models.trainer import FitSettings
from atb.windows import Windows

RNG = np.random.default_rng(0)


def sse(gate: SkillGate, f: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ((y - gate.apply(f)) ** 2).sum(axis=0)


def test_a_perfect_forecast_is_served_unchanged():
    y = RNG.normal(0.01, 0.05, size=(200, 2))
    gate = SkillGate.fit(y, y, drift=np.array([0.002, 0.02]))
    np.testing.assert_allclose(gate.drift_weight, 1.0)
    np.testing.assert_allclose(gate.model_weight, 1.0)


def test_noise_falls_back_to_drift_or_naive_as_validation_supports():
    n = 2000
    noise = RNG.normal(0.0, 0.05, size=(n, 2))
    up = 0.02 + RNG.normal(0.0, 0.05, size=n)  # realised returns around the training drift
    flat = RNG.normal(0.0, 0.05, size=n)  # realised returns around zero: drift loses to naive
    gate = SkillGate.fit(noise, np.column_stack([up, flat]), drift=np.array([0.02, 0.02]))
    assert gate.model_weight[0] < 0.05 and gate.model_weight[1] < 0.05
    assert gate.drift_weight[0] > 0.9 and gate.drift_weight[1] < 0.1


def test_the_box_solution_is_the_minimum_over_the_unit_square():
    grid = np.linspace(0.0, 1.0, 101)
    for trial in range(20):
        rng = np.random.default_rng(trial)
        y = rng.normal(rng.normal(0, 0.02), 0.05, size=(150, 1))
        f = rng.uniform(-2, 2) * y + rng.normal(0, rng.uniform(0.01, 0.2), size=y.shape) + rng.normal(0, 0.05)
        drift = np.array([rng.normal(0, 0.03)])
        gate = SkillGate.fit(f, y, drift)
        assert 0.0 <= gate.drift_weight[0] <= 1.0 and 0.0 <= gate.model_weight[0] <= 1.0
        best = min(sse(SkillGate(drift, np.array([a]), np.array([k])), f, y)[0] for a, k in itertools.product(grid, grid))
        assert sse(gate, f, y)[0] <= best + 1e-12


def test_round_trip_and_bad_input(tmp_path):
    gate = SkillGate(np.array([0.001, 0.01]), np.array([1.0, 0.3]), np.array([0.5, 0.0]))
    gate.save(tmp_path / "gate.json")
    loaded = SkillGate.load(tmp_path / "gate.json")
    assert json.loads((tmp_path / "gate.json").read_text())["formula"] == "a_h * m_h + k_h * (f - m_h)"
    np.testing.assert_array_equal(loaded.apply(np.ones((3, 2))), gate.apply(np.ones((3, 2))))
    np.testing.assert_allclose(gate.apply(np.array([[0.02, 0.05]])), [[0.001 + 0.5 * (0.02 - 0.001), 0.3 * 0.01]])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="bad.json is corrupt"):
        SkillGate.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match=r"needs \(n, H\) forecasts"):
        SkillGate.fit(np.ones((3, 2)), np.ones((3, 1)), np.zeros(2))


def test_every_serving_path_of_a_gated_model_is_gated():
    X = RNG.normal(size=(64, 8, 3)).astype(np.float32)
    y = (0.01 * X[:, -1, :2]).astype(np.float32)
    model = create_model("lstm", (8, 3), horizons=(1, 7), variant="lightweight")
    model.fit(Windows(X, y), Windows(X[:16], y[:16]), FitSettings(epochs=1, batch_size=16, device="cpu"))
    gate = SkillGate(np.array([0.001, 0.007]), np.array([1.0, 0.5]), np.array([0.25, 0.0]))
    gated = GatedModel(model, gate)
    np.testing.assert_allclose(gated.predict(X), gate.apply(model.predict(X)))
    np.testing.assert_allclose(gated.predict_samples(X[:4], 5, seed=3), gate.apply(model.predict_samples(X[:4], 5, seed=3)))
    np.testing.assert_allclose(OnnxForecaster(onnx_bytes(gated)).predict(X), gated.predict(X), atol=1e-6)
    assert gated.model_type == "lstm" and gated.supports_mc_dropout and gated.horizons == (1, 7)
    with pytest.raises(ValueError, match="the gate has 3 horizons, lstm forecasts 2"):
        GatedModel(model, SkillGate.identity(np.zeros(3)))
