"""Walk-forward evaluation: model types retrained on every fold, model vs naive.

Each fold builds its own dataset from the fold's origins (feature selection and
scaler fitted on the fold's training rows only), fits on train with early
stopping on its held-out tail (`fitting_parts`), and is scored on its test
block; folds are separated by purge gaps of max(horizons) bars plus the embargo
(default: max(horizons) again); the scheme is `config.production.cv`
(expanding, rolling, purged k-fold or Monte Carlo, see `atb.folds`). A fold's
dataset and baseline forecasts do not depend on the model type, so every model
type shares them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from atb.config import TrainingConfig
from atb.dataset import Dataset, build_dataset, forecast_origins, idle_stretches
from atb.evaluation.protocol import baseline_predictions, evaluate_models
from atb.folds import Fold, cv_folds
from atb.models import create_model, model_class
from atb.models.trainer import FitSettings
from atb.workflows.steps import PreparedData, dataset_for, fitting_parts

SUMMARY_METRICS = ("rmse_ratio", "mase", "directional_accuracy")


def run_walk_forward(config: TrainingConfig, prepared: PreparedData, model_types: Sequence[str]) -> dict[str, dict]:
    """Per model type: per-fold metrics for the model and the naive forecast, and their mean/std per horizon,
    on the folds of `config.production.cv` (`wf_splits` of them, `embargo`)."""
    spec = config.dataset
    per_fold: dict[str, list[dict]] = {model_type: [] for model_type in model_types}
    for fold, dataset in fold_datasets(config, prepared, config.production.wf_splits):
        spans = fold_spans(fold, dataset)
        baseline_metrics = evaluate_models(baseline_predictions(dataset, dataset.test), dataset.test, dataset)
        for model_type in model_types:
            own = dataset if model_class(model_type).input_features is None else dataset_for(prepared, config, model_type, fold.parts)
            model = create_model(
                model_type, own.input_shape, horizons=own.horizons, variant=config.model.variant, **config.model.overrides
            )
            model.fit(*fitting_parts(config, model_type, own.train, own.val), FitSettings.from_spec(config.fit))
            metrics = evaluate_models({"model": model.predict(own.test.X)}, own.test, own)
            per_fold[model_type].append({**spans, "metrics": summary_metrics({**metrics, **baseline_metrics})})
    return {
        model_type: {
            "model_type": model_type,
            "cv": config.production.cv,
            "embargo": fold_embargo(config),
            "folds": results,
            "summary": summarise(results, spec.horizons),
        }
        for model_type, results in per_fold.items()
    }


def fold_datasets(config: TrainingConfig, prepared: PreparedData, n_splits: int) -> Iterator[tuple[Fold, Dataset]]:
    """Each fold of `config.production.cv` and its dataset (selection and scaler fitted on the fold's training rows)."""
    candles, features, spec = prepared.candles.frame, prepared.features, config.dataset
    origins = forecast_origins(features, spec.lookback, spec.max_horizon, idle_stretches(candles, spec.max_idle_bars))
    folds = cv_folds(config.production.cv, len(origins), n_splits, spec.max_horizon, fold_embargo(config), spec.lookback, config.fit.seed)
    for fold in folds:
        yield fold, build_dataset(candles, features, spec, parts=fold.parts)


def fold_embargo(config: TrainingConfig) -> int:
    """The configured embargo, by default the longest horizon."""
    return config.dataset.max_horizon if config.production.embargo is None else config.production.embargo


def fold_spans(fold: Fold, dataset: Dataset) -> dict:
    """A fold's index, training and test spans and test size."""
    boundaries = dataset.boundaries()
    return {"fold": fold.index, "train": list(boundaries["train"]), "test": boundaries["test"], "n_test": len(dataset.test)}


def summary_metrics(metrics: dict[str, dict[int, dict]]) -> dict:
    """The SUMMARY_METRICS of each forecaster and horizon."""
    return {name: {h: {k: m[k] for k in SUMMARY_METRICS} for h, m in per_h.items()} for name, per_h in metrics.items()}


def summarise(per_fold: list[dict], horizons: tuple[int, ...]) -> dict:
    """Mean and std over folds of each summary metric, per model and horizon."""
    out: dict = {}
    for name in per_fold[0]["metrics"]:
        out[name] = {}
        for h in horizons:
            out[name][h] = {}
            for key in SUMMARY_METRICS:
                values = np.array([fold["metrics"][name][h][key] for fold in per_fold], dtype=float)
                out[name][h][key] = {"mean": float(np.nanmean(values)), "std": float(np.nanstd(values, ddof=1)) if len(values) > 1 else 0.0}
    return out
