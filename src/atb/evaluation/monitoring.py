"""What monitoring compares a served version against, stored with the version
(`monitor.json`): the training-part distribution of each model input, the
validation-part distribution of each horizon's served forecast, and the test and
validation errors per horizon (model, naive, drift)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from atb.dataset import Dataset
from atb.evaluation.drift import distribution, null_psi

REFERENCE_VERSION = 1


def monitoring_reference(
    dataset: Dataset, features: pd.DataFrame, val_forecast: np.ndarray, name: str, metrics: dict, validation: dict
) -> dict:
    """The reference of a version served as `name`: inputs from training rows only (`dataset.train_close`
    spans them), forecasts from the validation origins, errors from the reports' tables."""
    training_rows = features.loc[dataset.train_close.index, list(dataset.transform.feature_names)]
    return {
        "version": REFERENCE_VERSION,
        "training_rows": [str(training_rows.index[0]), str(training_rows.index[-1])],
        "inputs": {column: with_null(training_rows[column].to_numpy()) for column in training_rows.columns},
        "forecasts": {str(h): with_null(val_forecast[:, j]) for j, h in enumerate(dataset.horizons)},
        "errors": {part: _errors(table, name) for part, table in (("test", metrics), ("validation", validation))},
    }


def with_null(values: np.ndarray) -> dict:
    """The distribution of `values` and the no-drift PSI of windows drawn from them."""
    reference = distribution(values)
    return {**reference, "null_psi": null_psi(values, reference)}


def _errors(table: dict, name: str) -> dict:
    return {
        str(h): {"model": float(row["rmse"]), "naive": float(table["naive"][h]["rmse"]), "drift": float(table["drift"][h]["rmse"]),
                 "rmse_ratio": float(row["rmse_ratio"])}
        for h, row in table[name].items()
    }
