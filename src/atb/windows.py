"""What a model sees: windows of scaled features and their targets, as arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Windows:
    """X: windows `(n, lookback, n_features)` float32; y: targets `(n, H)` float32."""

    X: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.X)
