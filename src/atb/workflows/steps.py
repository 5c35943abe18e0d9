"""Steps every use case shares: data preparation, progress events, the MLflow run of a symbol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from atb.config import TrainingConfig
from atb.data import Candles, load_candles
from atb.dataset import Dataset, build_dataset
from atb.features import feature_matrix
from atb.tracking import Tracker

# Progress goes to an optional `on_event(kind, payload)` callback that the CLI renders:
# kinds "stage" ({"name", "label"?}), "epoch" (a history row) and "message" ({"text"}).
EventHandler = Callable[[str, dict], None]


def ignore_events(kind: str, payload: dict) -> None:
    """The event handler of a caller that shows no progress."""


@dataclass
class PreparedData:
    """Candles, their full feature matrix and the model-ready dataset."""

    candles: Candles
    features: pd.DataFrame
    dataset: Dataset


def prepare_data(config: TrainingConfig, candles: Candles | None = None) -> PreparedData:
    """Load the configured candles (unless given, already validated), compute every
    candidate feature and build the dataset."""
    candles = candles if candles is not None else load_candles(config.data)
    features = feature_matrix(candles, config.data.funding_path)
    dataset = build_dataset(candles.frame, features, config.dataset)
    return PreparedData(candles=candles, features=features, dataset=dataset)


def symbol_tracker(config: TrainingConfig, run_name: str) -> Tracker:
    """An MLflow run in the symbol's experiment, stored under the output directory unless a URI is set."""
    return Tracker(
        enabled=config.output.mlflow,
        tracking_uri=config.output.tracking_uri,
        experiment=f"atb-{config.data.symbol}",
        run_name=run_name,
        local_dir=config.output.output_dir / "mlruns",
    )
