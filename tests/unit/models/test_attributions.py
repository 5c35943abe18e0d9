"""Integrated gradients of the neural types: each window's attributions plus the forecast at the
median window add up to its forecast (completeness), and they find the input that drives it."""

import numpy as np
import pytest

from atb.evaluation.importance import attribution_explanation
from atb.models import AVAILABLE_MODELS, create_model, model_class
from atb.models.seeds import SeedAverage
from atb.models.trainer import FitSettings
from atb.windows import Windows

HORIZONS = (1, 3)
NEURAL = [name for name in AVAILABLE_MODELS if model_class(name).is_neural]


def _driven(n: int, seed: int) -> Windows:
    """Targets driven by feature 1 over the last bars; features 0 and 2 are noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 10, 3)).astype(np.float32)
    signal = X[:, -3:, 1].mean(axis=1)
    return Windows(X, np.column_stack([0.5 * signal, signal]).astype(np.float32))


@pytest.mark.parametrize("model_type", NEURAL)
def test_attributions_add_up_to_the_forecast(model_type):
    model = create_model(model_type, (10, 3), HORIZONS, "lightweight")
    model.fit(_driven(64, 0), _driven(32, 1), FitSettings(epochs=1, device="cpu"))
    X = _driven(20, 2).X
    values = model.attributions(X)
    assert values.shape == (20, len(HORIZONS), 4) and model.attribution_method == "integrated gradients"
    prediction = model.predict(X)
    np.testing.assert_allclose(values.sum(axis=2), prediction, atol=0.02 * np.abs(prediction).max() + 1e-6)
    assert np.all(values[:, :, -1] == values[0, :, -1])  # one reference forecast per horizon


def test_attributions_find_the_driver_and_average_over_seeds():
    members = []
    for seed in (0, 1):
        model = create_model("lstm", (10, 3), HORIZONS, "lightweight")
        model.fit(_driven(600, 10), _driven(150, 11), FitSettings(epochs=15, device="cpu", seed=seed))
        members.append(model)
    X = _driven(40, 12).X
    values = members[0].attributions(X)
    assert np.abs(values[:, :, 1]).mean() > 3 * np.abs(values[:, :, [0, 2]]).mean()
    averaged, method = attribution_explanation(SeedAverage(members, [0, 1]), X)
    np.testing.assert_allclose(averaged, (values + members[1].attributions(X)) / 2)
    assert method == "integrated gradients"
