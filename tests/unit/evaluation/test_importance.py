"""Permutation importance ranks the feature a model actually uses first."""

import numpy as np

from atb.evaluation.importance import permutation_importance


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5, 3)).astype(np.float32)
    y = np.stack([X[:, -1, 1], 2 * X[:, -1, 1]], axis=1)
    return X, y


def _model(X):
    return np.stack([X[:, -1, 1], 2 * X[:, -1, 1]], axis=1)


def test_used_feature_ranks_first_and_unused_ones_score_zero():
    X, y = _data()
    importance = permutation_importance(_model, X, y, ["a", "b", "c"], seed=1)
    assert importance.index[0] == "b" and importance["b"] > 1.0
    assert importance["a"] == 0.0 and importance["c"] == 0.0


def test_subsample_is_used_and_seeded():
    X, y = _data(1000)
    seen = []

    def model(batch):
        seen.append(len(batch))
        return _model(batch)

    first = permutation_importance(model, X, y, ["a", "b", "c"], seed=3, max_samples=100)
    assert set(seen) == {100}
    again = permutation_importance(_model, X, y, ["a", "b", "c"], seed=3, max_samples=100)
    assert first.equals(again)
