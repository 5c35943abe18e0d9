"""Walk-forward evaluation: one model type retrained on every fold, model vs naive.

Each fold builds its own dataset from the fold's origins (feature selection and
scaler fitted on the fold's training rows only), fits on train with early
stopping on val, and is scored on its test block; folds are separated by purge
gaps of max(horizons) bars (see `atb.training.walk_forward`).
"""

from __future__ import annotations

import numpy as np

from atb.config import TrainingConfig
from atb.dataset import forecast_origins
from atb.models import create_model
from atb.pipeline import PreparedData, baseline_predictions, dataset_for, evaluate_models, fit_settings
from atb.training.walk_forward import walk_forward_folds

SUMMARY_METRICS = ("rmse_ratio", "mase", "directional_accuracy")


def run_walk_forward(
    config: TrainingConfig, prepared: PreparedData, mode: str = "expanding", embargo: int = 0
) -> dict:
    """Per-fold metrics for the model and the naive forecast, and their mean/std per horizon."""
    candles, features = prepared.candles.frame, prepared.features
    origins = forecast_origins(features, config.lookback, config.max_horizon)
    folds = walk_forward_folds(
        len(origins), n_splits=config.wf_splits, max_horizon=config.max_horizon, embargo=embargo, mode=mode
    )
    per_fold = []
    for fold in folds:
        dataset = dataset_for(config, candles, features, parts=(fold.train, fold.val, fold.test))
        model = create_model(
            config.model_type, dataset.input_shape, horizons=dataset.horizons, variant=config.variant, **config.overrides
        )
        model.fit(dataset.train, dataset.val, fit_settings(config))
        predictions = {"model": model.predict(dataset.test.X), **baseline_predictions(dataset, dataset.test)}
        metrics = evaluate_models(predictions, dataset.test, dataset)
        per_fold.append(
            {
                "fold": fold.index,
                "train": [str(dataset.boundaries()["train"][0]), str(dataset.boundaries()["train"][1])],
                "test": dataset.boundaries()["test"],
                "n_test": len(dataset.test),
                "metrics": {
                    name: {h: {k: m[k] for k in SUMMARY_METRICS} for h, m in per_h.items()}
                    for name, per_h in metrics.items()
                },
            }
        )
    return {"model_type": config.model_type, "mode": mode, "embargo": embargo, "folds": per_fold, "summary": summarise(per_fold, config.horizons)}


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
