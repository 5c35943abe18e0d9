"""Forecast uncertainty: Monte Carlo summaries, mixtures, split-conformal intervals.

All arrays are ``(n, H)`` in target space (log-returns by default) unless said.

- ``summarise_samples``: mean, std and central 80% / 95% intervals of Monte
  Carlo samples (e.g. MC dropout) ``(S, n, H)``.
- ``combine_uncertainty``: the ensemble as a mixture of Gaussians, one per
  model, mixed with the combination weights.
- ``ConformalIntervals``: split-conformal intervals on absolute residuals,
  calibrated on validation origins. The coverage guarantee assumes exchangeable
  residuals; residuals of overlapping multi-step forecasts are autocorrelated
  and drift with the market, so treat it as approximate and check it with
  ``coverage`` on the test origins.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

logger = logging.getLogger(__name__)

INTERVAL_QUANTILES = {80: (0.10, 0.90), 95: (0.025, 0.975)}


def summarise_samples(samples: np.ndarray) -> dict[str, np.ndarray]:
    """Keys ``mean``, ``std`` (ddof=1), ``lower_80``/``upper_80`` (quantiles 0.10/0.90)
    and ``lower_95``/``upper_95`` (0.025/0.975), each ``(n, H)``."""
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 3 or samples.shape[0] < 2:
        raise ValueError(f"samples must be (S, n, H) with S >= 2, got shape {samples.shape}")
    summary = {"mean": samples.mean(axis=0), "std": samples.std(axis=0, ddof=1)}
    for level, (low, high) in INTERVAL_QUANTILES.items():
        summary[f"lower_{level}"], summary[f"upper_{level}"] = np.quantile(samples, [low, high], axis=0)
    return summary


def combine_uncertainty(
    means: Mapping[str, np.ndarray],
    stds: Mapping[str, np.ndarray],
    weights: np.ndarray | Mapping[str, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the mixture ``sum_m w_m N(mean_m, std_m^2)``.

    ``mean = sum w m``; ``std = sqrt(sum w (s^2 + m^2) - mean^2)``, which adds
    the models' disagreement to their own spread. ``weights`` is ``(n, M, H)``
    (models in the order of ``means``, e.g. from ``OnlineWeights``) or one
    weight per model name; along the model axis they must sum to 1.
    """
    names = list(means)
    if set(stds) != set(names):
        raise ValueError(f"stds name models {sorted(stds)}, means name {sorted(names)}")
    mean_stack = np.stack([np.asarray(means[name], dtype=float) for name in names], axis=1)
    std_stack = np.stack([np.asarray(stds[name], dtype=float) for name in names], axis=1)
    if isinstance(weights, Mapping):
        missing = [name for name in names if name not in weights]
        if missing:
            raise ValueError(f"no weight given for models {missing}")
        weights = np.array([weights[name] for name in names], dtype=float)[None, :, None]
    weights = np.broadcast_to(np.asarray(weights, dtype=float), mean_stack.shape)
    if not np.allclose(weights.sum(axis=1), 1.0) or np.any(weights < 0):
        raise ValueError("weights must be non-negative and sum to 1 over the models")
    mean = np.sum(weights * mean_stack, axis=1)
    second_moment = np.sum(weights * (std_stack**2 + mean_stack**2), axis=1)
    return mean, np.sqrt(np.clip(second_moment - mean**2, 0.0, None))


class ConformalIntervals:
    """Split-conformal intervals ``prediction +- q``, one ``q`` per horizon and level.

    ``q`` is the ``ceil((n + 1) * level)``-th smallest absolute validation
    residual (the finite-sample corrected ``ceil((n + 1) * level) / n``
    empirical quantile); when that rank exceeds ``n`` the interval is infinite.
    """

    def __init__(self, levels: Sequence[float] = (0.8, 0.95)) -> None:
        self.levels = levels

    def fit(self, pred_val: np.ndarray, y_val: np.ndarray) -> ConformalIntervals:
        pred_val, y_val = np.asarray(pred_val, dtype=float), np.asarray(y_val, dtype=float)
        if pred_val.ndim != 2 or pred_val.shape != y_val.shape:
            raise ValueError(f"pred_val and y_val must both be (n, H), got {pred_val.shape} and {y_val.shape}")
        if not (np.all(np.isfinite(pred_val)) and np.all(np.isfinite(y_val))):
            raise ValueError("validation predictions and targets must be finite")
        residuals = np.sort(np.abs(y_val - pred_val), axis=0)
        n = len(residuals)
        self.quantiles_ = {}
        for level in self.levels:
            if not 0.0 < level < 1.0:
                raise ValueError(f"conformal levels must be in (0, 1), got {level!r}")
            rank = math.ceil((n + 1) * level - 1e-9)  # tolerance: (n + 1) * level may land a hair above an integer
            if rank > n:
                logger.warning("%d calibration origins are too few for level %s: interval is infinite", n, level)
                self.quantiles_[level] = np.full(residuals.shape[1], np.inf)
            else:
                self.quantiles_[level] = residuals[rank - 1]
        return self

    def interval(self, pred: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)``, each shaped like ``pred`` ``(n, H)``."""
        if not hasattr(self, "quantiles_"):
            raise RuntimeError("ConformalIntervals is not fitted: call fit(pred_val, y_val) first")
        if level not in self.quantiles_:
            raise ValueError(f"level {level!r} was not calibrated; calibrated levels: {list(self.quantiles_)}")
        pred = np.asarray(pred, dtype=float)
        return pred - self.quantiles_[level], pred + self.quantiles_[level]


def coverage(lower: np.ndarray, upper: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Share of origins with ``lower <= y <= upper``, per horizon ``(H,)``."""
    lower, upper, y = _same_shape(lower, upper, y)
    return np.mean((y >= lower) & (y <= upper), axis=0)


def mean_width(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Average interval width per horizon ``(H,)``."""
    lower, upper = _same_shape(lower, upper)
    return np.mean(upper - lower, axis=0)


def interval_score(lower: np.ndarray, upper: np.ndarray, y: np.ndarray, level: float) -> np.ndarray:
    """Mean interval score per horizon ``(H,)`` (Gneiting & Raftery 2007; lower is better):
    width plus ``2 / (1 - level)`` times the distance of each miss to the interval."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    lower, upper, y = _same_shape(lower, upper, y)
    penalty = 2.0 / (1.0 - level)
    score = (upper - lower) + penalty * np.clip(lower - y, 0.0, None) + penalty * np.clip(y - upper, 0.0, None)
    return np.mean(score, axis=0)


def _same_shape(*arrays: np.ndarray) -> list[np.ndarray]:
    arrays = [np.asarray(array, dtype=float) for array in arrays]
    shapes = {array.shape for array in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(f"arrays must share one (n, H) shape, got {[array.shape for array in arrays]}")
    return arrays


def gaussian_interval(mean: np.ndarray, std: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Central `level` interval of N(mean, std^2): `(lower, upper)`."""
    z = stats.norm.ppf(0.5 + level / 2)
    return mean - z * std, mean + z * std


def mc_moments(
    model, X: np.ndarray, n_samples: int, enabled: bool = True, seed: int = 0, point: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of `model`'s MC-dropout forecasts for windows `X`; when disabled,
    or for a model without dropout, the plain forecast (`point` when the caller
    already has `model.predict(X)`) and a std of exactly zero."""
    if enabled and model.supports_mc_dropout:
        samples = model.predict_samples(X, n_samples, seed=seed)
        return samples.mean(axis=0), samples.std(axis=0, ddof=1)
    if point is None:
        point = model.predict(X)
    return point, np.zeros_like(point)
