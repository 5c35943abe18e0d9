"""`atb train model`: load -> validate -> features -> dataset -> fit -> evaluate
-> plots -> report -> registry -> MLflow, for one model."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from atb.config import TrainingConfig
from atb.data import Candles, load_candles
from atb.dataset import Dataset, Split
from atb.evaluation.diagnostics import write_model_plots
from atb.evaluation.importance import feature_importance
from atb.evaluation.learning_curve import learning_curve
from atb.evaluation.predictions import write_predictions
from atb.evaluation.report import (
    DataSummary,
    FeatureSummary,
    ModelSummary,
    RegistryEntry,
    TrainingReport,
    data_fingerprint,
    environment,
)
from atb.io import atomic_write_json
from atb.layout import FEATURES_FILE, GATE_FILE, MODEL_DIR, MONITOR_FILE, PLOTS_DIR, PREDICTIONS_FILE, REPORT_FILE, TRANSFORM_FILE
from atb.models import ForecastModel, create_model, load_model, model_class
from atb.models.gate import GatedModel, SkillGate
from atb.models.seeds import SeedAverage, member_dir
from atb.models.trainer import FitSettings, resolve_device
from atb.processes import scratch_directory
from atb.registry import ModelRegistry, ModelVersion
from atb.workflows.assessment import assess_direction, assess_forecasts
from atb.workflows.preflight import check_run
from atb.workflows.steps import EventHandler, PreparedData, dataset_for, fitting_parts, ignore_events, prepare_data, symbol_tracker


@dataclass
class TrainingResult:
    """What one `train_model` run produced."""

    version: ModelVersion
    model: ForecastModel | SeedAverage | GatedModel  # as served: behind its skill gate unless the gate is off
    dataset: Dataset
    report: TrainingReport
    test_prediction: np.ndarray  # the served model's forecast of dataset.test
    importance: pd.Series  # of each input feature, as plotted

    @property
    def metrics(self) -> dict[str, dict[int, dict]]:
        return self.report.metrics


@dataclass(frozen=True)
class Member:
    """One seed of a seed ensemble, fitted elsewhere (a Ray task) and saved in `path`."""

    seed: int
    path: Path
    fit_s: float


def train_model(
    config: TrainingConfig,
    on_event: EventHandler = ignore_events,
    candles: Candles | None = None,
    prepared: PreparedData | None = None,
    members: tuple[Member, ...] = (),
) -> TrainingResult:
    """Train one model end to end and store it as a new registry version.

    `candles` (already validated) replace the configured source; `prepared`
    (candles, features and dataset built for this config) skips those steps;
    `members` are the seeds of a seed ensemble already fitted, assembled instead of fitted.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    symbol, spec = config.data.symbol, config.model
    check_run(config, [spec.model_type])

    if prepared is None:  # otherwise the caller built (and timed) data and features once for several models
        tic = time.perf_counter()
        on_event("stage", {"name": "data"})
        candles = candles if candles is not None else load_candles(config.data)
        on_event("stage", {"name": "features"})
        prepared = prepare_data(config, candles, on_event)
        timings["data_and_features_s"] = time.perf_counter() - tic
    dataset, train = training_data(prepared, config)

    device = str(resolve_device(config.fit.device)) if model_class(spec.model_type).is_neural else "cpu"
    registry = ModelRegistry(config.output.registry_dir)
    run_name = f"{symbol}-{spec.model_type}-{time.strftime('%Y%m%d-%H%M%S')}"
    checkpoints = checkpoint_dir(config, prepared.candles)
    for line in resume_messages(checkpoints, config.fit.resume):
        on_event("message", {"text": line})
    with symbol_tracker(config, run_name) as tracker, scratch_directory("train") as scratch:
        tracker.log_params({**config.to_dict(), "n_candidates": prepared.features.shape[1]})
        tracker.set_tags({"symbol": symbol, "model_type": spec.model_type, "variant": spec.variant})

        def on_epoch(row: dict) -> None:
            tracker.log_epoch(row, step=int(row["epoch"]))
            on_event("epoch", row)

        on_event("stage", {"name": "fit"})
        tic = time.perf_counter()
        model = assemble(config, members) if members else fit_model(config, dataset, checkpoints, on_epoch, on_event, train=train)
        history = model.history_  # of the first seed when several were fitted
        timings["fit_s"] = time.perf_counter() - tic + sum(member.fit_s for member in members)

        on_event("stage", {"name": "evaluate"})
        tic = time.perf_counter()
        if dataset.transform.target.is_direction:
            assessment = assess_direction(model, dataset, spec.model_type)
        else:
            assessment = assess_forecasts(model, dataset, prepared, spec.model_type, spec.skill_gate)
        gate, metrics, test_prediction = assessment.gate, assessment.metrics, assessment.test_prediction
        for line in assessment.warnings:
            on_event("message", {"text": line})
        timings["evaluate_s"] = time.perf_counter() - tic

        report = TrainingReport(
            config=config.to_dict(),
            data=DataSummary.of(prepared.candles, dataset, prepared.auxiliary),
            features=FeatureSummary(
                n_candidates=prepared.features.shape[1],
                selected=list(dataset.transform.feature_names),
                selection_scores={
                    k: float(v) for k, v in dataset.feature_scores.head(len(dataset.transform.feature_names)).items()
                },
            ),
            model=ModelSummary(
                model_type=spec.model_type,
                variant=spec.variant,
                params=model.get_params(),
                best_epoch=getattr(model, "best_epoch_", None),
            ),
            history=history,
            metrics=metrics,
            seed=config.fit.seed,
            environment=environment(device),
            validation=assessment.validation,
            gate=gate.to_dict() if gate else None,
            skill_warnings=assessment.warnings,
            **assessment.report_fields,
        )

        on_event("stage", {"name": "plots"})
        plots_dir = Path(scratch) / PLOTS_DIR
        plots_dir.mkdir()
        summary = {
            "title": f"{symbol} {spec.model_type} ({spec.variant})",
            "config": {
                "model_type": spec.model_type,
                "variant": spec.variant,
                "epochs run": len(history),
                "best epoch": report.model.best_epoch,
                "fit seconds": round(timings["fit_s"], 1),
                "data span": " .. ".join(s[:10] for s in report.data.span),
                "features": f"{len(dataset.transform.feature_names)} of {prepared.features.shape[1]}",
            },
            "metrics": metrics[spec.model_type],
            "history": history,
        }
        importance = feature_importance(model, dataset, config.fit.seed)
        report.importance = {str(name): float(value) for name, value in importance.items()}
        if spec.learning_curve:
            on_event("stage", {"name": "fit", "label": "learning curve"})
            report.learning_curve = learning_curve(
                lambda: create_model(spec.model_type, dataset.input_shape, dataset.horizons, spec.variant, dataset.transform.target.task, **spec.overrides),
                model, dataset, FitSettings.from_spec(config.fit),
                lambda train, val: fitting_parts(config, spec.model_type, train, val),
            )
        if config.output.plots:
            report.plots = write_model_plots(plots_dir, model, history, dataset, metrics, test_prediction, summary, importance, report.learning_curve)
        timings["total_s"] = time.perf_counter() - started
        report.timings = timings

        on_event("stage", {"name": "save"})

        def populate(directory: Path) -> None:
            model.save(directory / MODEL_DIR)
            if gate:
                gate.save(directory / GATE_FILE)
            dataset.transform.save(directory / TRANSFORM_FILE)
            atomic_write_json(directory / FEATURES_FILE, feature_spec(prepared, config))
            shutil.copytree(plots_dir, directory / PLOTS_DIR)
            atomic_write_json(directory / REPORT_FILE, report.to_dict())
            if assessment.reference is not None:
                atomic_write_json(directory / MONITOR_FILE, assessment.reference)
            write_predictions(assessment.predictions, directory / PREDICTIONS_FILE)

        version = registry.create_version(
            symbol,
            spec.model_type,
            populate,
            metadata={
                "kind": "model",
                "architecture": spec.model_type,
                "variant": spec.variant,
                "training_params": config.to_dict(),
                "metrics": metrics,
                "validation_metrics": assessment.validation,
                "target": dataset.transform.target.kind,
                "fit_seconds": timings["fit_s"],
                "data_hash": report.data.sha256,
                "data_span": report.data.span,
                "mlflow_run_id": tracker.run_id,
            },
        )
        report.registry = RegistryEntry(path=str(version.path), version=version.version)
        tracker.log_metrics({
            "test": metrics,
            "validation": assessment.validation,
            "gate": {"drift_weight": list(gate.drift_weight), "model_weight": list(gate.model_weight)} if gate else {},
            "backtest": _flat_backtest(report.backtest),
            "fit_seconds": timings["fit_s"],
        })
        tracker.log_artifacts(version.path)
        tracker.set_tags({"registry_version": f"{symbol}/{spec.model_type}/{version.version}"})
    shutil.rmtree(checkpoints, ignore_errors=True)  # the fit is stored; nothing left to resume
    return TrainingResult(
        version=version,
        model=assessment.served,
        dataset=dataset,
        report=report,
        test_prediction=test_prediction,
        importance=importance,
    )


def stored_result(version: ModelVersion, config: TrainingConfig, prepared: PreparedData) -> TrainingResult:
    """The TrainingResult of a version `train_model` stored (e.g. in another process) for this
    config and data: the model reloaded from its files (behind its gate), its report (with the
    importance it plotted), and its test forecasts recomputed on `prepared`, as the run had them."""
    raw = load_model(version.path / MODEL_DIR)
    gate_path = version.path / GATE_FILE
    served = GatedModel(raw, SkillGate.load(gate_path)) if gate_path.is_file() else raw
    dataset = dataset_for(prepared, config, config.model.model_type)
    report = TrainingReport.from_dict(json.loads((version.path / REPORT_FILE).read_text()))
    return TrainingResult(
        version=version,
        model=served,
        dataset=dataset,
        report=report,
        test_prediction=served.predict(dataset.test.X),
        importance=pd.Series(report.importance, name="importance"),
    )


def checkpoint_dir(config: TrainingConfig, candles: Candles) -> Path:
    """Where a run's fit keeps its checkpoint: one folder per configuration and data, so
    `--resume` finds the interrupted run of the same settings on the same candles."""
    settings = {k: v for k, v in config.to_dict().items() if k != "resume"}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode() + data_fingerprint(candles.frame).encode())
    return config.output.output_dir / "checkpoints" / f"{config.data.symbol}-{config.model.model_type}-{key.hexdigest()[:12]}"


def resume_messages(directory: Path, resume: bool) -> list[str]:
    """What the user should know before the fit: a leftover checkpoint is replaced unless resumed;
    a resume without one starts from the beginning. Without --resume the leftover is removed."""
    found = directory.is_dir() and any(directory.rglob("*.safetensors"))
    if resume and not found:
        return [f"--resume: no checkpoint of this configuration at {directory}; training from the start"]
    if found and not resume:
        shutil.rmtree(directory)
        return [f"removed the checkpoint of an interrupted run of this configuration at {directory}; --resume continues such a run"]
    return [f"resuming the interrupted fit from {directory}"] if resume else []


def fit_model(
    config: TrainingConfig,
    dataset: Dataset,
    checkpoint_dir: Path | None,
    on_epoch: Callable[[dict], None],
    on_event: EventHandler,
    train: Split | None = None,
) -> ForecastModel | SeedAverage:
    """The configured model fitted on the training part (`train`, default the dataset's; early
    stopping on its held-out tail, see `fitting_parts`): one fit, or a seed ensemble of
    `config.model.seeds` fits with seeds seed, seed + 1, ... A `checkpoint_dir` receives each
    fit's checkpoint (one folder per seed)."""
    spec = config.model
    fit_on, stop_on = fitting_parts(config, spec.model_type, dataset.train if train is None else train, dataset.val)
    settings = FitSettings.from_spec(config.fit, checkpoint_dir=checkpoint_dir)

    def build() -> ForecastModel:
        return create_model(spec.model_type, dataset.input_shape, dataset.horizons, spec.variant, dataset.transform.target.task, **spec.overrides)

    if spec.seeds == 1:
        model = build()
        model.fit(fit_on, stop_on, settings, on_epoch=on_epoch)
        return model

    def fit_one(member: ForecastModel, seed: int) -> None:
        on_event("stage", {"name": "fit", "label": f"fit (seed {seed})"})
        seed_settings = replace(settings, seed=seed, checkpoint_dir=checkpoint_dir and checkpoint_dir / member_dir(seed))
        member.fit(fit_on, stop_on, seed_settings, on_epoch=on_epoch)

    return SeedAverage.fit(build, [config.fit.seed + i for i in range(spec.seeds)], fit_one)


def training_data(prepared: PreparedData, config: TrainingConfig) -> tuple[Dataset, Split]:
    """The config's model type's dataset, and what it fits on: the shared training windows, or
    for fixed-input types (the baselines) their own training part (the target only)."""
    dataset = dataset_for(prepared, config, config.model.model_type)
    return dataset, prepared.training_windows if dataset is prepared.dataset else dataset.train


def assemble(config: TrainingConfig, members: tuple[Member, ...]) -> SeedAverage:
    """The seed ensemble of saved members, which must be the config's seeds in order."""
    expected = [config.fit.seed + i for i in range(config.model.seeds)]
    if [member.seed for member in members] != expected:
        raise ValueError(f"fitted members have seeds {[member.seed for member in members]}, the config asks for {expected}")
    return SeedAverage([load_model(member.path) for member in members], expected)


def feature_spec(prepared: PreparedData, config: TrainingConfig) -> dict:
    """What inference needs to rebuild the same feature matrix (the version's features.json)."""
    return {
        "bar_duration": str(prepared.candles.bar_duration),
        "funding_path": None if config.data.funding_path is None else str(config.data.funding_path),
        "n_candidates": prepared.features.shape[1],
        "selected": list(prepared.dataset.transform.feature_names),
    }


def _flat_backtest(result: dict) -> dict:
    return {k: v for k, v in result.items() if isinstance(v, (int, float))} | {
        f"buy_and_hold_{k}": v for k, v in result.get("buy_and_hold", {}).items() if isinstance(v, (int, float))
    }
