"""The training pipeline: load -> validate -> features -> dataset -> fit -> evaluate
-> plots -> report -> registry -> MLflow.

Library code: no printing. Progress goes to an optional `on_event(kind, payload)`
callback (kinds "stage", "epoch", "message") that the CLI renders.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from atb import __version__
from atb.config import TrainingConfig
from atb.data import Candles, load_candles
from atb.dataset import Dataset, Split, build_dataset
from atb.evaluation import backtest_long_flat, evaluate_forecasts
from atb.evaluation.importance import permutation_importance
from atb.features import compute_features
from atb.features.funding import load_funding
from atb.io import atomic_write_json
from atb.models import ForecastModel, create_model
from atb.registry import ModelRegistry, ModelVersion
from atb.tracking import Tracker
from atb.training.trainer import FitSettings, resolve_device

logger = logging.getLogger(__name__)

EventHandler = Callable[[str, dict], None]
FEATURES_FILE = "features.json"
REPORT_FILE = "training_report.json"
MODEL_DIR = "model"
PLOTS_DIR = "plots"
BASELINES = ("naive", "drift")
BACKTEST_FEE = 0.001


@dataclass
class PreparedData:
    """Candles, their full feature matrix and the model-ready dataset."""

    candles: Candles
    features: pd.DataFrame
    dataset: Dataset


@dataclass
class TrainingResult:
    """What one `train_model` run produced."""

    version: ModelVersion
    model: ForecastModel
    dataset: Dataset
    report: dict
    metrics: dict[str, dict[int, dict]]
    test_prediction: np.ndarray  # the model's forecast of dataset.test
    importance: pd.Series  # of each input feature, as plotted


def load_market_data(config: TrainingConfig) -> Candles:
    return load_candles(
        symbol=config.symbol,
        data_path=config.data_path,
        exchange=config.exchange,
        timeframe=config.timeframe,
        days=config.days,
        gap_policy=config.gap_policy,
        drop_partial_last_bar=config.drop_partial_last_bar,
        cache_dir=config.cache_dir,
    )


def feature_matrix(candles: Candles, funding_path: Path | None) -> pd.DataFrame:
    """All candidate features of the candles (plus funding features when a file is given)."""
    funding = load_funding(funding_path) if funding_path is not None else None
    return compute_features(candles.frame, funding=funding, bar_duration=candles.bar_duration)


def dataset_for(
    config: TrainingConfig, candles: pd.DataFrame, features: pd.DataFrame, parts: tuple | None = None
) -> Dataset:
    """The dataset the config describes; `parts` (train, val, test origin positions) for a fold."""
    return build_dataset(
        candles,
        features,
        horizons=config.horizons,
        lookback=config.lookback,
        split=config.split,
        n_features=config.n_features,
        selection_target=config.selection_target,
        target_kind=config.target_kind,
        parts=parts,
    )


def prepare_data(config: TrainingConfig, candles: Candles | None = None) -> PreparedData:
    candles = candles if candles is not None else load_market_data(config)
    features = feature_matrix(candles, config.funding_path)
    dataset = dataset_for(config, candles.frame, features)
    return PreparedData(candles=candles, features=features, dataset=dataset)


def symbol_tracker(config: TrainingConfig, run_name: str) -> Tracker:
    """An MLflow run in the symbol's experiment, stored under the output directory unless a URI is set."""
    return Tracker(
        enabled=config.mlflow,
        tracking_uri=config.tracking_uri,
        experiment=f"atb-{config.symbol}",
        run_name=run_name,
        local_dir=config.output_dir / "mlruns",
    )


def fit_settings(config: TrainingConfig, checkpoint_dir: Path | None = None) -> FitSettings:
    return FitSettings.from_config(config, checkpoint_dir=checkpoint_dir)


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
    """Long/flat backtest of the 1-bar forecast; None-safe when horizon 1 is absent."""
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


def data_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the candles (timestamps and values), to tie a model to its data."""
    digest = hashlib.sha256()
    digest.update(frame.index.asi8.tobytes())
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype=float)).tobytes())
    return digest.hexdigest()


def environment(device: str) -> dict[str, Any]:
    import lightgbm
    import sklearn
    import torch

    return {
        "atb": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "lightgbm": lightgbm.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit_learn": sklearn.__version__,
        "device": device,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "git_commit": git_commit(),
    }


def git_commit() -> str | None:
    """The commit of the atb source tree, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def data_summary(prepared: PreparedData) -> dict:
    candles, dataset = prepared.candles, prepared.dataset
    frame = candles.frame
    return {
        "symbol": candles.symbol,
        "source": candles.source,
        "rows": len(frame),
        "span": [frame.index[0].isoformat(), frame.index[-1].isoformat()],
        "bar_duration": str(candles.bar_duration),
        "sha256": data_fingerprint(frame),
        "validation": candles.report.to_dict(),
        "splits": {
            name: {"origins": len(part), "first": first, "last": last}
            for (name, (first, last)), part in zip(
                dataset.boundaries().items(), (dataset.train, dataset.val, dataset.test)
            )
        },
    }


def feature_spec(prepared: PreparedData, config: TrainingConfig) -> dict:
    """What inference needs to rebuild the same feature matrix."""
    return {
        "bar_duration": str(prepared.candles.bar_duration),
        "funding_path": None if config.funding_path is None else str(config.funding_path),
        "n_candidates": prepared.features.shape[1],
        "selected": list(prepared.dataset.transform.feature_names),
    }


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


def save_attention_heatmap(writer: PlotWriter, model: ForecastModel, test: Split, owner: str | None = None) -> None:
    """Attention of `model` over the last (up to) 64 test windows."""
    from atb.evaluation import plots

    sample = test.X[-min(len(test), 64) :]
    weights = model.attention_weights(sample)
    writer.save("attention_heatmap", lambda p: plots.plot_attention_heatmap(weights, test.origin_time[-len(sample) :], p), owner)


def save_forecast_plots(
    writer: PlotWriter, dataset: Dataset, metrics: dict[str, dict[int, dict]], test_prediction: np.ndarray
) -> None:
    """Model comparison, and the test-part forecast against the actual closes and its residuals."""
    from atb.evaluation import plots

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


def write_plots(
    directory: Path,
    model: ForecastModel,
    history: list[dict],
    dataset: Dataset,
    metrics: dict[str, dict[int, dict]],
    test_prediction: np.ndarray,
    summary: dict,
    importance: pd.Series,
) -> dict[str, str]:
    """The applicable diagnostic PNGs; returns plot name -> file name or why it was not written."""
    from atb.evaluation import plots

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
        save_attention_heatmap(writer, model, dataset.test)
    else:
        writer.skip("attention_heatmap", f"{model.model_type} has no attention")
    writer.save("feature_importance", lambda p: plots.plot_feature_importance(importance, p))
    save_forecast_plots(writer, dataset, metrics, test_prediction)
    writer.skip("ensemble_weights", "a single model has no ensemble weights (see `atb train production`)")
    writer.save("training_summary", lambda p: plots.plot_training_summary(summary, p))
    return writer.written


def feature_importance(model: ForecastModel, dataset: Dataset, seed: int) -> pd.Series:
    """LightGBM gain by feature, else permutation importance on the validation windows."""
    names = dataset.transform.feature_names
    if model.has_feature_importance:
        return model.feature_importance_by_feature(names)
    return permutation_importance(model.predict, dataset.val.X, dataset.val.y, names, seed=seed)


def train_model(
    config: TrainingConfig,
    on_event: EventHandler | None = None,
    candles: Candles | None = None,
    prepared: PreparedData | None = None,
) -> TrainingResult:
    """Train one model end to end and store it as a new registry version.

    `candles` (already validated) replace the configured source; `prepared`
    (candles, features and dataset built for this config) skips those steps.
    """
    emit = on_event or (lambda kind, payload: None)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def stage(name: str) -> None:
        emit("stage", {"name": name})

    if prepared is None:  # otherwise the caller built (and timed) data and features once for several models
        tic = time.perf_counter()
        stage("data")
        candles = candles if candles is not None else load_market_data(config)
        for line in candles.report.messages():
            emit("message", {"text": line})
        stage("features")
        prepared = prepare_data(config, candles)
        timings["data_and_features_s"] = time.perf_counter() - tic
    dataset = prepared.dataset

    model = create_model(
        config.model_type, dataset.input_shape, horizons=dataset.horizons, variant=config.variant, **config.overrides
    )
    device = str(resolve_device(config.device)) if model.is_neural else "cpu"
    registry = ModelRegistry(config.registry_dir)
    run_name = f"{config.symbol}-{config.model_type}-{time.strftime('%Y%m%d-%H%M%S')}"
    with symbol_tracker(config, run_name) as tracker, tempfile.TemporaryDirectory(prefix="atb-train-") as scratch:
        tracker.log_params({**config.to_dict(), "n_candidates": prepared.features.shape[1]})
        tracker.set_tags({"symbol": config.symbol, "model_type": config.model_type, "variant": config.variant})

        def on_epoch(row: dict) -> None:
            tracker.log_epoch(row, step=int(row["epoch"]))
            emit("epoch", row)

        stage("fit")
        tic = time.perf_counter()
        history = model.fit(dataset.train, dataset.val, fit_settings(config, Path(scratch) / "checkpoint"), on_epoch=on_epoch)
        timings["fit_s"] = time.perf_counter() - tic

        stage("evaluate")
        tic = time.perf_counter()
        test_prediction = model.predict(dataset.test.X)
        predictions = {config.model_type: test_prediction, **baseline_predictions(dataset, dataset.test)}
        metrics = evaluate_models(predictions, dataset.test, dataset)
        backtest_result = backtest(dataset.test, dataset, test_prediction)
        timings["evaluate_s"] = time.perf_counter() - tic

        report = {
            "config": config.to_dict(),
            "data": data_summary(prepared),
            "features": {
                "n_candidates": prepared.features.shape[1],
                "selected": list(dataset.transform.feature_names),
                "selection_scores": {k: float(v) for k, v in dataset.feature_scores.head(len(dataset.transform.feature_names)).items()},
            },
            "model": {
                "model_type": config.model_type,
                "variant": config.variant,
                "params": model.get_params(),
                "best_epoch": getattr(model, "best_epoch_", None),
            },
            "history": history,
            "metrics": metrics,
            "backtest": backtest_result,
            "seed": config.seed,
            "environment": environment(device),
        }

        stage("plots")
        plots_dir = Path(scratch) / PLOTS_DIR
        plots_dir.mkdir()
        summary = {
            "title": f"{config.symbol} {config.model_type} ({config.variant})",
            "config": {
                "model_type": config.model_type,
                "variant": config.variant,
                "epochs run": len(history),
                "best epoch": report["model"]["best_epoch"],
                "fit seconds": round(timings["fit_s"], 1),
                "data span": " .. ".join(s[:10] for s in report["data"]["span"]),
                "features": f"{len(dataset.transform.feature_names)} of {prepared.features.shape[1]}",
            },
            "metrics": metrics[config.model_type],
            "history": history,
        }
        importance = feature_importance(model, dataset, config.seed)
        report["plots"] = write_plots(plots_dir, model, history, dataset, metrics, test_prediction, summary, importance)
        timings["total_s"] = time.perf_counter() - started
        report["timings"] = timings

        stage("save")

        def populate(directory: Path) -> None:
            model.save(directory / MODEL_DIR)
            dataset.transform.save(directory)
            atomic_write_json(directory / FEATURES_FILE, feature_spec(prepared, config))
            shutil.copytree(plots_dir, directory / PLOTS_DIR)
            atomic_write_json(directory / REPORT_FILE, report)

        version = registry.create_version(
            config.symbol,
            config.model_type,
            populate,
            metadata={
                "kind": "model",
                "architecture": config.model_type,
                "variant": config.variant,
                "training_params": config.to_dict(),
                "metrics": metrics,
                "data_hash": report["data"]["sha256"],
                "data_span": report["data"]["span"],
                "mlflow_run_id": tracker.run_id,
            },
        )
        report["registry"] = {"path": str(version.path), "version": version.version}
        tracker.log_metrics({"test": metrics, "backtest": _flat_backtest(backtest_result), "fit_seconds": timings["fit_s"]})
        tracker.log_artifacts(version.path)
        tracker.set_tags({"registry_version": f"{config.symbol}/{config.model_type}/{version.version}"})
    return TrainingResult(
        version=version,
        model=model,
        dataset=dataset,
        report=report,
        metrics=metrics,
        test_prediction=test_prediction,
        importance=importance,
    )


def _flat_backtest(result: dict) -> dict:
    return {k: v for k, v in result.items() if isinstance(v, (int, float))} | {
        f"buy_and_hold_{k}": v for k, v in result.get("buy_and_hold", {}).items() if isinstance(v, (int, float))
    }
