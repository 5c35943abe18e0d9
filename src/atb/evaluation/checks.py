"""Input checks shared by the metrics and the backtest: one-dimensional finite
arrays, positive prices, equal lengths; each error names the array."""

from __future__ import annotations

import numpy as np


def finite_array(name: str, values: np.ndarray) -> np.ndarray:
    """`values` as a non-empty one-dimensional float array without NaN or inf."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if len(array) == 0:
        raise ValueError(f"{name} must be non-empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has {int((~np.isfinite(array)).sum())} non-finite values")
    return array


def positive_prices(name: str, values: np.ndarray) -> np.ndarray:
    """`finite_array` whose values are all > 0."""
    array = finite_array(name, values)
    if np.any(array <= 0):
        raise ValueError(f"{name} must hold positive prices; found {int((array <= 0).sum())} values <= 0")
    return array


def same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"arrays must have the same length, got {lengths}")
