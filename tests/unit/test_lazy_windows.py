"""Windows built on demand from the one scaled matrix (WindowArray) hold the values, in the order,
of the materialised windows, and every consumer gives the same numbers from either: training
and validation (a network's weights and history), prediction, MC dropout and LightGBM."""

import numpy as np
import pytest
import torch

from atb.config import TrainingConfig
from atb.data import load_candles
from atb.models import create_model
from atb.models.trainer import FitSettings
from atb.windows import WindowArray, Windows
from atb.workflows.steps import prepare_data

SETTINGS = FitSettings(epochs=2, device="cpu", seed=3)


@pytest.fixture(scope="module")
def dataset():
    config = TrainingConfig.build(days=700, lookback=20, n_features=8, horizons=(1, 5), mlflow=False)
    return prepare_data(config, load_candles(config.data)).dataset


def _materialised(windows: Windows) -> Windows:
    return Windows(np.array(windows.X), windows.y)


def test_window_array_matches_the_materialised_windows():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(50, 3)).astype(np.float32)
    ends = np.array([4, 5, 9, 30, 49])
    lazy = WindowArray(matrix, ends, lookback=5)
    expected = np.stack([matrix[e - 4 : e + 1] for e in ends])
    np.testing.assert_array_equal(np.asarray(lazy), expected)
    assert lazy.shape == (5, 5, 3) and len(lazy) == 5
    np.testing.assert_array_equal(lazy[1], expected[1])
    np.testing.assert_array_equal(lazy[[3, 0]], expected[[3, 0]])
    np.testing.assert_array_equal(lazy[1:4, -1, :], expected[1:4, -1, :])
    np.testing.assert_array_equal(np.asarray(lazy.take(np.array([True, False, True, False, True]))), expected[[0, 2, 4]])
    other = WindowArray(matrix[::-1].copy(), np.array([10, 20]), lookback=5)
    joined = WindowArray.concatenate([lazy, other, lazy.take([0])])
    np.testing.assert_array_equal(np.asarray(joined), np.concatenate([expected, np.asarray(other), expected[:1]]))
    np.testing.assert_array_equal(np.concatenate(list(lazy.batches(2))), expected)
    matrix[28, 1] = np.nan  # inside the window ending at 30 only
    assert lazy.take([0, 1, 2]).all_finite() and not lazy.all_finite()
    with pytest.raises(ValueError, match="window ends"):
        WindowArray(matrix, np.array([2]), lookback=5)


def test_the_dataset_keeps_one_matrix_for_every_part(dataset):
    for part in (dataset.train, dataset.val, dataset.test):
        assert isinstance(part.X, WindowArray) and part.X.matrix is dataset.train.X.matrix
    assert dataset.train.X.matrix.nbytes < np.asarray(dataset.train.X).nbytes / 5


def test_network_training_prediction_and_mc_dropout_are_the_same(dataset):
    fitted = []
    for train, val in ((dataset.train, dataset.val), (_materialised(dataset.train), _materialised(dataset.val))):
        model = create_model("lstm", dataset.input_shape, dataset.horizons, "lightweight")
        model.fit(train, val, SETTINGS)
        fitted.append(model)
    lazy, eager = fitted
    assert lazy.history_ == [{**row, "seconds": lazy.history_[i]["seconds"]} for i, row in enumerate(eager.history_)]
    for name, tensor in lazy.network_.state_dict().items():
        assert torch.equal(tensor, eager.network_.state_dict()[name]), name
    X = dataset.test.X
    np.testing.assert_array_equal(lazy.predict(X), lazy.predict(np.asarray(X)))
    np.testing.assert_array_equal(lazy.predict_samples(X, 4, seed=1), lazy.predict_samples(np.asarray(X), 4, seed=1))


def test_lightgbm_is_the_same(dataset):
    fitted = []
    for train, val in ((dataset.train, dataset.val), (_materialised(dataset.train), _materialised(dataset.val))):
        model = create_model("lightgbm", dataset.input_shape, dataset.horizons, "lightweight", n_estimators=40)
        model.fit(train, val, FitSettings(n_jobs=1, seed=3))
        fitted.append(model)
    lazy, eager = fitted
    assert [b.model_to_string() for b in lazy.boosters_] == [b.model_to_string() for b in eager.boosters_]
    np.testing.assert_array_equal(lazy.predict(dataset.test.X), eager.predict(np.asarray(dataset.test.X)))
