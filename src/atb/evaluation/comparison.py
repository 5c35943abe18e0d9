"""Model against model, not only against the naive forecast: one-sided Diebold-Mariano
p-values for every ordered pair of forecasters on the same origins."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from atb.evaluation.predictions import read_predictions
from atb.evaluation.skill import one_sided_pvalue


def pairwise_dm(errors: Mapping[str, np.ndarray], horizon: int) -> pd.DataFrame:
    """Entry [a, b]: p-value of "a's squared errors are smaller than b's" (small: a is
    significantly more accurate); the diagonal is NaN. `errors` are forecast errors on the
    same origins, one array per forecaster."""
    names = list(errors)
    matrix = pd.DataFrame(np.nan, index=names, columns=names)
    for a in names:
        for b in names:
            if a != b:
                matrix.loc[a, b] = one_sided_pvalue(np.asarray(errors[a]), np.asarray(errors[b]), horizon)
    return matrix


def saved_forecast_errors(paths: Mapping[str, str], part: str = "test") -> tuple[dict[int, dict[str, np.ndarray]], int]:
    """Per horizon, each version's served forecast errors (from its predictions.parquet) on the
    origins every version shares, plus the naive forecast's; and how many origins that is."""
    frames = {name: read_predictions(path) for name, path in paths.items()}
    frames = {name: frame[frame["part"] == part].set_index(["origin_time", "horizon"]) for name, frame in frames.items()}
    common = None
    for frame in frames.values():
        common = frame.index if common is None else common.intersection(frame.index)
    if common is None or common.empty:
        raise ValueError(f"the versions share no {part} origin; nothing to compare")
    common = common.sort_values()
    horizons = sorted(common.get_level_values("horizon").unique())
    first = next(iter(frames.values())).loc[common]
    for name, frame in frames.items():
        if not np.allclose(frame.loc[common, "realised"].to_numpy(), first["realised"].to_numpy(), rtol=1e-12):
            raise ValueError(f"{name} was scored on other prices at the same origins (another data source?); compare versions of one series")
    out: dict[int, dict[str, np.ndarray]] = {}
    for h in horizons:
        rows = common.get_level_values("horizon") == h
        realised = first["realised"].to_numpy()[rows]
        out[int(h)] = {name: frame.loc[common, "forecast"].to_numpy()[rows] - realised for name, frame in frames.items()}
        out[int(h)]["naive"] = first["naive"].to_numpy()[rows] - realised
    return out, int(len(common) // len(horizons))
