"""Steps every use case shares: data preparation, progress events, the MLflow run of a symbol."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from atb.config import DatasetSpec, TrainingConfig
from atb.data import Candles, load_candles
from atb.dataset import (
    MIN_EVALUATION_ORIGINS,
    Dataset,
    Split,
    auxiliary_training_windows,
    build_dataset,
    early_stopping_split,
    minimum_bars,
)
from atb.features import WARMUP_BARS, feature_matrix
from atb.models import model_class
from atb.tracking import Tracker

# Progress goes to an optional `on_event(kind, payload)` callback that the CLI renders:
# kinds "stage" ({"name", "label"?}), "epoch" (a history row) and "message" ({"text"}).
EventHandler = Callable[[str, dict], None]


def ignore_events(kind: str, payload: dict) -> None:
    """The event handler of a caller that shows no progress."""


@dataclass
class PreparedData:
    """Candles, their full feature matrix and the model-ready dataset; for a global model,
    the training windows of the other series too (`auxiliary`, by symbol)."""

    candles: Candles
    features: pd.DataFrame
    dataset: Dataset
    auxiliary: dict[str, Split] = field(default_factory=dict)

    @property
    def training_windows(self) -> Split:
        """What a model is fitted on: the target's training windows, then every other series'."""
        if not self.auxiliary:
            return self.dataset.train
        return Split.concatenate(self.dataset.train, *self.auxiliary.values())


def prepare_data(config: TrainingConfig, candles: Candles | None = None, on_event: EventHandler = ignore_events) -> PreparedData:
    """Load the configured candles (unless given, already validated), compute every
    candidate feature and build the dataset; with `config.data.also`, the other series'
    training windows on the target's selected features and split dates. What validation
    repaired and what the dataset left out are sent as messages."""
    candles = candles if candles is not None else load_candles(config.data)
    check_history(candles, config.dataset)
    for line in candles.report.messages():
        on_event("message", {"text": line})
    features = feature_matrix(candles, config.data.funding_path)
    dataset = build_dataset(candles.frame, features, config.dataset)
    for line in dataset.notes:
        on_event("message", {"text": line})
    last_origin = pd.Timestamp(dataset.train.origin_time[-1])
    auxiliary = {}
    for item in config.data.also:
        other = load_candles(config.data.series_of(item))
        auxiliary[other.symbol] = auxiliary_training_windows(other.frame, feature_matrix(other), dataset.transform, last_origin)
    return PreparedData(candles=candles, features=features, dataset=dataset, auxiliary=auxiliary)


def fitting_parts(config: TrainingConfig, model_type: str, train: Split, val: Split) -> tuple[Split, Split]:
    """What a model of `model_type` fits on and what it stops early on: for a type that stops
    early, the training part less its held-out tail (`config.dataset.stop_share`, purged by the
    longest horizon) and that tail, so the validation part is left unseen for the skill gate;
    for any other type the training part whole (and `val`, which it does not read)."""
    if not model_class(model_type).stops_early:
        return train, val
    return early_stopping_split(train, config.dataset.stop_share, config.dataset.max_horizon)


def check_history(candles: Candles, spec: DatasetSpec) -> None:
    """Refuse, before any feature is computed, candles too short for this run, saying how many it needs."""
    needed = minimum_bars(spec, WARMUP_BARS)
    if len(candles.frame) < needed:
        days = math.ceil(needed * candles.bar_duration / pd.Timedelta(days=1))
        raise ValueError(
            f"{candles.source}: {len(candles.frame)} bars, fewer than the {needed} this run needs ({WARMUP_BARS} to warm the "
            f"features up, lookback {spec.lookback}, horizon {spec.max_horizon}, {MIN_EVALUATION_ORIGINS}+ validation and test "
            f"origins with split {list(spec.split)}); give more history (--days {days} or more) or a shorter --lookback/--horizons"
        )


def dataset_for(prepared: PreparedData, config: TrainingConfig, model_type: str, parts: tuple | None = None) -> Dataset:
    """The dataset a model type is fitted on (`parts`: a walk-forward fold's origin positions):
    the prepared one, or for a type with fixed input columns (the statistical baselines)
    those columns on the same origins and split."""
    inputs = model_class(model_type).input_features
    if inputs is None and parts is None:
        return prepared.dataset
    return build_dataset(prepared.candles.frame, prepared.features, config.dataset, parts=parts, inputs=inputs)


def symbol_tracker(config: TrainingConfig, run_name: str) -> Tracker:
    """An MLflow run in the symbol's experiment, stored under the output directory unless a URI is set."""
    return Tracker(
        enabled=config.output.mlflow,
        tracking_uri=config.output.tracking_uri,
        experiment=f"atb-{config.data.symbol}",
        run_name=run_name,
        local_dir=config.output.output_dir / "mlruns",
    )
