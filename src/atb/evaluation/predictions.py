"""Per-origin forecasts of a version, saved beside it (`predictions.parquet`) so a user can run
their own analysis or backtest without retraining, and re-score it to the report's numbers.

One row per origin and horizon, prices throughout:

    part            "validation" or "test"
    origin_time     the origin bar's open time (UTC)
    horizon         h, in bars
    origin_close    close at the origin
    realised        close h bars later
    forecast        the served forecast (behind the skill gate when there is one)
    raw             the model's own forecast (the same as `forecast` when ungated)
    naive, drift    the baselines on the same origins (drift fitted on the training part)

A direction version (probabilities of "up") saves instead, beside part, origin_time, horizon,
origin_close and realised: `probability_up` (its forecast) and `base_rate` (the training
part's share of "up", the constant forecast it is judged against).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from atb.dataset import Dataset, Split
from atb.evaluation.metrics import evaluate_forecasts
from atb.evaluation.protocol import baseline_predictions
from atb.io import atomic_write_with

COLUMNS = ("part", "origin_time", "horizon", "origin_close", "realised", "forecast", "raw", "naive", "drift")
PROBABILITY_COLUMNS = ("part", "origin_time", "horizon", "origin_close", "realised", "probability_up", "base_rate")
PARTS = ("validation", "test")
FORECASTS = ("forecast", "raw", "naive", "drift")


def prediction_frame(dataset: Dataset, served: dict[str, np.ndarray], raw: dict[str, np.ndarray]) -> pd.DataFrame:
    """The long table for the parts in `served` (part -> target-space forecasts `(n, H)`)."""
    return pd.concat([_part_frame(part, _split(dataset, part), dataset, served[part], raw[part]) for part in PARTS if part in served],
                     ignore_index=True)


def probability_frame(dataset: Dataset, probabilities: dict[str, np.ndarray], base_rate: np.ndarray) -> pd.DataFrame:
    """The long table of a direction version for the parts in `probabilities` (part -> `(n, H)`)."""
    frames = []
    for part in PARTS:
        if part in probabilities:
            split = _split(dataset, part)
            columns = _key_columns(part, split, dataset.horizons)
            columns["probability_up"] = np.asarray(probabilities[part], dtype=float).reshape(-1)
            columns["base_rate"] = np.tile(np.asarray(base_rate, dtype=float), len(split.origin_close))
            frames.append(pd.DataFrame(columns, columns=list(PROBABILITY_COLUMNS)))
    return pd.concat(frames, ignore_index=True)


def write_predictions(frame: pd.DataFrame, path: str | Path) -> None:
    atomic_write_with(path, lambda tmp: frame.to_parquet(tmp, index=False))


def read_predictions(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no saved predictions (versions trained before they were saved have none; retrain to get them)")
    frame = pd.read_parquet(path)
    expected = PROBABILITY_COLUMNS if "probability_up" in frame.columns else COLUMNS
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    return frame


def rescore(frame: pd.DataFrame, part: str, training_close: np.ndarray) -> dict[str, dict[int, dict]]:
    """The protocol metrics of each forecast column on one part, from the saved rows alone
    (and the training closes, the scale of the in-sample MASE)."""
    rows = frame[frame["part"] == part]
    if rows.empty:
        raise ValueError(f"no saved predictions for part {part!r}; parts: {sorted(frame['part'].unique())}")
    horizons, origin_close, realised, forecasts = wide_forecasts(rows)
    return {column: evaluate_forecasts(origin_close, realised, forecasts[column], horizons, training_close) for column in FORECASTS}


def wide_forecasts(rows: pd.DataFrame) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """One part's rows as arrays by origin (in time order): the horizons, origin closes `(n,)`,
    realised closes `(n, H)` and each forecast column `(n, H)`."""
    wide = rows.pivot(index="origin_time", columns="horizon").sort_index()
    horizons = tuple(int(h) for h in wide["realised"].columns)
    origin_close = wide["origin_close"].iloc[:, 0].to_numpy(dtype=float)
    forecasts = {column: wide[column].to_numpy(dtype=float) for column in FORECASTS}
    return horizons, origin_close, wide["realised"].to_numpy(dtype=float), forecasts


def rmse_ratio_table(frame: pd.DataFrame) -> pd.DataFrame:
    """RMSE over the naive forecast's of `forecast`, `raw` and `drift`, per part and horizon."""
    squared = {c: (frame[c] - frame["realised"]) ** 2 for c in FORECASTS}
    means = pd.DataFrame(squared).assign(part=frame["part"], horizon=frame["horizon"]).groupby(["part", "horizon"], sort=False).mean()
    return np.sqrt(means[["forecast", "raw", "drift"]].div(means["naive"], axis=0))


def brier_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A direction version's Brier score, the base rate's, and the accuracy of calling "up" when
    P(up) > 0.5, per part and horizon, from the saved rows (origins without a move left out)."""
    moved = frame[frame["realised"] != frame["origin_close"]]
    up = (moved["realised"] > moved["origin_close"]).astype(float)
    scores = pd.DataFrame({
        "part": moved["part"],
        "horizon": moved["horizon"],
        "brier": (moved["probability_up"] - up) ** 2,
        "base_rate_brier": (moved["base_rate"] - up) ** 2,
        "accuracy": ((moved["probability_up"] > 0.5) == (up == 1.0)).astype(float),
    })
    return scores.groupby(["part", "horizon"], sort=False).mean()


def _part_frame(part: str, split: Split, dataset: Dataset, served: np.ndarray, raw: np.ndarray) -> pd.DataFrame:
    target = dataset.transform.target
    prices = {"forecast": served, "raw": raw, **baseline_predictions(dataset, split)}
    columns = _key_columns(part, split, dataset.horizons)
    for name, values in prices.items():
        columns[name] = target.to_prices(values, split.origin_close).reshape(-1)
    return pd.DataFrame(columns, columns=list(COLUMNS))


def _key_columns(part: str, split: Split, horizons: tuple[int, ...]) -> dict[str, np.ndarray]:
    """The columns every saved table starts with: one row per origin and horizon."""
    n = len(split.origin_close)
    return {
        "part": np.full(n * len(horizons), part),
        "origin_time": pd.to_datetime(np.repeat(split.origin_time, len(horizons)), utc=True),
        "horizon": np.tile(np.asarray(horizons, dtype=np.int64), n),
        "origin_close": np.repeat(split.origin_close.astype(float), len(horizons)),
        "realised": split.future_close.astype(float).reshape(-1),
    }


def _split(dataset: Dataset, part: str) -> Split:
    return dataset.val if part == "validation" else dataset.test
