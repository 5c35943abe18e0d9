"""Permutation importance of input features for any model with `predict(X)`, and SHAP values
for tree models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from atb.dataset import Dataset
    from atb.models import ForecastModel


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    feature_names: list[str],
    seed: int = 0,
    max_samples: int = 256,
) -> pd.Series:
    """Rise in mean squared error (averaged over horizons) when one feature's whole
    window column is shuffled across samples; sorted, largest first.

    Use validation or test windows: importance on training windows rewards overfitting.
    At most `max_samples` windows, evenly spaced in time, are used: one forward pass
    per feature over every window costs minutes for the larger networks on a CPU.
    """
    if X.shape[2] != len(feature_names):
        raise ValueError(f"X has {X.shape[2]} features but {len(feature_names)} names were given")
    keep = evenly_spaced(len(X), max_samples)
    X, y = X[keep], y[keep]
    rng = np.random.default_rng(seed)
    baseline = float(np.mean((predict(X) - y) ** 2))
    order = rng.permutation(len(X))
    rises = {}
    for j, name in enumerate(feature_names):
        shuffled = X.copy()
        shuffled[:, :, j] = X[order, :, j]
        rises[name] = float(np.mean((predict(shuffled) - y) ** 2)) - baseline
    return pd.Series(rises, name="mse_increase").sort_values(ascending=False)


def feature_importance(model: ForecastModel, dataset: Dataset, seed: int) -> pd.Series:
    """LightGBM gain by feature, else permutation importance on the validation windows."""
    names = dataset.transform.feature_names
    if model.has_feature_importance:
        return model.feature_importance_by_feature(names)
    return permutation_importance(model.predict, dataset.val.X, dataset.val.y, names, seed=seed)


def attribution_explanation(model: object, X: np.ndarray) -> tuple[np.ndarray, str] | None:
    """Per-forecast attributions `(n, H, n_features + 1)` (last column: the reference value;
    each row sums to the forecast) of a model that computes them, averaged over the members of a
    seed ensemble as its forecast is, with the method's name; None for a model without them."""
    members = getattr(model, "members", [model])
    methods = {getattr(member, "attribution_method", None) for member in members}
    if len(methods) != 1 or None in methods:
        return None
    return np.mean([member.attributions(X) for member in members], axis=0), methods.pop()


def evenly_spaced(n: int, at_most: int) -> np.ndarray:
    """Positions of at most `at_most` of `n` windows, evenly spaced in time (all of them when fewer)."""
    if n <= at_most:
        return np.arange(n)
    return np.linspace(0, n - 1, at_most).round().astype(int)
