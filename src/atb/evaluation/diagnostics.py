"""Which diagnostic PNGs a run writes: a single model's set and a production ensemble's set.

Each function returns plot name -> file name (or why the plot was not written),
which the report keeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from atb.dataset import Dataset, Split
from atb.ensemble.fit import FittedEnsemble
from atb.evaluation import plots
from atb.evaluation.importance import attribution_explanation, evenly_spaced
from atb.models import ForecastModel

ATTRIBUTION_WINDOWS = 64  # validation windows explained in shap_summary, evenly spaced in time


class PlotWriter:
    """Draws PNGs into `directory` and records plot name -> file name (or why it was not written)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.written: dict[str, str] = {}

    def save(self, name: str, draw: Callable[[Path], Any], owner: str | None = None) -> None:
        """Draw `name`.png; `owner` names the model it shows when several were trained."""
        path = self.directory / f"{name}.png"
        draw(path)
        self.written[name] = path.name if owner is None else f"{path.name} ({owner})"

    def skip(self, name: str, reason: str) -> None:
        self.written[name] = f"not written: {reason}"


def write_model_plots(
    directory: Path,
    model: ForecastModel,
    history: list[dict],
    dataset: Dataset,
    metrics: dict[str, dict[int, dict]],
    test_prediction: np.ndarray,
    summary: dict,
    importance: pd.Series,
    learning: dict | None = None,
) -> dict[str, str]:
    """The applicable diagnostic PNGs of one trained model (`learning`: its learning curve, if run)."""
    writer = PlotWriter(directory)
    if history:
        writer.save("loss_curves", lambda p: plots.plot_loss_curves(history, p))
        writer.save("learning_rates", lambda p: plots.plot_learning_rates(history, p))
    else:
        writer.skip("loss_curves", f"{model.model_type} has no training history")
        writer.skip("learning_rates", f"{model.model_type} has no training history")
    if history and any(key.startswith("val_mae_h") for key in history[0]):
        writer.save("metrics_progression", lambda p: plots.plot_metrics_progression(history, p))
    else:
        writer.skip("metrics_progression", "no per-horizon validation history")
    if model.has_attention:
        _save_attention_heatmap(writer, model, dataset.test)
    else:
        writer.skip("attention_heatmap", f"{model.model_type} has no attention")
    writer.save("feature_importance", lambda p: plots.plot_feature_importance(importance, p))
    windows = dataset.val.X[evenly_spaced(len(dataset.val), ATTRIBUTION_WINDOWS)]
    explanation = attribution_explanation(model, windows)
    if explanation is None:
        writer.skip("shap_summary", f"{model.model_type} has no per-forecast attributions (its permutation importance is in feature_importance)")
    else:
        names, horizons = dataset.transform.feature_names, dataset.horizons
        writer.save("shap_summary", lambda p: plots.plot_shap_summary(*explanation, windows[:, -1, :], names, horizons, p))
    if learning:
        writer.save("learning_curve", lambda p: plots.plot_learning_curve(learning, dataset.horizons, p))
    else:
        writer.skip("learning_curve", "not asked for (--learning-curve)")
    if dataset.transform.target.is_direction:
        _save_probability_plots(writer, dataset, test_prediction)
    else:
        _save_forecast_plots(writer, dataset, metrics, test_prediction)
    writer.skip("ensemble_weights", "a single model has no ensemble weights (see `atb train production`)")
    writer.save("training_summary", lambda p: plots.plot_training_summary(summary, p))
    return writer.written


def write_ensemble_plots(
    directory: Path,
    dataset: Dataset,
    models: dict[str, ForecastModel],
    histories: dict[str, list[dict]],
    importances: dict[str, pd.Series],
    fitted: FittedEnsemble,
    metrics: dict[str, dict[int, dict]],
    summary: dict,
) -> dict[str, str]:
    """The diagnostic PNGs of a production run: the ten of one model (a plot of one base names
    it), plus every base's training curves and learning rates and every base's forecasts and
    residuals beside the ensemble's.

    `summary` holds the training summary's title and config lines; its history
    and metrics are filled in here (the first neural base's history, the served
    ensemble's metrics).
    """
    writer = PlotWriter(directory)
    history_owner = next((name for name, model in models.items() if model.is_neural), None)
    history = histories[history_owner] if history_owner else [{"epoch": 1, "loss": 0.0, "val_loss": 0.0}]
    if history_owner:
        writer.save("loss_curves", lambda p: plots.plot_loss_curves(history, p), history_owner)
        writer.save("metrics_progression", lambda p: plots.plot_metrics_progression(history, p), history_owner)
        writer.save("learning_rates", lambda p: plots.plot_learning_rates(history, p), history_owner)
    attention_owner = next((name for name, model in models.items() if model.has_attention), None)
    if attention_owner:
        _save_attention_heatmap(writer, models[attention_owner], dataset.test, attention_owner)
    importance_owner = next((name for name, model in models.items() if model.has_feature_importance), next(iter(models)))
    importance = importances[importance_owner]
    writer.save("feature_importance", lambda p: plots.plot_feature_importance(importance, p), importance_owner)
    _save_forecast_plots(writer, dataset, metrics, fitted.served_prediction)
    writer.save(
        "ensemble_weights",
        lambda p: plots.plot_ensemble_weights(fitted.online_weights, p, regimes=fitted.test_regimes),
    )
    if any(history and "lr" in history[0] for history in histories.values()):
        writer.save("base_training", lambda p: plots.plot_base_training(histories, p))
    else:
        writer.skip("base_training", "no neural base model")
    test, target = dataset.test, dataset.transform.target
    forecasts = {name: target.to_prices(fitted.test_predictions[name], test.origin_close) for name in (*models, "ensemble_stacking")}
    writer.save("base_forecasts", lambda p: plots.plot_base_forecasts(test.origin_time, test.future_close, forecasts, dataset.horizons, p))
    full_summary = {**summary, "metrics": metrics["ensemble_stacking"], "history": history}
    writer.save("training_summary", lambda p: plots.plot_training_summary(full_summary, p))
    return writer.written


def _save_attention_heatmap(writer: PlotWriter, model: ForecastModel, test: Split, owner: str | None = None) -> None:
    """Attention of `model` over the last (up to) 64 test windows."""
    sample = test.X[-min(len(test), 64) :]
    weights = model.attention_weights(sample)
    writer.save("attention_heatmap", lambda p: plots.plot_attention_heatmap(weights, test.origin_time[-len(sample) :], p), owner)


def _save_probability_plots(writer: PlotWriter, dataset: Dataset, probability: np.ndarray) -> None:
    """Reliability diagram and ROC curves of a direction model's test probabilities; the price
    plots do not apply."""
    test = dataset.test
    moved = test.future_close != test.origin_close[:, None]
    up = np.where(moved, (test.future_close > test.origin_close[:, None]).astype(float), np.nan)
    base_rate, horizons = dataset.train.y.mean(axis=0), dataset.horizons
    writer.save("calibration", lambda p: plots.plot_calibration(up, probability, base_rate, horizons, p))
    writer.save("roc_curves", lambda p: plots.plot_roc_curves(up, probability, horizons, p))
    for name in ("model_comparison", "predictions_vs_actual", "residual_analysis"):
        writer.skip(name, "a direction model forecasts probabilities, not prices (see calibration and roc_curves)")


def _save_forecast_plots(
    writer: PlotWriter, dataset: Dataset, metrics: dict[str, dict[int, dict]], test_prediction: np.ndarray
) -> None:
    """Model comparison, and the test-part forecast against the actual closes and its residuals."""
    test = dataset.test
    predicted_close = dataset.transform.target.to_prices(test_prediction, test.origin_close)
    writer.save("model_comparison", lambda p: plots.plot_model_comparison(metrics, p))
    writer.save(
        "predictions_vs_actual",
        lambda p: plots.plot_predictions_vs_actual(test.origin_time, test.future_close, predicted_close, dataset.horizons, p),
    )
    writer.save(
        "residual_analysis", lambda p: plots.plot_residual_analysis(test.future_close, predicted_close, dataset.horizons, p)
    )
