"""Task "direction": models that output the probability of "up" per horizon (BCE for the
networks, LightGBM's binary objective), saved and loaded with their task; others refuse."""

import numpy as np
import pytest

from atb.models import AVAILABLE_MODELS, create_model, load_model, model_class
from atb.models.base import CapabilityError
from atb.models.trainer import FitSettings
from atb.windows import Windows

HORIZONS = (1, 7)


def _separable(n: int = 400, seed: int = 0) -> tuple[Windows, Windows, np.ndarray]:
    """Up at h=1 when the last bar's first feature is positive, at h=7 when the second is."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8, 3)).astype(np.float32)
    y = (X[:, -1, :2] > 0).astype(np.float32)
    cut = int(n * 0.75)
    return Windows(X[:cut], y[:cut]), Windows(X[cut:], y[cut:]), y[cut:]


@pytest.mark.parametrize("model_type", ["lstm", "tcn", "lightgbm"])
def test_direction_models_learn_probabilities_and_round_trip(model_type, tmp_path):
    train, val, truth = _separable()
    model = create_model(model_type, (8, 3), HORIZONS, "lightweight", task="direction")
    model.fit(train, val, FitSettings(epochs=30, device="cpu", patience=30))
    probability = model.predict(val.X)
    assert probability.shape == truth.shape and ((probability >= 0) & (probability <= 1)).all()
    assert ((probability > 0.5) == (truth == 1)).mean() > 0.8
    loaded = load_model(model.save(tmp_path / "model"))
    assert loaded.task == "direction" and loaded.get_params()["task"] == "direction"
    np.testing.assert_allclose(loaded.predict(val.X), probability, rtol=1e-6)


def test_networks_train_on_binary_cross_entropy():
    train, val, _ = _separable()
    model = create_model("lstm", (8, 3), HORIZONS, "lightweight", task="direction")
    assert model.training_defaults()["loss"] == "bce"
    history = model.fit(train, val, FitSettings(epochs=1, device="cpu"))
    probability = model.predict(val.X)
    bce = -np.mean(val.y * np.log(probability) + (1 - val.y) * np.log(1 - probability))
    assert history[0]["val_loss"] == pytest.approx(bce, rel=1e-4)  # equal horizon weights: the mean BCE
    with pytest.raises(ValueError, match="does not fit task"):
        create_model("lstm", (8, 3), HORIZONS, "lightweight").fit(train, val, FitSettings(epochs=1, device="cpu", loss="bce"))


def test_types_without_direction_refuse_it_and_regression_stays_the_default():
    without = [name for name in AVAILABLE_MODELS if not model_class(name).supports_direction]
    assert {"arima", "ets", "naive", "drift"} <= set(without)
    for name in without:
        with pytest.raises(CapabilityError, match="cannot forecast direction"):
            create_model(name, (8, 3), HORIZONS, task="direction")
    assert create_model("lstm", (8, 3), HORIZONS).task == "regression"
    with pytest.raises(ValueError, match="unknown task"):
        create_model("lstm", (8, 3), HORIZONS, task="classify")
