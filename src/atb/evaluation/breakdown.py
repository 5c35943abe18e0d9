"""Where a model's skill lives and how steady it is: RMSE/naive per market regime and over
rolling windows of the evaluated origins, and a check for a model that beat the naive
forecast on its training windows but not on validation (memorised rather than learned).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from atb.dataset import Dataset, Split
from atb.ensemble.regime import REGIMES, RegimeDetector

ROLLING_WINDOW = 90  # origins per rolling window (a quarter of daily bars)
MEMORISED_TRAIN_RATIO = 0.95  # beats naive on training windows by 5% or more ...
MEMORISED_VAL_RATIO = 1.0  # ... but not on validation


def squared_errors(prediction: np.ndarray, split: Split, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Squared price errors `(n, H)` of the forecast and of the naive forecast."""
    prices = dataset.transform.target.to_prices(prediction, split.origin_close)
    return (prices - split.future_close) ** 2, (split.origin_close[:, None] - split.future_close) ** 2


def by_regime(prediction: np.ndarray, split: Split, dataset: Dataset, close: pd.Series) -> dict[str, dict]:
    """Per regime of the origin bar (thresholds fitted on the training bars): origins and RMSE/naive per horizon."""
    labels = RegimeDetector().fit_transform(close, dataset.train.origin_time[-1]).reindex(pd.DatetimeIndex(split.origin_time)).to_numpy()
    model, naive = squared_errors(prediction, split, dataset)
    out = {}
    for regime in REGIMES:
        rows = labels == regime
        if rows.any():
            out[regime] = {"n": int(rows.sum()), **{h: _ratio(model[rows, j], naive[rows, j]) for j, h in enumerate(dataset.horizons)}}
    return out


def rolling_skill(prediction: np.ndarray, split: Split, dataset: Dataset, window: int = ROLLING_WINDOW) -> dict:
    """RMSE/naive over consecutive windows of `window` origins (stride window / 3): spread and the worst window."""
    model, naive = squared_errors(prediction, split, dataset)
    window = min(window, len(model))
    starts = list(range(0, len(model) - window + 1, max(1, window // 3)))
    out: dict = {"window": window, "n_windows": len(starts)}
    for j, h in enumerate(dataset.horizons):
        ratios = np.array([_ratio(model[s : s + window, j], naive[s : s + window, j]) for s in starts])
        worst = int(np.nanargmax(ratios)) if np.isfinite(ratios).any() else 0
        out[h] = {
            "min": float(np.nanmin(ratios)),
            "median": float(np.nanmedian(ratios)),
            "max": float(np.nanmax(ratios)),
            "share_beating_naive": float(np.mean(ratios < 1.0)),
            "worst_window": [str(pd.Timestamp(split.origin_time[starts[worst]])), str(pd.Timestamp(split.origin_time[starts[worst] + window - 1]))],
        }
    return out


def memorisation(train_ratio: dict[int, float], val_ratio: dict[int, float]) -> list[str]:
    """A warning per horizon where the raw model beat naive on its training windows but not on validation."""
    return [
        f"h={h}: the raw model beats naive on its training windows (RMSE/naive {train_ratio[h]:.3f}) but not on validation "
        f"({val_ratio[h]:.3f}): it fits the training part without generalising"
        for h in train_ratio
        if train_ratio[h] <= MEMORISED_TRAIN_RATIO and val_ratio[h] >= MEMORISED_VAL_RATIO
    ]


def rmse_ratios(prediction: np.ndarray, split: Split, dataset: Dataset) -> dict[int, float]:
    model, naive = squared_errors(prediction, split, dataset)
    return {h: _ratio(model[:, j], naive[:, j]) for j, h in enumerate(dataset.horizons)}


def _ratio(model: np.ndarray, naive: np.ndarray) -> float:
    denominator = float(np.mean(naive))
    return float(np.sqrt(np.mean(model) / denominator)) if denominator > 0 else float("nan")
