"""MC-dropout moments: spread with uncertainty on, exactly zero with it off."""

import numpy as np

from atb.ensemble.uncertainty import mc_moments
from atb.models import create_model
from atb.models.trainer import FitSettings
from atb.windows import Windows


def _split(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8, 3)).astype(np.float32)
    y = (X[:, -1, :1] * np.array([[0.01, 0.02]])).astype(np.float32)
    return Windows(X, y)


def test_std_positive_with_dropout_and_zero_without():
    model = create_model("lstm", (8, 3), horizons=(1, 7), variant="lightweight")
    model.fit(_split(64, 0), _split(16, 1), FitSettings(epochs=1, batch_size=16, device="cpu"))
    X = _split(10, 2).X
    mean, std = mc_moments(model, X, 8)
    assert mean.shape == std.shape == (10, 2) and (std > 0).all()
    point, zero = mc_moments(model, X, 8, enabled=False)
    assert (zero == 0).all()
    np.testing.assert_array_equal(point, model.predict(X))


def test_a_given_point_forecast_is_used_when_not_sampling():
    model = create_model("drift", (8, 3), horizons=(1, 7))
    model.fit(_split(64, 0), _split(16, 1))
    point = np.full((10, 2), 0.5)
    mean, std = mc_moments(model, _split(10, 2).X, 8, point=point)
    assert mean is point and (std == 0).all()
