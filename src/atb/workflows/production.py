"""`atb train production`: per symbol, base models -> regime-aware ensemble ->
uncertainty -> evaluation -> plots -> registry versions -> MLflow.

The ensemble is fitted on validation-part predictions only; the test part is
used once, for the report. The served combination is the stacking
meta-learner (chosen before seeing any test result); fixed, regime and online
weights are evaluated beside it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from atb.config import ConfigError, TrainingConfig
from atb.dataset import Dataset
from atb.ensemble.fit import SERVED_METHOD, fit_ensemble
from atb.evaluation.comparison import pairwise_dm
from atb.evaluation.diagnostics import write_ensemble_plots
from atb.evaluation.plots import plot_tuning
from atb.evaluation.predictions import prediction_frame, write_predictions
from atb.evaluation.protocol import backtest, score, skill_warnings
from atb.evaluation.report import ProductionReport
from atb.evaluation.skill import fit_skill_gate
from atb.io import atomic_write_json
from atb.layout import ENSEMBLE_FILE, PLOTS_DIR, PREDICTIONS_FILE, REPORT_FILE
from atb.models.factory import tunable_models
from atb.models.seeds import member_dir
from atb.models.trainer import FitSettings
from atb.processes import scratch_directory
from atb.registry import ModelRegistry, ModelVersion
from atb.workflows.backends import Outcome, RayResources, ray_session, run_local, run_ray, task_threads
from atb.workflows.preflight import check_run, check_writable
from atb.workflows.steps import EventHandler, PreparedData, ignore_events, prepare_data, symbol_tracker
from atb.workflows.train_model import Member, TrainingResult, checkpoint_dir, fit_model, stored_result, train_model, training_data
from atb.workflows.walk_forward import run_walk_forward

if TYPE_CHECKING:
    from atb.workflows.tuning import TuningResult

logger = logging.getLogger(__name__)

ENSEMBLE_TYPE = "ensemble"
MEMBERS_DIR = "members"  # under the output folder: seeds fitted by Ray tasks, until their base is stored


@dataclass
class SymbolResult:
    """What the production run of one symbol produced (or why it failed)."""

    symbol: str
    output_dir: Path | None = None
    ensemble_version: ModelVersion | None = None
    metrics: dict | None = None  # test part
    validation: dict | None = None  # validation part
    error: str | None = None


def symbol_name(crypto: str) -> str:
    """BTC -> BTCUSDT; BTCUSDT stays."""
    crypto = crypto.strip().upper().replace("/", "").replace("-", "")
    return crypto if crypto.endswith(("USDT", "USDC", "USD", "BUSD", "EUR")) else f"{crypto}USDT"


def train_production(
    config: TrainingConfig,
    symbols: list[str],
    data_paths: dict[str, Path] | None = None,
    on_event: EventHandler = ignore_events,
) -> list[SymbolResult]:
    """Run the production pipeline for each symbol; a failing symbol (or base model) is reported,
    the others go on. Every symbol's names, folders and settings are checked before the first is
    trained. With `backend` "ray", every (symbol, base model) is a Ray task; the ensembles are
    fitted here once their bases are in the registry."""
    configs = [config.replace(symbol=symbol, data_path=(data_paths or {}).get(symbol, config.data.data_path)) for symbol in symbols]
    for cfg in configs:
        check_run(cfg, cfg.production.base_models, command="atb train production")
        if cfg.tuning.tune:
            check_tuning(cfg)
        if cfg.production.ensemble:
            check_writable(cfg.output.registry_dir / cfg.data.symbol / ENSEMBLE_TYPE, "registry (--registry)")
    if config.compute.backend == "ray":
        return _train_on_ray(configs, on_event)
    results = []
    for cfg in configs:
        on_event("stage", {"name": "symbol", "label": cfg.data.symbol})

        def run_symbol(cfg: TrainingConfig = cfg) -> SymbolResult:
            prepared = prepare_data(cfg, on_event=on_event)
            jobs = base_jobs(cfg)
            return finish_symbol(cfg, prepared, jobs, run_local(fit_base, jobs, prepared=prepared, on_event=on_event), on_event)

        results.append(_guarded(cfg.data.symbol, run_symbol, on_event))
    return results


@dataclass(frozen=True)
class BaseJob:
    """One base model of one symbol, as a worker trains it: the symbol's config for that base, and
    its seeds when member tasks fitted them (else the job fits them)."""

    config: TrainingConfig
    members: tuple[Member, ...] = ()


@dataclass(frozen=True)
class MemberJob:
    """One seed of one base model, fitted by a Ray task and saved in `folder` for its base's task."""

    config: TrainingConfig  # the base model's
    seed: int
    folder: Path


def base_jobs(config: TrainingConfig, ray: bool = False) -> list[BaseJob]:
    """A job per base model of the symbol's `config` (under Ray, fitting on the task's CPU threads)."""
    production = config.production
    threads = task_threads(config) if ray else config.fit.threads
    return [BaseJob(config.replace(model_type=name, seeds=production.base_seeds, threads=threads)) for name in production.base_models]


def fit_base(job: BaseJob, prepared: PreparedData | None = None, on_event: EventHandler = ignore_events) -> dict:
    """Tune (with --tune) and train one base model into the registry, from `prepared` data or
    from the job's own source; JSON-ready: its version and, when tuned, the study."""
    config, name = job.config, job.config.model.model_type
    prepared = prepared or prepare_data(config)
    study = None
    if config.tuning.tune and name in tuned_models(config):
        config, tuning = tuned_config(config, prepared.dataset, on_event)
        study = {"overrides": config.model.overrides, "learning_rate": config.fit.learning_rate, **tuning.to_dict()}
    on_event("stage", {"name": "fit", "label": f"{config.data.symbol}: {name}"})
    return {"version": train_model(config, on_event=on_event, prepared=prepared, members=job.members).version.ref, "tuning": study}


def fit_member(job: MemberJob) -> Member:
    """Fit one seed of a base model as its seed ensemble would (same seed, same checkpoint folder) and save it."""
    config = job.config
    prepared = prepare_data(config)
    dataset, train = training_data(prepared, config)
    checkpoints = checkpoint_dir(config, prepared.candles) / member_dir(job.seed)
    tic = time.perf_counter()
    model = fit_model(config.replace(seed=job.seed, seeds=1), dataset, checkpoints, lambda row: None, ignore_events, train=train)
    fit_s = time.perf_counter() - tic
    job.folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{job.folder.name}.", dir=job.folder.parent))
    model.save(partial)
    shutil.rmtree(job.folder, ignore_errors=True)  # left by an attempt whose worker died after saving
    os.replace(partial, job.folder)
    return Member(job.seed, job.folder, fit_s)


def _train_on_ray(configs: list[TrainingConfig], on_event: EventHandler) -> list[SymbolResult]:
    """Every (symbol, base model, seed) as a Ray task, then every (symbol, base model) assembling
    its seeds, evaluating and storing it (one task per base fits and stores it when it is tuned
    first, or has one seed), then each symbol's ensemble here. Paths are made absolute: a worker
    may start elsewhere."""
    configs = [cfg.with_absolute_paths() for cfg in configs]
    jobs = [base_jobs(cfg, ray=True) for cfg in configs]
    flat = [job for symbol_jobs in jobs for job in symbol_jobs]
    resources = RayResources.of(configs[0])
    members_root = configs[0].output.output_dir / MEMBERS_DIR / uuid.uuid4().hex[:8]

    def report(job: BaseJob, outcome: Outcome, what: str) -> None:
        state = f"failed: {outcome.error}" if outcome.error else what
        on_event("message", {"text": f"{job.config.data.symbol} {job.config.model.model_type} {state}"})

    try:
        with ray_session(resources):
            prior: list[Outcome | None] = [None] * len(flat)
            if configs[0].production.base_seeds > 1 and not configs[0].tuning.tune:
                flat, prior = _fit_members(flat, members_root, resources, report, on_event)
            waiting = [index for index, outcome in enumerate(prior) if outcome is None]
            on_event("stage", {"name": "fit", "label": f"{len(waiting)} base models on Ray"})
            outcomes = run_ray(fit_base, [flat[i] for i in waiting], resources,
                               on_done=lambda k, o: report(flat[waiting[k]], o, f"stored {o.value['version']}" if not o.error else ""))
            for index, outcome in zip(waiting, outcomes):
                prior[index] = outcome
    finally:
        shutil.rmtree(members_root, ignore_errors=True)
        with contextlib.suppress(OSError):
            members_root.parent.rmdir()  # unless another run's seeds are there
    done = iter(prior)
    results = []
    for cfg, symbol_jobs in zip(configs, jobs):
        symbol_outcomes = [next(done) for _ in symbol_jobs]
        on_event("stage", {"name": "symbol", "label": cfg.data.symbol})
        results.append(_guarded(
            cfg.data.symbol,
            lambda cfg=cfg, symbol_jobs=symbol_jobs, symbol_outcomes=symbol_outcomes: finish_symbol(
                cfg, prepare_data(cfg, on_event=on_event), symbol_jobs, symbol_outcomes, on_event
            ),
            on_event,
        ))
    return results


def _fit_members(
    jobs: list[BaseJob], root: Path, resources: RayResources, report: Callable[[BaseJob, Outcome, str], None], on_event: EventHandler
) -> tuple[list[BaseJob], list[Outcome | None]]:
    """Each base job's seeds as Ray tasks: the jobs with their fitted members, and for a job whose
    member failed, that failure (the job is not run)."""
    member_jobs = [
        (index, MemberJob(job.config, seed, root / f"{job.config.data.symbol}-{job.config.model.model_type}" / member_dir(seed)))
        for index, job in enumerate(jobs)
        for seed in range(job.config.fit.seed, job.config.fit.seed + job.config.model.seeds)
    ]
    on_event("stage", {"name": "fit", "label": f"{len(member_jobs)} seeds of {len(jobs)} base models on Ray"})
    outcomes = run_ray(fit_member, [member for _, member in member_jobs], resources,
                       on_done=lambda k, o: report(jobs[member_jobs[k][0]], o, f"seed {member_jobs[k][1].seed} fitted"))
    members: dict[int, list[Member]] = {index: [] for index in range(len(jobs))}
    failed: list[Outcome | None] = [None] * len(jobs)
    for (index, member), outcome in zip(member_jobs, outcomes):
        if outcome.error:
            failed[index] = failed[index] or Outcome(error=f"seed {member.seed}: {outcome.error}")
        else:
            members[index].append(outcome.value)
    return [replace(job, members=tuple(members[index])) for index, job in enumerate(jobs)], failed


def _guarded(symbol: str, run: Callable[[], SymbolResult], on_event: EventHandler) -> SymbolResult:
    try:
        return run()
    except Exception as exc:  # one symbol's failure must not stop the others
        logger.debug("production run for %s failed:\n%s", symbol, traceback.format_exc())
        on_event("message", {"text": f"{symbol} failed: {type(exc).__name__}: {exc}"})
        return SymbolResult(symbol, error=f"{type(exc).__name__}: {exc}")


def finish_symbol(
    config: TrainingConfig, prepared: PreparedData, jobs: list[BaseJob], outcomes: list[Outcome], on_event: EventHandler
) -> SymbolResult:
    """With every base model of the symbol stored: walk-forward (if asked), the ensemble, the
    report, the plots and the ensemble's registry version."""
    failed = [f"{job.config.model.model_type}: {outcome.error}" for job, outcome in zip(jobs, outcomes) if outcome.error]
    if failed:
        raise RuntimeError(f"base model(s) failed, no ensemble: {'; '.join(failed)}")
    started = time.perf_counter()
    symbol, production = config.data.symbol, config.production
    dataset = prepared.dataset
    out_dir = config.output.output_dir / f"{symbol}_{time.strftime('%Y%m%d-%H%M%S')}"
    report = ProductionReport(config=config.to_dict())

    if production.walk_forward:
        on_event("stage", {"name": "walk_forward", "label": f"{symbol}: walk-forward"})
        report.walk_forward = run_walk_forward(config, prepared, production.base_models)

    registry = ModelRegistry(config.output.registry_dir)
    bases: dict[str, TrainingResult] = {}
    for job, outcome in zip(jobs, outcomes):
        name = job.config.model.model_type
        bases[name] = stored_result(registry.get_ref(outcome.value["version"]), job.config, prepared)
        report.bases[name] = {"version": bases[name].version.ref, "path": str(bases[name].version.path)}
        report.timings[f"{name}_fit_s"] = bases[name].report.timings["fit_s"]
        if outcome.value["tuning"]:
            out_dir.mkdir(parents=True, exist_ok=True)
            plot = plot_tuning(outcome.value["tuning"], out_dir / f"tuning_{name}.png").name if config.output.plots else None
            report.tuning = {**(report.tuning or {}), name: {**outcome.value["tuning"], "plot": plot}}

    if not production.ensemble:
        report.timings["total_s"] = time.perf_counter() - started + sum(b.report.timings["total_s"] for b in bases.values())
        _write_output(out_dir, report, None)
        return SymbolResult(symbol, out_dir)

    on_event("stage", {"name": "ensemble", "label": f"{symbol}: ensemble"})
    models = {name: base.model for name, base in bases.items()}
    fitted = fit_ensemble(
        dataset,
        prepared.candles.frame["close"],
        models,
        val_preds={name: base.model.predict(base.dataset.val.X) for name, base in bases.items()},
        test_preds={name: base.test_prediction for name, base in bases.items()},
        test_windows={name: base.dataset.test.X for name, base in bases.items()},
        spec=production,
        seed=config.fit.seed,
        fit_gate=fit_skill_gate if config.model.skill_gate else None,
    )
    base_refs = {name: base.version.ref for name, base in bases.items()}
    fitted.spec.bases = base_refs
    metrics = score(fitted.test_predictions, dataset.test, dataset)
    report.metrics = metrics
    report.model_vs_model = model_vs_model(fitted.test_predictions, dataset)
    report.validation = score(fitted.validation_predictions, dataset.val, dataset)
    report.skill_warnings = skill_warnings(report.validation, list(fitted.validation_predictions))
    report.regimes = fitted.regime_shares
    report.uncertainty = fitted.uncertainty
    report.backtest = backtest(dataset.test, dataset, fitted.served_prediction)
    report.stacking = fitted.stacking_coefficients

    with scratch_directory("production") as scratch:
        plots_dir = Path(scratch) / PLOTS_DIR
        plots_dir.mkdir()
        if config.output.plots:
            report.plots = write_ensemble_plots(
                plots_dir,
                dataset,
                models,
                histories={name: base.report.history for name, base in bases.items()},
                importances={name: base.importance for name, base in bases.items()},
                fitted=fitted,
                metrics=metrics,
                summary={
                    "title": f"{symbol} production ensemble (stacking)",
                    "config": {"bases": ", ".join(bases), "epochs": config.fit.epochs, "mc_samples": production.mc_samples},
                },
            )
        report.timings["total_s"] = time.perf_counter() - started + sum(b.report.timings["total_s"] for b in bases.values())

        parts = {"validation": fitted.validation_predictions, "test": fitted.test_predictions}
        predictions = prediction_frame(
            dataset,
            {part: values[SERVED_METHOD] for part, values in parts.items()},
            {part: values.get(f"{SERVED_METHOD}_raw", values[SERVED_METHOD]) for part, values in parts.items()},
        )

        def populate(directory: Path) -> None:
            fitted.spec.save(directory / ENSEMBLE_FILE)
            write_predictions(predictions, directory / PREDICTIONS_FILE)
            shutil.copytree(plots_dir, directory / PLOTS_DIR)
            atomic_write_json(directory / REPORT_FILE, report.to_dict())

        version = ModelRegistry(config.output.registry_dir).create_version(
            symbol,
            ENSEMBLE_TYPE,
            populate,
            metadata={
                "kind": "ensemble",
                "architecture": ENSEMBLE_TYPE,
                "method": "stacking",
                "bases": base_refs,
                "training_params": config.to_dict(),
                "metrics": {SERVED_METHOD: metrics[SERVED_METHOD]},
            },
        )
        report.ensemble_version = version.ref
        _write_output(out_dir, report, plots_dir)
        _log_to_mlflow(config, report, out_dir)
    return SymbolResult(symbol, out_dir, version, metrics, report.validation)


def model_vs_model(predictions: dict[str, np.ndarray], dataset: Dataset) -> dict[int, dict]:
    """One-sided DM p-values between every pair of forecasters (bases and ensembles) on the test part, per horizon."""
    test = dataset.test
    errors = {name: dataset.transform.target.to_prices(pred, test.origin_close) - test.future_close for name, pred in predictions.items()}
    return {
        h: {a: row.to_dict() for a, row in pairwise_dm({name: e[:, j] for name, e in errors.items()}, h).iterrows()}
        for j, h in enumerate(dataset.horizons)
    }


def tuned_models(config: TrainingConfig) -> tuple[str, ...]:
    """The base models `--tune` tunes: those named by `tune_models`, else every base model."""
    return config.tuning.tune_models or config.production.base_models


def check_tuning(config: TrainingConfig) -> None:
    """Tuning settings, and that every model to tune is a tunable base model, before any work."""
    from atb.workflows.tuning import search_of  # Optuna loads only for --tune
    search_of(config.tuning)
    bases = config.production.base_models
    strangers = [name for name in tuned_models(config) if name not in bases]
    if strangers:
        raise ConfigError(f"tune_models: {strangers} are not base models of this run {list(bases)}; tune a base model or add it with --base-models")
    untunable = [name for name in tuned_models(config) if name not in tunable_models()]
    if untunable:
        raise ConfigError(f"tune_models: {untunable} have no search space; tunable types: {tunable_models()}")


def tuned_config(config: TrainingConfig, dataset: Dataset, on_event: EventHandler) -> tuple[TrainingConfig, TuningResult]:
    """The config with the best overrides an Optuna study found without the test part, and the study's result."""
    from atb.workflows.tuning import search_of, tune_model
    symbol, model_type, tuning = config.data.symbol, config.model.model_type, config.tuning
    on_event("stage", {"name": "tune", "label": f"{symbol}: tuning {model_type}"})
    result = tune_model(
        model_type,
        dataset,
        FitSettings.from_spec(config.fit),
        n_trials=tuning.tune_trials,
        timeout=tuning.tune_timeout,
        storage=tuning.tune_storage,
        study_name=f"atb-{symbol}-{model_type}",
        seed=config.fit.seed,
        variant=config.model.variant,
        search=search_of(tuning),
        directory=config.output.output_dir.resolve(),
        heartbeat=tuning.tune_heartbeat,
        worker=tuning.tune_worker,
    )
    tuned = config.replace(overrides={**config.model.overrides, **result.best_params}, **result.best_fit_settings)
    return tuned, result


def _write_output(out_dir: Path, report: ProductionReport, plots_dir: Path | None) -> None:
    """training_output/{SYMBOL}_{timestamp}/: the report and the plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots_dir is not None:
        for png in plots_dir.glob("*.png"):
            shutil.copy2(png, out_dir / png.name)
    atomic_write_json(out_dir / REPORT_FILE, report.to_dict())


def _log_to_mlflow(config: TrainingConfig, report: ProductionReport, out_dir: Path) -> None:
    with symbol_tracker(config, f"{config.data.symbol}-production-{out_dir.name}") as tracker:
        tracker.log_params(config.to_dict())
        tracker.log_metrics({"test": report.metrics, "validation": report.validation, "uncertainty": report.uncertainty,
                             "tuning": {name: study["best_scores"] for name, study in (report.tuning or {}).items()}})
        tracker.log_artifacts(out_dir)
        tracker.set_tags({"kind": "production", "ensemble_version": report.ensemble_version or ""})
