"""The feature matrix: 150+ causal, scale-free indicators in eight categories (+ funding).

Indicators are written with vectorised pandas/NumPy rolling and `adjust=False`
EWM operations rather than `ta` or `pandas-ta` (neither is well maintained),
which keeps them fast, transparent and causal by construction: the value at bar
t uses bars <= t only. Features are returns, ratios to price and oscillators,
never raw price levels. Each category module returns unprefixed names; the
category prefix (see `categories`) is added here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from atb.data import Candles
from atb.data.validate import OHLCV_COLUMNS, infer_bar_duration, sign_problems
from atb.features import (
    calendar,
    momentum,
    moving_average,
    price,
    regime,
    statistical,
    volatility,
    volume,
)
from atb.features.categories import prefixed
from atb.features.funding import funding_features, load_funding
from atb.features.primitives import Bars

logger = logging.getLogger(__name__)

# SMA200 is defined from bar 199 (0-based) and its 5-bar slope from bar 204: 204 rows may hold NaN.
WARMUP_BARS = 204
_CATEGORY_MODULES = {
    "price": price,
    "moving_average": moving_average,
    "momentum": momentum,
    "volatility": volatility,
    "volume": volume,
    "statistical": statistical,
    "time": calendar,
    "regime": regime,
}


def feature_matrix(candles: Candles, funding_path: Path | None = None) -> pd.DataFrame:
    """Every candidate feature of validated candles, plus funding features when a file is given."""
    funding = load_funding(funding_path) if funding_path is not None else None
    return compute_features(candles.frame, funding=funding, bar_duration=candles.bar_duration)


def compute_features(
    ohlcv: pd.DataFrame,
    funding: pd.Series | None = None,
    bar_duration: pd.Timedelta | None = None,
) -> pd.DataFrame:
    """Feature matrix on `ohlcv`'s index: float64 columns named `<category prefix>_<feature>`.

    The first `WARMUP_BARS` rows may hold NaN. `bar_duration` defaults to the most
    common step of the index; it decides which calendar cycles are emitted and
    when a bar closes for the funding alignment. With `funding` (see
    `load_funding`), `funding_*` columns are appended.
    """
    _check_ohlcv(ohlcv)
    if bar_duration is None:
        bar_duration = infer_bar_duration(ohlcv.index, "ohlcv")
    if bar_duration <= pd.Timedelta(0):
        raise ValueError(f"bar_duration must be positive, got {bar_duration}")
    bars = Bars.from_frame(ohlcv, bar_duration)
    names, blocks = [], []  # one float64 block per category, joined once: the matrix is copied once, not per step
    for category, module in _CATEGORY_MODULES.items():
        columns = module.features(bars)
        names += [prefixed(category, name) for name in columns]
        blocks.append(np.column_stack([np.asarray(values, dtype=np.float64) for values in columns.values()]))
    if funding is not None:
        exogenous = funding_features(funding, ohlcv.index, bar_duration)
        names += list(exogenous.columns)
        blocks.append(exogenous.to_numpy(dtype=np.float64))
    features = pd.DataFrame(_join_freeing(blocks), index=ohlcv.index, columns=names)
    logger.debug("computed %d features on %d bars", features.shape[1], features.shape[0])
    return features


def _join_freeing(blocks: list[np.ndarray]) -> np.ndarray:
    """The blocks side by side, each freed once copied: pages of the result are committed as they
    are written, so memory peaks near one matrix, not two (a year of minutes: 0.9 GB, not 1.8)."""
    out = np.empty((len(blocks[0]), sum(block.shape[1] for block in blocks)), order="F")  # a block fills whole pages
    column = 0
    while blocks:
        block = blocks.pop(0)
        out[:, column : column + block.shape[1]] = block
        column += block.shape[1]
        del block
    return out


def _check_ohlcv(ohlcv: pd.DataFrame) -> None:
    if not isinstance(ohlcv, pd.DataFrame):
        raise TypeError(f"ohlcv must be a pandas DataFrame, got {type(ohlcv).__name__}")
    missing = [column for column in OHLCV_COLUMNS if column not in ohlcv.columns]
    if missing:
        raise ValueError(f"ohlcv is missing column(s) {missing}; found {list(ohlcv.columns)}")
    index = ohlcv.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError("ohlcv must be indexed by a timezone-aware (UTC) DatetimeIndex of bar open times")
    if not index.is_unique or not index.is_monotonic_increasing:
        raise ValueError("ohlcv index must be sorted and unique (run atb.data validation first)")
    values = ohlcv[list(OHLCV_COLUMNS)].astype("float64")
    problems = [((~np.isfinite(values)).any(axis=1), "NaN or infinite values"), *sign_problems(values)]
    for mask, problem in problems:
        rows = mask.to_numpy()
        if rows.any():
            raise ValueError(f"ohlcv has {problem} at {index[np.argmax(rows)]} ({int(rows.sum())} row(s) in all)")
