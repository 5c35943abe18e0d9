"""From a feature matrix to model-ready windows: split, select, scale, window, target.

Order of operations (each fitted piece sees only the training origins):
1. forecast origins = bars with a full lookback of features and every horizon's
   future close known; split chronologically (train/val/test);
2. top-K feature selection by |correlation| on training rows only;
3. RobustScaler fitted on training rows only;
4. sliding windows `(n, lookback, K)` ending at each origin, targets `(n, H)`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TargetSpec:
    """What a model predicts for each horizon, and how to map it back to price."""

    horizons: tuple[int, ...]
    kind: str = "log_return"  # "log_return": log(close[t+h] / close[t]); "price": close[t+h]

    def from_prices(self, origin_close: np.ndarray, future_close: np.ndarray) -> np.ndarray:
        """Targets `(n, H)` from origin closes `(n,)` and future closes `(n, H)`."""
        if self.kind == "log_return":
            return np.log(future_close / origin_close[:, None])
        return np.asarray(future_close, dtype=float)

    def to_prices(self, predictions: np.ndarray, origin_close: np.ndarray) -> np.ndarray:
        """Map predictions `(n, H)` (or `(..., n, H)`) back to prices."""
        predictions = np.asarray(predictions, dtype=float)
        if self.kind == "log_return":
            return np.asarray(origin_close, dtype=float)[:, None] * np.exp(predictions)
        return predictions

    def to_dict(self) -> dict:
        return {"horizons": list(self.horizons), "kind": self.kind}

    @classmethod
    def from_dict(cls, values: dict) -> TargetSpec:
        return cls(horizons=tuple(int(h) for h in values["horizons"]), kind=values["kind"])


@dataclass
class Split:
    """One chronological part of the forecast origins, ready for a model.

    X: windows `(n, lookback, n_features)` float32, scaled.
    y: targets `(n, H)` float32 in target space (see TargetSpec).
    origin_time: timestamp of each origin bar t `(n,)`.
    origin_close: close at t `(n,)`; future_close: close at t+h `(n, H)`.
    """

    X: np.ndarray
    y: np.ndarray
    origin_time: np.ndarray
    origin_close: np.ndarray
    future_close: np.ndarray

    def __len__(self) -> int:
        return len(self.X)

    def subset(self, index: np.ndarray | slice) -> Split:
        return Split(
            X=self.X[index],
            y=self.y[index],
            origin_time=self.origin_time[index],
            origin_close=self.origin_close[index],
            future_close=self.future_close[index],
        )
