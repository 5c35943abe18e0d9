"""Permutation importance of input features for any model with `predict(X)`."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd


def permutation_importance(
    predict: Callable[[np.ndarray], np.ndarray],
    X: np.ndarray,
    y: np.ndarray,
    feature_names: list[str],
    seed: int = 0,
) -> pd.Series:
    """Rise in mean squared error (averaged over horizons) when one feature's whole
    window column is shuffled across samples; sorted, largest first.

    Use validation or test windows: importance on training windows rewards overfitting.
    """
    if X.shape[2] != len(feature_names):
        raise ValueError(f"X has {X.shape[2]} features but {len(feature_names)} names were given")
    rng = np.random.default_rng(seed)
    baseline = float(np.mean((predict(X) - y) ** 2))
    order = rng.permutation(len(X))
    rises = {}
    for j, name in enumerate(feature_names):
        shuffled = X.copy()
        shuffled[:, :, j] = X[order, :, j]
        rises[name] = float(np.mean((predict(shuffled) - y) ** 2)) - baseline
    return pd.Series(rises, name="mse_increase").sort_values(ascending=False)
