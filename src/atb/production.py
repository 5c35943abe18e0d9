"""`atb train production`: per symbol, base models -> regime-aware ensemble ->
uncertainty -> evaluation -> plots -> registry versions -> MLflow.

The ensemble is fitted on validation-part predictions only; the test part is
used once, for the report. The served combination is the stacking
meta-learner (chosen before seeing any test result); fixed, regime and online
weights are evaluated beside it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from atb.config import TrainingConfig
from atb.dataset import Dataset, Split
from atb.ensemble import (
    ConformalIntervals,
    FixedWeights,
    OnlineWeights,
    RegimeDetector,
    RegimeWeights,
    StackingMetaLearner,
    combine_uncertainty,
    coverage,
    mean_width,
    regime_shares,
)
from atb.ensemble.uncertainty import gaussian_interval, mc_moments
from atb.ensemble.artifact import LEVELS, EnsembleSpec
from atb.io import atomic_write_json
from atb.models import ForecastModel
from atb.pipeline import (
    REPORT_FILE,
    EventHandler,
    PlotWriter,
    PreparedData,
    TrainingResult,
    backtest,
    baseline_predictions,
    evaluate_models,
    fit_settings,
    prepare_data,
    save_attention_heatmap,
    save_forecast_plots,
    symbol_tracker,
    train_model,
)
from atb.registry import ModelRegistry, ModelVersion

logger = logging.getLogger(__name__)

ENSEMBLE_TYPE = "ensemble"
CROSS_FIT_BLOCKS = 5


@dataclass
class SymbolResult:
    symbol: str
    output_dir: Path | None
    ensemble_version: ModelVersion | None
    metrics: dict | None
    error: str | None = None


def symbol_name(crypto: str) -> str:
    """BTC -> BTCUSDT; BTCUSDT stays."""
    crypto = crypto.strip().upper().replace("/", "").replace("-", "")
    return crypto if crypto.endswith(("USDT", "USDC", "USD", "BUSD", "EUR")) else f"{crypto}USDT"


def train_production(
    config: TrainingConfig,
    symbols: list[str],
    data_paths: dict[str, Path] | None = None,
    on_event: EventHandler | None = None,
) -> list[SymbolResult]:
    """Run the production pipeline for each symbol; a failing symbol is reported, the others go on."""
    emit = on_event or (lambda kind, payload: None)
    results = []
    for symbol in symbols:
        cfg = config.replace(symbol=symbol, data_path=(data_paths or {}).get(symbol, config.data_path))
        emit("stage", {"name": "symbol", "label": symbol})
        try:
            results.append(train_symbol(cfg, emit))
        except Exception as exc:  # one symbol's failure must not stop the others
            logger.error("production run for %s failed:\n%s", symbol, traceback.format_exc())
            emit("message", {"text": f"{symbol} failed: {type(exc).__name__}: {exc}"})
            results.append(SymbolResult(symbol, None, None, None, error=f"{type(exc).__name__}: {exc}"))
    return results


def train_symbol(config: TrainingConfig, emit: EventHandler) -> SymbolResult:
    started = time.perf_counter()
    prepared = prepare_data(config)
    dataset = prepared.dataset
    out_dir = config.output_dir / f"{config.symbol}_{time.strftime('%Y%m%d-%H%M%S')}"
    report: dict = {"config": config.to_dict(), "bases": {}, "timings": {}}

    if config.walk_forward:
        from atb.walk_forward import run_walk_forward

        emit("stage", {"name": "walk_forward", "label": f"{config.symbol}: walk-forward"})
        report["walk_forward"] = run_walk_forward(config, prepared, config.base_models)

    bases: dict[str, TrainingResult] = {}
    for name in config.base_models:
        base_cfg = config.replace(model_type=name)
        if config.tune and name in config.tune_models:
            base_cfg = tuned_config(base_cfg, dataset, emit)
            report.setdefault("tuning", {})[name] = {"overrides": base_cfg.overrides, "learning_rate": base_cfg.learning_rate}
        emit("stage", {"name": "fit", "label": f"{config.symbol}: {name}"})
        result = train_model(base_cfg, on_event=emit, prepared=prepared)
        bases[name] = result
        report["bases"][name] = {"version": result.version.ref, "path": str(result.version.path)}
        report["timings"][f"{name}_fit_s"] = result.report["timings"]["fit_s"]

    if not config.ensemble:
        report["timings"]["total_s"] = time.perf_counter() - started
        _write_output(out_dir, report, None)
        return SymbolResult(config.symbol, out_dir, None, None)

    emit("stage", {"name": "ensemble", "label": f"{config.symbol}: ensemble"})
    models = {name: base.model for name, base in bases.items()}
    ensemble = fit_ensemble(config, prepared, models, {name: base.test_prediction for name, base in bases.items()})
    base_refs = {name: base.version.ref for name, base in bases.items()}
    ensemble["spec"].bases = base_refs
    metrics = evaluate_models({**ensemble["test_predictions"], **baseline_predictions(dataset, dataset.test)}, dataset.test, dataset)
    report.update(
        metrics=metrics,
        regimes=ensemble["regime_shares"],
        uncertainty=ensemble["uncertainty"],
        backtest=backtest(dataset.test, dataset, ensemble["test_predictions"]["ensemble_stacking"]),
        stacking=ensemble["stacking_coefficients"],
    )

    with tempfile.TemporaryDirectory(prefix="atb-production-") as scratch:
        plots_dir = Path(scratch) / "plots"
        plots_dir.mkdir()
        report["plots"] = write_production_plots(plots_dir, config, dataset, bases, ensemble, metrics)
        report["timings"]["total_s"] = time.perf_counter() - started

        def populate(directory: Path) -> None:
            ensemble["spec"].save(directory)
            shutil.copytree(plots_dir, directory / "plots")
            atomic_write_json(directory / REPORT_FILE, report)

        version = ModelRegistry(config.registry_dir).create_version(
            config.symbol,
            ENSEMBLE_TYPE,
            populate,
            metadata={
                "kind": "ensemble",
                "architecture": ENSEMBLE_TYPE,
                "method": "stacking",
                "bases": base_refs,
                "training_params": config.to_dict(),
                "metrics": {"ensemble_stacking": metrics["ensemble_stacking"]},
            },
        )
        report["ensemble_version"] = version.ref
        _write_output(out_dir, report, plots_dir)
        _log_to_mlflow(config, report, out_dir)
    return SymbolResult(config.symbol, out_dir, version, metrics)


def tuned_config(config: TrainingConfig, dataset: Dataset, emit: EventHandler) -> TrainingConfig:
    """The config with the best overrides an Optuna study found on the validation part."""
    from atb.training.tuning import tune_model

    emit("stage", {"name": "tune", "label": f"{config.symbol}: tuning {config.model_type}"})
    result = tune_model(
        config.model_type,
        dataset,
        fit_settings(config),
        n_trials=config.tune_trials,
        timeout=config.tune_timeout,
        storage=config.tune_storage,
        study_name=f"atb-{config.symbol}-{config.model_type}",
        seed=config.seed,
        variant=config.variant,
        directory=config.output_dir.resolve(),
    )
    return config.replace(overrides={**config.overrides, **result.best_params}, **result.best_fit_settings)


def fit_ensemble(
    config: TrainingConfig,
    prepared: PreparedData,
    models: dict[str, ForecastModel],
    test_preds: dict[str, np.ndarray],
) -> dict:
    """Every combination method on the test part (`test_preds`: each model's forecast of it),
    fitted on validation predictions only."""
    dataset = prepared.dataset
    val, test = dataset.val, dataset.test
    val_preds = {name: m.predict(val.X) for name, m in models.items()}

    regimes = regimes_by_split(prepared.candles.frame["close"], dataset)
    test_regimes = regimes["test"]

    names = list(models)
    fixed = FixedWeights()
    fixed_weights = {name: float(weight) for name, weight in fixed.weights_of(names).items()}
    regime = RegimeWeights()
    val_window = (val.origin_time[0], val.origin_time[-1])
    stacking = StackingMetaLearner().fit(val_preds, val.y, val.origin_time, val_window)
    online = OnlineWeights(horizons=dataset.horizons, initial=fixed_weights).fit(val_preds, val.y)
    online_test, online_weights = online.combine(test_preds, test.y)

    test_predictions = {
        **test_preds,
        "ensemble_fixed": fixed.combine(test_preds),
        "ensemble_regime": regime.combine(test_preds, test_regimes),
        "ensemble_stacking": stacking.combine(test_preds),
        "ensemble_online": online_test,
    }

    conformal = ConformalIntervals(LEVELS).fit(cross_fitted_stacking(val_preds, val), val.y)
    residual_std = {
        name: np.std(val_preds[name] - val.y, axis=0, ddof=1).tolist()
        for name, m in models.items()
        if not (m.supports_mc_dropout and config.uncertainty)
    }
    uncertainty = interval_report(
        config, models, test, test_preds, test_predictions["ensemble_stacking"], conformal, residual_std, fixed_weights
    )

    fitted = stacking.coefficients()
    coef = fitted[names].to_numpy(dtype=float)
    spec = EnsembleSpec(
        bases={name: name for name in names},  # replaced by registry refs once the bases are stored
        horizons=dataset.horizons,
        intercept=fitted["intercept"].to_numpy(dtype=float),
        coefficients=coef,
        fixed_weights=fixed_weights,
        conformal={str(level): conformal.quantiles_[level].tolist() for level in LEVELS},
        residual_std=residual_std,
        mc_samples=config.mc_samples if config.uncertainty else 1,
    )
    online_frame = pd.DataFrame(
        online_weights[:, :, 0], index=pd.DatetimeIndex(test.origin_time), columns=names
    )
    return {
        "test_predictions": test_predictions,
        "spec": spec,
        "online_weights": online_frame,
        "test_regimes": pd.Series(test_regimes, index=pd.DatetimeIndex(test.origin_time)),
        "regime_shares": {name: regime_shares(labels) for name, labels in regimes.items()},
        "uncertainty": uncertainty,
        "stacking_coefficients": {
            f"h{h}": {"intercept": float(spec.intercept[j]), **dict(zip(names, map(float, coef[j])))}
            for j, h in enumerate(dataset.horizons)
        },
    }


def regimes_by_split(close: pd.Series, dataset: Dataset) -> dict[str, np.ndarray]:
    """Regime label of every origin per split; thresholds fitted on the training part."""
    labels = RegimeDetector().fit_transform(close, pd.Timestamp(dataset.train.origin_time[-1]))
    return {
        name: labels.loc[pd.DatetimeIndex(part.origin_time)].to_numpy()
        for name, part in (("train", dataset.train), ("val", dataset.val), ("test", dataset.test))
    }


def cross_fitted_stacking(val_preds: dict[str, np.ndarray], val: Split) -> np.ndarray:
    """Out-of-block stacking predictions on the validation part (contiguous blocks),
    so conformal calibration does not use in-sample residuals."""
    n = len(val)
    out = np.empty_like(val.y, dtype=float)
    window = (val.origin_time[0], val.origin_time[-1])
    for block in np.array_split(np.arange(n), CROSS_FIT_BLOCKS):
        rest = np.setdiff1d(np.arange(n), block)
        learner = StackingMetaLearner().fit(
            {k: v[rest] for k, v in val_preds.items()}, val.y[rest], val.origin_time[rest], window
        )
        out[block] = learner.combine({k: v[block] for k, v in val_preds.items()})
    return out


def interval_report(
    config: TrainingConfig,
    models: dict[str, ForecastModel],
    test: Split,
    base_predictions: dict[str, np.ndarray],
    point: np.ndarray,
    conformal: ConformalIntervals,
    residual_std: dict[str, list[float]],
    fixed_weights: dict[str, float],
) -> dict:
    """Empirical coverage and width of MC-dropout and conformal intervals on the test part
    (`base_predictions`: each model's point forecast of `test`; `point`: the ensemble's)."""
    out: dict = {"levels": list(LEVELS), "conformal": {}, "mc_dropout": {}, "ensemble_mixture": {}}
    for level in LEVELS:
        lower, upper = conformal.interval(point, level)
        out["conformal"][str(level)] = _interval_stats(lower, upper, test.y)
    if not config.uncertainty:
        out["mc_dropout"] = "off (--no-uncertainty)"
        return out
    means, stds = {}, {}
    for name, model in models.items():
        means[name], stds[name] = mc_moments(
            model, test.X, config.mc_samples, enabled=True, seed=config.seed, point=base_predictions[name]
        )
        if model.supports_mc_dropout:
            out["mc_dropout"][name] = {
                str(level): _interval_stats(*gaussian_interval(means[name], stds[name], level), test.y) for level in LEVELS
            }
            out["mc_dropout"][name]["mean_std"] = stds[name].mean(axis=0).tolist()
        else:
            stds[name] = np.broadcast_to(np.asarray(residual_std[name]), means[name].shape)
    mix_mean, mix_std = combine_uncertainty(means, stds, fixed_weights)
    out["ensemble_mixture"] = {str(level): _interval_stats(*gaussian_interval(mix_mean, mix_std, level), test.y) for level in LEVELS}
    return out


def _interval_stats(lower: np.ndarray, upper: np.ndarray, y: np.ndarray) -> dict:
    return {"coverage": coverage(lower, upper, y).tolist(), "mean_width": mean_width(lower, upper).tolist()}


def write_production_plots(
    plots_dir: Path,
    config: TrainingConfig,
    dataset: Dataset,
    bases: dict[str, TrainingResult],
    ensemble: dict,
    metrics: dict[str, dict[int, dict]],
) -> dict[str, str]:
    """The ten diagnostic PNGs for the ensemble run; a plot of one base names it."""
    from atb.evaluation import plots

    writer = PlotWriter(plots_dir)
    history_owner = next((name for name, base in bases.items() if base.model.is_neural), None)
    history = bases[history_owner].report["history"] if history_owner else [{"epoch": 1, "loss": 0.0, "val_loss": 0.0}]
    if history_owner:
        writer.save("loss_curves", lambda p: plots.plot_loss_curves(history, p), history_owner)
        writer.save("metrics_progression", lambda p: plots.plot_metrics_progression(history, p), history_owner)
        writer.save("learning_rates", lambda p: plots.plot_learning_rates(history, p), history_owner)
    attention_owner = next((name for name, base in bases.items() if base.model.has_attention), None)
    if attention_owner:
        save_attention_heatmap(writer, bases[attention_owner].model, dataset.test, attention_owner)
    importance_owner = next((name for name, base in bases.items() if base.model.has_feature_importance), next(iter(bases)))
    importance = bases[importance_owner].importance
    writer.save("feature_importance", lambda p: plots.plot_feature_importance(importance, p), importance_owner)
    save_forecast_plots(writer, dataset, metrics, ensemble["test_predictions"]["ensemble_stacking"])
    writer.save(
        "ensemble_weights",
        lambda p: plots.plot_ensemble_weights(ensemble["online_weights"], p, regimes=ensemble["test_regimes"]),
    )
    summary = {
        "title": f"{config.symbol} production ensemble (stacking)",
        "config": {"bases": ", ".join(bases), "epochs": config.epochs, "mc_samples": config.mc_samples},
        "metrics": metrics["ensemble_stacking"],
        "history": history,
    }
    writer.save("training_summary", lambda p: plots.plot_training_summary(summary, p))
    return writer.written


def _write_output(out_dir: Path, report: dict, plots_dir: Path | None) -> None:
    """training_output/{SYMBOL}_{timestamp}/: the report and the plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots_dir is not None:
        for png in plots_dir.glob("*.png"):
            shutil.copy2(png, out_dir / png.name)
    atomic_write_json(out_dir / REPORT_FILE, report)


def _log_to_mlflow(config: TrainingConfig, report: dict, out_dir: Path) -> None:
    with symbol_tracker(config, f"{config.symbol}-production-{out_dir.name}") as tracker:
        tracker.log_params(config.to_dict())
        tracker.log_metrics({"test": report["metrics"], "uncertainty": report["uncertainty"]})
        tracker.log_artifacts(out_dir)
        tracker.set_tags({"kind": "production", "ensemble_version": report.get("ensemble_version", "")})
