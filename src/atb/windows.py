"""What a model sees: windows of scaled features and their targets, as arrays.

Windows overlap: a year of 1-minute bars with a 60-bar lookback over 60 features is 7.5 GB
as one `(n, lookback, K)` array, but the feature matrix it is cut from is 126 MB. A
`WindowArray` keeps that matrix and the row of each window's last bar, and builds windows
only when they are indexed (a batch, a chunk for prediction); NumPy functions that need the
whole array get it through `__array__`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


class WindowArray:
    """Windows `(n, lookback, K)` float32 of one feature matrix `(rows, K)`: window i holds the
    rows `ends[i] - lookback + 1 .. ends[i]`. Indexing with an int, a slice or an array of
    positions (then any further indices) gathers just those windows; `take` and
    `concatenate` stay lazy."""

    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, matrix: np.ndarray, ends: np.ndarray, lookback: int) -> None:
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.ends = np.asarray(ends, dtype=np.int64)
        self.lookback = int(lookback)
        if self.matrix.ndim != 2:
            raise ValueError(f"the feature matrix must be (rows, features), got shape {self.matrix.shape}")
        if len(self.ends) and (self.ends.min() < self.lookback - 1 or self.ends.max() >= len(self.matrix)):
            raise ValueError(f"window ends must lie in [{self.lookback - 1}, {len(self.matrix) - 1}] for lookback {self.lookback}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.ends), self.lookback, self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index):
        if isinstance(index, tuple):
            head, rest = index[0], index[1:]
            if head is Ellipsis:
                return np.asarray(self)[index]
            return self[head][(slice(None), *rest) if not np.isscalar(head) else rest]
        ends = self.ends[index]
        if np.ndim(ends) == 0:
            return self.matrix[int(ends) - self.lookback + 1 : int(ends) + 1].copy()
        view = np.lib.stride_tricks.sliding_window_view(self.matrix, self.lookback, axis=0)  # (rows - L + 1, K, L), no copy
        return np.ascontiguousarray(view[ends - self.lookback + 1].transpose(0, 2, 1))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        windows = self[:]
        return windows if dtype is None else windows.astype(dtype, copy=False)

    def take(self, index) -> WindowArray:
        """The windows at `index` (positions, a slice or a mask), still lazy."""
        return WindowArray(self.matrix, self.ends[index], self.lookback)

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive chunks of at most `size` windows, each built when reached."""
        for start in range(0, len(self), size):
            yield self[start : start + size]

    def all_finite(self) -> bool:
        """Whether every value of every window is finite (checked on the rows the windows cover)."""
        if not len(self.ends):
            return True
        rows = np.unique((self.ends[:, None] + np.arange(1 - self.lookback, 1)).ravel())
        return bool(np.isfinite(self.matrix[rows]).all())

    @classmethod
    def concatenate(cls, parts: list[WindowArray]) -> WindowArray:
        """The windows of `parts` one after another; parts cut from other matrices are stacked
        below the first's (the matrices are copied, not the windows)."""
        if not parts:
            raise ValueError("nothing to concatenate")
        lookback = parts[0].lookback
        if any(part.lookback != lookback for part in parts):
            raise ValueError(f"windows of lookbacks {sorted({part.lookback for part in parts})} cannot be concatenated")
        matrices, ends, offset = [], [], 0
        seen: dict[int, int] = {}
        for part in parts:
            key = id(part.matrix)
            if key not in seen:
                seen[key] = offset
                matrices.append(part.matrix)
                offset += len(part.matrix)
            ends.append(part.ends + seen[key])
        matrix = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
        return cls(matrix, np.concatenate(ends), lookback)


def concatenate_windows(parts: list) -> WindowArray | np.ndarray:
    """Window arrays one after another: lazy when every part is a WindowArray."""
    if all(isinstance(part, WindowArray) for part in parts):
        return WindowArray.concatenate(parts)
    return np.concatenate([np.asarray(part) for part in parts])


@dataclass
class Windows:
    """X: windows `(n, lookback, n_features)` float32 (an array, or a WindowArray); y: targets `(n, H)` float32."""

    X: np.ndarray | WindowArray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.X)
