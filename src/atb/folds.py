"""Fold indices over forecast origins for walk-forward and purged cross-validation.

Indices are positions of forecast origins (consecutive bars). The target of
origin ``i`` looks ``max_horizon`` bars ahead, so two blocks of origins are
independent only when a gap separates them: every boundary between a block
that is fitted on and a block that is evaluated gets a purge of
``max_horizon`` origins plus ``embargo`` more.

``walk_forward_folds`` layout of one fold (time runs right)::

    [ train ][ gap ][ val ][ gap ][ test ]        gap = max_horizon + embargo

The test blocks are consecutive and cover the last ``n_splits * test_size``
origins; each fold's history (the origins before its test block, less the two
gaps) is split into training and, at its end, validation. ``expanding`` mode
trains on all the history; ``rolling`` mode keeps the first fold's training
and validation lengths in every fold.

``purged_kfold`` (after Lopez de Prado, *Advances in Financial Machine
Learning*, ch. 7): K contiguous test blocks; a training origin is kept only
if its target window ``[i, i + max_horizon]`` is disjoint from the target
windows of the test block ``[a, b + max_horizon]``, and the ``embargo``
origins after that span are dropped as well.

``cv_folds`` gives every scheme as train/validation/test folds (a model needs
a validation block to stop early):

- ``expanding`` (also ``walk-forward``) and ``rolling``: ``walk_forward_folds``;
- ``purged-kfold``: ``purged_kfold``'s test blocks and training origins, the
  training origins after a test block also kept ``lookback - 1`` origins further
  away, so that no input window of theirs holds a bar whose close is a test
  target; validation is the last ``val_fraction`` of the training origins, with a
  gap before it;
- ``monte-carlo``: ``n_splits`` windows at random (seeded) starts, each laid out
  like the first expanding fold ``[train][gap][val][gap][test]`` and as long.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("expanding", "rolling")
SCHEMES = ("expanding", "walk-forward", "rolling", "purged-kfold", "monte-carlo")


@dataclass(frozen=True, eq=False)
class Fold:
    """Origin indices of one walk-forward fold (read-only arrays)."""

    index: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        for part in (self.train, self.val, self.test):
            part.setflags(write=False)

    @property
    def parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.train, self.val, self.test


def walk_forward_folds(
    n_origins: int,
    n_splits: int = 5,
    max_horizon: int = 30,
    embargo: int = 0,
    mode: str = "expanding",
    val_fraction: float = 0.15,
    min_train: int | None = None,
    test_size: int | None = None,
) -> list[Fold]:
    """Chronological folds; see the module docstring for the layout.

    ``test_size`` defaults to ``n_origins // (n_splits + 1)``. ``val_fraction``
    is the validation share of each fold's history (of the first fold's in
    rolling mode). ``min_train`` (default 1) is the fewest training origins a
    fold may have.
    """
    _check_non_negative(max_horizon=max_horizon, embargo=embargo)
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    test_size = n_origins // (n_splits + 1) if test_size is None else test_size
    min_train = 1 if min_train is None else min_train
    if test_size < 1:
        raise ValueError(f"n_origins={n_origins} is too few for n_splits={n_splits}: test blocks would be empty")
    gap = max_horizon + embargo
    first_test = n_origins - n_splits * test_size
    first_history = first_test - 2 * gap
    first_val = max(1, round(val_fraction * first_history))
    if first_history - first_val < min_train:
        raise ValueError(
            f"not enough origins: n_origins={n_origins} with n_splits={n_splits} test blocks of {test_size} leaves "
            f"{first_test} origins before the first test block; less two purge gaps of {gap} "
            f"(max_horizon={max_horizon} + embargo={embargo}) and {first_val} validation origins, "
            f"{first_history - first_val} remain for training, fewer than min_train={min_train}"
        )

    folds = []
    for k in range(n_splits):
        test_start = first_test + k * test_size
        history = test_start - 2 * gap
        val_size = first_val if mode == "rolling" else max(1, round(val_fraction * history))
        val_start = test_start - gap - val_size
        train_stop = val_start - gap
        train_start = train_stop - (first_history - first_val) if mode == "rolling" else 0
        folds.append(
            Fold(
                index=k,
                train=np.arange(train_start, train_stop),
                val=np.arange(val_start, val_start + val_size),
                test=np.arange(test_start, test_start + test_size),
            )
        )
    return folds


def purged_kfold(
    n_origins: int, k: int = 5, max_horizon: int = 30, embargo: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train_idx, test_idx)`` per contiguous test block, purged and embargoed."""
    _check_non_negative(max_horizon=max_horizon, embargo=embargo)
    if k < 2 or n_origins < k:
        raise ValueError(f"purged_kfold needs 2 <= k <= n_origins, got k={k}, n_origins={n_origins}")
    origins = np.arange(n_origins)
    splits = []
    for test in np.array_split(origins, k):
        first, last = test[0], test[-1]
        keep = (origins + max_horizon < first) | (origins > last + max_horizon + embargo)
        if not keep.any():
            raise ValueError(
                f"test block [{first}, {last}] leaves no training origins: n_origins={n_origins}, k={k}, "
                f"max_horizon={max_horizon}, embargo={embargo}"
            )
        splits.append((origins[keep], test))
    return splits


def cv_folds(
    scheme: str,
    n_origins: int,
    n_splits: int = 5,
    max_horizon: int = 30,
    embargo: int = 0,
    lookback: int = 1,
    seed: int = 0,
    val_fraction: float = 0.15,
) -> list[Fold]:
    """Train/validation/test folds of `scheme` (see the module docstring); every boundary between
    a block fitted on and a block evaluated on has a gap of `max_horizon + embargo` origins."""
    if scheme not in SCHEMES:
        raise ValueError(f"cv scheme {scheme!r} is not one of {list(SCHEMES)}")
    if scheme in ("expanding", "walk-forward", "rolling"):
        mode = "rolling" if scheme == "rolling" else "expanding"
        return walk_forward_folds(n_origins, n_splits, max_horizon, embargo, mode=mode, val_fraction=val_fraction)
    if scheme == "monte-carlo":
        return _monte_carlo_folds(n_origins, n_splits, max_horizon, embargo, seed, val_fraction)
    gap = max_horizon + embargo
    folds = []
    for k, (train, test) in enumerate(purged_kfold(n_origins, n_splits, max_horizon, embargo)):
        train = train[(train < test[0]) | (train > test[-1] + max_horizon + max(embargo, lookback - 1))]
        n_val = max(1, round(val_fraction * len(train)))
        val = train[-n_val:]
        train = train[train < val[0] - gap]
        if len(train) == 0:
            raise ValueError(f"purged k-fold fold {k}: no training origins left before its validation block; use fewer splits")
        folds.append(Fold(index=k, train=train, val=val, test=test))
    return folds


def _monte_carlo_folds(n_origins: int, n_splits: int, max_horizon: int, embargo: int, seed: int, val_fraction: float) -> list[Fold]:
    template = walk_forward_folds(n_origins, n_splits, max_horizon, embargo, val_fraction=val_fraction)[0]
    length = int(template.test[-1]) + 1
    starts = np.sort(np.random.default_rng(seed).integers(0, n_origins - length + 1, size=n_splits))
    return [
        Fold(index=k, train=template.train + start, val=template.val + start, test=template.test + start)
        for k, start in enumerate(starts)
    ]


def _check_non_negative(**values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
