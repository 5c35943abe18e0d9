"""Flat and constant stretches: every feature stays finite after the warm-up."""

import numpy as np
import pandas as pd
import pytest

from atb.data import load_candles
from atb.features import WARMUP_BARS, compute_features


def _flat(frame: pd.DataFrame, start: int, length: int) -> pd.DataFrame:
    out = frame.copy()
    price = out["close"].iloc[start - 1]
    out.iloc[start : start + length, :4] = price
    out.iloc[start : start + length, 4] = 0.0
    return out


@pytest.mark.parametrize(
    "make",
    [
        lambda f: _flat(f, 1500, 25),  # a 25-bar outage, filled forward
        lambda f: f.iloc[:800].assign(open=100.0, high=100.0, low=100.0, close=100.0, volume=1.0),  # a constant series
        lambda f: f.assign(volume=0.0),  # no volume at all
    ],
    ids=["25-bar flat stretch", "constant 800 bars", "zero volume"],
)
def test_every_feature_is_finite_after_the_warm_up(make):
    frame = make(load_candles().frame)
    features = compute_features(frame).iloc[WARMUP_BARS:]
    bad = features.columns[~np.isfinite(features.to_numpy()).all(axis=0)]
    assert list(bad) == []
