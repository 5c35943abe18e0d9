"""The benchmark protocol applied to a dataset: every forecaster scored on the same
origins beside the naive and drift forecasts, and the long/flat backtest."""

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


def baseline_predictions(dataset: Dataset, split: Split) -> dict[str, np.ndarray]:
    """Naive and drift forecasts (fitted on the training part) for `split`."""
    out = {}
    for name in BASELINES:
        model = create_model(name, dataset.input_shape, horizons=dataset.horizons)
        model.fit(dataset.train, dataset.val)
        out[name] = model.predict(split.X)
    return out


def backtest(split: Split, dataset: Dataset, prediction: np.ndarray) -> dict:
    """Long/flat backtest of the 1-bar forecast; says why it was skipped when horizon 1 is absent."""
    if 1 not in dataset.horizons:
        return {"skipped": "horizon 1 is not forecast"}
    j = dataset.horizons.index(1)
    prices = dataset.transform.target.to_prices(prediction, split.origin_close)
    predicted_return = prices[:, j] / split.origin_close - 1.0
    bar_days = (pd.Timestamp(split.origin_time[1]) - pd.Timestamp(split.origin_time[0])) / pd.Timedelta(days=1)
    return backtest_long_flat(
        split.origin_close,
        split.future_close[:, j],
        predicted_return,
        fee=BACKTEST_FEE,
        periods_per_year=365.0 / bar_days,
    )
