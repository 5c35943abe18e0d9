"""The benchmark protocol applied to a dataset: every forecaster scored on the same
origins beside the naive and drift forecasts (on the test part, and on the
validation part to show whether a model had skill before the test was looked
at), and the long/flat backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atb.dataset import Dataset, Split
from atb.evaluation.backtest import backtest_long_flat
from atb.evaluation.metrics import evaluate_forecasts
from atb.models import create_model

BASELINES = ("naive", "drift")
BACKTEST_FEE = 0.001


def evaluate_models(
    predictions: dict[str, np.ndarray], split: Split, dataset: Dataset
) -> dict[str, dict[int, dict]]:
    """Protocol metrics per model and horizon, from target-space predictions on `split`."""
    target = dataset.transform.target
    scale = dataset.train_close.to_numpy(dtype=float)
    return {
        name: evaluate_forecasts(
            split.origin_close,
            split.future_close,
            target.to_prices(pred, split.origin_close),
            dataset.horizons,
            scale,
        )
        for name, pred in predictions.items()
    }


def score(predictions: dict[str, np.ndarray], split: Split, dataset: Dataset) -> dict[str, dict[int, dict]]:
    """`evaluate_models` of `predictions` and of the naive and drift forecasts on `split`;
    every row also holds `rmse_vs_drift`, its RMSE over the drift forecast's."""
    metrics = evaluate_models({**predictions, **baseline_predictions(dataset, split)}, split, dataset)
    for per_horizon in metrics.values():
        for h, row in per_horizon.items():
            row["rmse_vs_drift"] = row["rmse"] / metrics["drift"][h]["rmse"]
    return metrics


def skill_warnings(validation: dict[str, dict[int, dict]], names: list[str]) -> list[str]:
    """A line per model and horizon that does not beat the drift forecast on validation."""
    return [
        f"{name} h={h}: no validated skill (validation RMSE {row['rmse_vs_drift']:.3f}x drift, "
        f"{row['rmse_ratio']:.3f}x naive)"
        for name in names
        for h, row in validation[name].items()
        if not row["rmse_vs_drift"] < 1.0
    ]


def baseline_predictions(dataset: Dataset, split: Split) -> dict[str, np.ndarray]:
    """Naive and drift forecasts (fitted on the training part) for `split`."""
    out = {}
    for name in BASELINES:
        model = create_model(name, dataset.input_shape, horizons=dataset.horizons)
        model.fit(dataset.train, dataset.val)
        out[name] = model.predict(split.X)
    return out


def backtest(split: Split, dataset: Dataset, prediction: np.ndarray) -> dict:
    """Long/flat backtest of the 1-bar forecast (long when it is above the origin's close, or for
    a direction model when P(up) is above 0.5); says why it was skipped when horizon 1 is absent."""
    if 1 not in dataset.horizons:
        return {"skipped": "horizon 1 is not forecast"}
    j = dataset.horizons.index(1)
    target = dataset.transform.target
    if target.is_direction:
        predicted_return = np.asarray(prediction, dtype=float)[:, j] - 0.5
    else:
        predicted_return = target.to_prices(prediction, split.origin_close)[:, j] / split.origin_close - 1.0
    bar_days = (pd.Timestamp(split.origin_time[1]) - pd.Timestamp(split.origin_time[0])) / pd.Timedelta(days=1)
    return backtest_long_flat(
        split.origin_close,
        split.future_close[:, j],
        predicted_return,
        fee=BACKTEST_FEE,
        periods_per_year=365.0 / bar_days,
    )
