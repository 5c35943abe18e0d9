import numpy as np
import pandas as pd
import pytest

from atb.ensemble import combiners
from atb.ensemble.combiners import FixedWeights, OnlineWeights, RegimeWeights, StackingMetaLearner

HORIZONS = (1, 7, 30)
FAMILIES = {"enhanced_lstm": "recurrent", "transformer": "attention", "lightgbm": "trees"}


def _base_predictions(n: int, noise: dict[str, float], seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.normal(0.0, 0.02, size=(n, len(HORIZONS))) * np.sqrt(HORIZONS)
    predictions = {name: y + rng.normal(0.0, scale, size=y.shape) for name, scale in noise.items()}
    return predictions, y


def test_fixed_default_weights_and_combination():
    predictions = {"enhanced_lstm": np.ones((4, 3)), "transformer": np.full((4, 3), 2.0), "lightgbm": np.zeros((4, 3))}
    combined = FixedWeights().combine(predictions)
    np.testing.assert_allclose(combined, np.full((4, 3), 0.35 + 0.80))
    frame = FixedWeights().weights_for(5)
    assert list(frame.columns) == ["enhanced_lstm", "transformer", "lightgbm"] and frame.shape == (5, 3)
    np.testing.assert_allclose(frame.sum(axis=1), 1.0)


def test_fixed_weights_normalise_over_present_models_and_default_to_equal():
    subset = FixedWeights().weights_of(["enhanced_lstm", "lightgbm"])
    np.testing.assert_allclose(subset.to_numpy(), [0.35 / 0.60, 0.25 / 0.60])
    np.testing.assert_allclose(FixedWeights().weights_of(["a", "lightgbm"]).to_numpy(), [0.5, 0.5])
    np.testing.assert_allclose(FixedWeights({"a": 3, "b": 1, "c": 4}).weights_of(["a", "b"]).to_numpy(), [0.75, 0.25])
    with pytest.raises(ValueError, match=r"no weight given for models \['b'\]"):
        FixedWeights({"a": 1.0}).weights_of(["a", "b"])


def test_regime_weights_favour_the_family_of_each_regime():
    names = ["enhanced_lstm", "transformer", "lightgbm"]
    regime = RegimeWeights(FAMILIES, tilt=0.5)
    base = FixedWeights().weights_of(names)
    favoured = {"trending": "enhanced_lstm", "mean_reverting": "lightgbm", "volatile": "transformer"}
    for label, name in favoured.items():
        weights = regime.weights_in(label, names)
        assert weights.sum() == pytest.approx(1.0)
        assert weights[name] > base[name]
        assert all(weights[other] < base[other] for other in names if other != name)
    np.testing.assert_allclose(regime.weights_in("ranging", names).to_numpy(), np.full(3, 1 / 3))
    no_lstm = ["transformer", "lightgbm"]
    np.testing.assert_allclose(regime.weights_in("trending", no_lstm), FixedWeights().weights_of(no_lstm))


def test_regime_combine_uses_each_origins_weights():
    predictions, _ = _base_predictions(6, {"enhanced_lstm": 0.01, "transformer": 0.01, "lightgbm": 0.01})
    regimes = pd.Series(["trending", "volatile", "ranging", "mean_reverting", "trending", "ranging"])
    regime = RegimeWeights(FAMILIES)
    weights = regime.weights_over_time(regimes, list(predictions))
    expected = sum(predictions[name] * weights[name].to_numpy()[:, None] for name in predictions)
    np.testing.assert_allclose(regime.combine(predictions, regimes), expected)
    with pytest.raises(ValueError, match="unknown regime 'sideways'"):
        regime.combine(predictions, ["sideways"] * 6)
    with pytest.raises(ValueError, match="5 regime labels for 6 origins"):
        regime.combine(predictions, regimes[:5])


def _split_times(n: int):
    times = pd.date_range("2021-01-01", periods=n, freq="D")
    train_end, val_end = int(n * 0.7), int(n * 0.85)
    return times, slice(0, train_end), slice(train_end, val_end), slice(val_end, n)


def test_stacking_recovers_a_planted_combination():
    rng = np.random.default_rng(1)
    n = 400
    a, b, c = (rng.normal(0.0, 0.02, size=(n, 3)) for _ in range(3))
    y = 0.7 * a + 0.3 * b + rng.normal(0.0, 0.001, size=(n, 3))
    times = pd.date_range("2022-01-01", periods=n, freq="D")
    learner = StackingMetaLearner(alpha=1e-4).fit({"a": a, "b": b, "c": c}, y, times, (times[0], times[-1]))
    coefficients = learner.coefficients()
    assert list(coefficients.columns) == ["a", "b", "c", "intercept"]
    np.testing.assert_allclose(coefficients[["a", "b", "c"]].to_numpy(), [[0.7, 0.3, 0.0]] * 3, atol=0.02)
    combined = learner.combine({"c": c, "b": b, "a": a})
    assert np.sqrt(np.mean((combined - y) ** 2)) < 0.003


def test_stacking_refuses_origins_outside_the_validation_window():
    predictions, y = _base_predictions(200, {"enhanced_lstm": 0.01, "transformer": 0.02, "lightgbm": 0.03})
    times, train, val, test = _split_times(200)
    window = (times[val][0], times[val][-1])
    for part in (slice(train.start, val.stop), slice(val.start, test.stop), slice(None)):
        with pytest.raises(ValueError, match="outside the validation window"):
            StackingMetaLearner().fit({k: v[part] for k, v in predictions.items()}, y[part], times[part], window)


def test_stacking_is_fitted_on_exactly_the_validation_arrays(monkeypatch):
    predictions, y = _base_predictions(200, {"enhanced_lstm": 0.01, "transformer": 0.02, "lightgbm": 0.03})
    times, _, val, _ = _split_times(200)
    seen = []
    original_fit = combiners.ElasticNet.fit

    def spy_fit(model, X, target, *args, **kwargs):
        seen.append((np.array(X), np.array(target)))
        return original_fit(model, X, target, *args, **kwargs)

    monkeypatch.setattr(combiners.ElasticNet, "fit", spy_fit)
    val_predictions = {name: values[val] for name, values in predictions.items()}
    StackingMetaLearner().fit(val_predictions, y[val], times[val], (times[val][0], times[val][-1]))
    assert len(seen) == len(HORIZONS)
    for h, (X, target) in enumerate(seen):
        np.testing.assert_array_equal(X, np.column_stack([values[:, h] for values in val_predictions.values()]))
        np.testing.assert_array_equal(target, y[val][:, h])


def test_stacking_checks_models_and_fitting():
    predictions, y = _base_predictions(50, {"a": 0.01, "b": 0.02})
    times = np.arange(50)
    with pytest.raises(RuntimeError, match="not fitted"):
        StackingMetaLearner().combine(predictions)
    learner = StackingMetaLearner().fit(predictions, y, times, (0, 49))
    with pytest.raises(ValueError, match=r"lack models \['b'\]"):
        learner.combine({"a": predictions["a"]})


def test_online_weight_of_a_better_model_rises():
    predictions, y = _base_predictions(400, {"good": 0.005, "bad": 0.03, "worse": 0.05}, seed=3)
    _, weights = OnlineWeights(window=50, horizons=HORIZONS).combine(predictions, y)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights[0], 1 / 3)
    for j in range(len(HORIZONS)):
        assert weights[-50:, 0, j].mean() > 0.8 > weights[:5, 0, j].mean()


@pytest.mark.parametrize("origin", [40, 75, 150])
def test_online_weights_use_only_realised_errors(origin):
    predictions, y = _base_predictions(200, {"enhanced_lstm": 0.01, "transformer": 0.02, "lightgbm": 0.03}, seed=4)
    online = OnlineWeights(window=20, horizons=HORIZONS)
    _, weights = online.combine(predictions, y)
    rng = np.random.default_rng(5)
    for j, horizon in enumerate(HORIZONS):
        unrealised = y.copy()
        unrealised[origin - horizon + 1 :, j] = rng.normal(0.0, 1.0, size=len(y) - origin + horizon - 1)
        _, changed = online.combine(predictions, unrealised)
        np.testing.assert_array_equal(changed[: origin + 1, :, j], weights[: origin + 1, :, j])
        realised = y.copy()
        realised[origin - horizon, j] += 1.0
        _, changed = online.combine(predictions, realised)
        np.testing.assert_array_equal(changed[:origin, :, j], weights[:origin, :, j])
        assert not np.allclose(changed[origin, :, j], weights[origin, :, j])


def test_online_warm_start_carries_pending_validation_errors():
    noise = {"good": 0.005, "bad": 0.03, "worse": 0.05}
    val_predictions, y_val = _base_predictions(150, noise, seed=6)
    test_predictions, y_test = _base_predictions(60, noise, seed=7)
    fitted = OnlineWeights(window=30, horizons=HORIZONS).fit(val_predictions, y_val)
    _, weights = fitted.combine(test_predictions, y_test)
    assert np.all(weights[0, 0] > 0.8)
    j = HORIZONS.index(7)
    pending = y_val.copy()
    pending[-6:, j] += 1.0  # realised only at the 2nd to 6th test origins
    _, same = OnlineWeights(window=30, horizons=HORIZONS).fit(val_predictions, pending).combine(test_predictions, y_test)
    np.testing.assert_array_equal(same[0, :, j], weights[0, :, j])
    assert not np.allclose(same[1, :, j], weights[1, :, j])
    due = y_val.copy()
    due[-7, j] += 1.0  # realised at the first test origin
    _, moved = OnlineWeights(window=30, horizons=HORIZONS).fit(val_predictions, due).combine(test_predictions, y_test)
    assert not np.allclose(moved[0, :, j], weights[0, :, j])


def test_online_skips_unrealised_targets_and_checks_horizons():
    predictions, y = _base_predictions(40, {"a": 0.01, "b": 0.02})
    y[20:] = np.nan
    combined, weights = OnlineWeights(horizons=HORIZONS).combine(predictions, y)
    assert np.all(np.isfinite(combined)) and np.all(np.isfinite(weights))
    with pytest.raises(ValueError, match="must list 3 positive horizons"):
        OnlineWeights(horizons=(1, 7)).combine(predictions, y)


def test_online_weights_after_logged_errors_match_the_recursion():
    """From the validation state, absorbing the test errors realised by origin i gives the weights
    `combine` used at i (once the pending validation errors are all due, i >= max horizon)."""
    names = ["enhanced_lstm", "transformer", "lightgbm"]
    val_predictions, y_val = _base_predictions(80, {"enhanced_lstm": 0.01, "transformer": 0.03, "lightgbm": 0.02}, seed=1)
    test_predictions, y_test = _base_predictions(60, {"enhanced_lstm": 0.03, "transformer": 0.01, "lightgbm": 0.02}, seed=2)
    online = OnlineWeights(window=10, horizons=HORIZONS).fit(val_predictions, y_val)
    restored = OnlineWeights.from_state_dict(online.state_dict())
    _, used = online.combine(test_predictions, y_test)
    errors = (np.stack([test_predictions[name] for name in names], axis=1) - y_test[:, None, :]) ** 2
    for i in (30, 45, 59):
        realised = [errors[: max(i - h + 1, 0), :, j] for j, h in enumerate(HORIZONS)]
        np.testing.assert_allclose(restored.weights_after(realised), used[i], rtol=1e-12)
    assert not np.allclose(restored.weights_after([errors[:0, :, j] for j in range(3)]), used[59])  # the log moved them
    with pytest.raises(RuntimeError, match="not fitted"):
        OnlineWeights(horizons=HORIZONS).weights_after([errors[:0, :, j] for j in range(3)])
