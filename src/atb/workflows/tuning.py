"""Hyperparameter search with Optuna: one or several objectives, constraints, six samplers,
optionally on purged walk-forward folds; never on the test part.

A study lives in an SQLAlchemy storage (by default the SQLite file
`<directory>/optuna.db`), so several workers can share it and a later call
with the same study name continues it. Each trial builds a model from sampled
overrides, fits it and scores it (`atb.evaluation.objectives`):

- without `cv_folds`: fitted on the training part, early-stopped and scored on
  the validation part;
- with `cv_folds = K`: the training and validation origins form K expanding
  walk-forward folds, each purged and embargoed by the longest horizon; every
  fold fits on its training block, early-stops on its validation block and is
  scored on its own last block; the trial's value is the mean over folds.

Either way the test part is never handed to a trial. Objectives: `val_loss`
(default), `rmse_ratio`, `direction_accuracy`, `sharpe`, `max_drawdown`,
`win_rate`; several at once make a multi-objective study whose Pareto front is
reported, and the trial trained afterwards is the front's best on the first
objective. Constraints (`max_drawdown`, `min_win_rate` on the same backtest)
are given to samplers that take them (TPE, GP, NSGA-II/III) and, for every
sampler, keep infeasible trials out of the choice.

Pruning, where the objective allows it: a single `val_loss` objective without
folds is reported after every epoch (neural types), a single objective with
folds after every fold; trials worse than the median of earlier trials at the
same step stop early. Multi-objective studies are not pruned (Optuna cannot).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from atb.config import ConfigError, TrainingConfig, TuningSpec
from atb.dataset import Dataset, Split
from atb.evaluation import objectives
from atb.evaluation.objectives import Constraints
from atb.evaluation.plots import plot_tuning
from atb.folds import walk_forward_folds
from atb.io import atomic_write_json
from atb.models import create_model, model_class
from atb.models.factory import MODEL_CLASSES, tunable_models
from atb.models.trainer import FitSettings
from atb.workflows.backends import Outcome, RayResources, run_ray, task_threads
from atb.workflows.preflight import check_run
from atb.workflows.steps import EventHandler, PreparedData, dataset_for, ignore_events, prepare_data

logger = logging.getLogger(__name__)

DEFAULT_STORAGE_FILE = "optuna.db"
SQLITE_TIMEOUT_S = 60  # seconds a worker waits for another worker's write lock on SQLite
WORKER_SEED_STRIDE = 10_000  # sampler seed offset per worker sharing a study
MAX_RETRIES = 2  # times a trial whose worker died is queued again
STORAGE_ATTEMPTS = 5  # tries to open a storage whose tables another worker is creating
PRUNER_STARTUP_TRIALS = 5  # complete trials before any pruning
PRUNER_WARMUP_EPOCHS = 2  # epochs below this are never pruned (epochs count from 1)
SAMPLERS = ("tpe", "random", "grid", "cmaes", "gp", "nsga2", "nsga3")
GRID_POINTS = 3  # values per numeric hyperparameter in the grid sampler's grid


@dataclass(frozen=True)
class Search:
    """How a study searches: what it optimises, with which sampler, on which origins."""

    objectives: tuple[str, ...] = ("val_loss",)
    sampler: str = "tpe"
    cv_folds: int = 0  # 0: the validation part; K >= 2: K purged walk-forward folds of training + validation
    constraints: Constraints = field(default_factory=Constraints)

    def __post_init__(self) -> None:
        object.__setattr__(self, "objectives", tuple(self.objectives))
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler {self.sampler!r} is not one of {list(SAMPLERS)}")
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise ValueError(f"cv_folds: {self.cv_folds} must be 0 (the validation part) or >= 2")
        if self.sampler == "cmaes" and len(self.objectives) > 1:
            raise ValueError(f"the cmaes sampler optimises one objective, not {list(self.objectives)}; use nsga2, nsga3, tpe or gp")

    @property
    def directions(self) -> list[str]:
        return [objectives.DIRECTIONS[name] for name in self.objectives]

    @property
    def scored(self) -> tuple[str, ...]:
        """The objectives and whatever the constraints need."""
        return tuple(dict.fromkeys(self.objectives + self.constraints.names))


def search_of(tuning: TuningSpec) -> Search:
    """The Search a config's tuning section asks for; a bad setting is a ConfigError naming it."""
    try:
        search = Search(
            objectives=tuning.tune_objectives,
            sampler=tuning.tune_sampler,
            cv_folds=tuning.tune_cv,
            constraints=Constraints(max_drawdown=tuning.tune_max_drawdown, min_win_rate=tuning.tune_min_win_rate),
        )
        objectives.check_objectives(search.scored, (1,))
    except ValueError as exc:
        raise ConfigError(f"tuning: {exc}") from None
    return search


# ------------------------------------------------------------------ search spaces
def search_space(trial: optuna.Trial, model_type: str) -> dict[str, Any]:
    """Model overrides sampled for one trial from the space the model type declares,
    ready for `create_model(model_type, ..., **overrides)`."""
    return _space_of(model_type)(trial)


def fit_space(trial: optuna.Trial, model_type: str) -> dict[str, Any]:
    """FitSettings changes sampled for one trial: the (peak) learning rate of neural
    models; nothing for LightGBM, whose learning rate is a model override."""
    _space_of(model_type)
    if not model_class(model_type).is_neural:
        return {}
    return {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)}


def search_grid(model_type: str) -> dict[str, list]:
    """The grid sampler's grid: every choice of a categorical hyperparameter and
    `GRID_POINTS` values spread over a numeric one's range (geometrically where it is log-scaled)."""
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    search_space(probe, model_type)
    fit_space(probe, model_type)
    return {name: _grid_values(distribution) for name, distribution in probe.distributions.items()}


def _grid_values(distribution: optuna.distributions.BaseDistribution) -> list:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return list(distribution.choices)
    low, high, log = distribution.low, distribution.high, distribution.log
    points = np.geomspace(low, high, GRID_POINTS) if log else np.linspace(low, high, GRID_POINTS)
    step = getattr(distribution, "step", None)
    if step:
        points = low + np.round((points - low) / step) * step
    if isinstance(distribution, optuna.distributions.IntDistribution):
        return sorted({int(round(p)) for p in points})
    return sorted({float(p) for p in points})


def _space_of(model_type: str) -> Callable[[optuna.Trial], dict[str, Any]]:
    space = MODEL_CLASSES[model_type].search_space if model_type in MODEL_CLASSES else None
    if space is None:
        raise ValueError(f"model type {model_type!r} has no search space; tunable types: {tunable_models()}")
    return space


# ------------------------------------------------------------------------ result
@dataclass(frozen=True)
class TuningResult:
    """Outcome of a study. `best_params` are create_model overrides (layer sizes as
    tuples); `best_fit_settings` are FitSettings changes (e.g. learning_rate), both of
    the chosen trial: the best feasible one (multi-objective: the Pareto front's best on
    the first objective). `best_value` is its first objective; `best_scores` every
    score it got. `pareto` lists the feasible front, `trials` every trial (for plots),
    `importances` each hyperparameter's importance for the first objective (Optuna's
    fANOVA; empty below two complete trials). The storage URL is shown without its
    password. Counts cover the whole study, earlier runs and other workers included."""

    model_type: str
    study_name: str
    storage: str
    best_params: dict[str, Any]
    best_fit_settings: dict[str, Any]
    best_value: float
    n_trials: int
    n_complete: int
    n_pruned: int
    n_failed: int
    objectives: tuple[str, ...] = ("val_loss",)
    directions: tuple[str, ...] = ("minimize",)
    sampler: str = "tpe"
    cv_folds: int = 0
    constraints: str = "none"
    best_trial: int = 0
    best_scores: dict[str, float] = field(default_factory=dict)
    n_infeasible: int = 0
    pareto: list[dict[str, Any]] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    importances: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (tuples become lists)."""
        return {**asdict(self), "best_params": _jsonable(self.best_params)}

    @classmethod
    def from_study(cls, study: optuna.Study, model_type: str, storage: str, search: Search | None = None) -> TuningResult:
        search = search or Search()
        states = [trial.state for trial in study.trials]
        complete = [trial for trial in study.trials if trial.state == TrialState.COMPLETE]
        feasible = [trial for trial in complete if _feasible(trial)]
        if not feasible:
            raise RuntimeError(
                f"study {study.study_name!r} has no complete trial within the constraints ({search.constraints.describe()}): "
                f"{len(complete)} complete, {len(complete) - len(feasible)} of them infeasible, "
                f"{states.count(TrialState.PRUNED)} pruned, {states.count(TrialState.FAIL)} failed of {len(states)}; "
                "run more trials, relax the constraints or widen the timeout"
            )
        front = pareto_front(feasible, search.directions)
        sign = 1.0 if search.directions[0] == "minimize" else -1.0
        best = min(front, key=lambda trial: (sign * trial.values[0], trial.number))
        return cls(
            model_type=model_type,
            study_name=study.study_name,
            storage=make_url(storage).render_as_string(hide_password=True),
            best_params={k: tuple(v) if isinstance(v, list) else v for k, v in best.user_attrs["overrides"].items()},
            best_fit_settings=dict(best.user_attrs["fit_settings"]),
            best_value=float(best.values[0]),
            n_trials=len(states),
            n_complete=len(complete),
            n_pruned=states.count(TrialState.PRUNED),
            n_failed=states.count(TrialState.FAIL),
            objectives=search.objectives,
            directions=tuple(search.directions),
            sampler=search.sampler,
            cv_folds=search.cv_folds,
            constraints=search.constraints.describe(),
            best_trial=best.number,
            best_scores=dict(best.user_attrs.get("scores", {})),
            n_infeasible=len(complete) - len(feasible),
            pareto=[{"number": t.number, "values": list(t.values), "params": t.params} for t in sorted(front, key=lambda t: t.number)],
            trials=[_trial_row(trial) for trial in study.trials],
            importances=_importances(study, len(complete)),
        )


def pareto_front(trials: list[FrozenTrial], directions: list[str]) -> list[FrozenTrial]:
    """The trials no other trial dominates (at least as good on every objective, better on one)."""
    signs = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    values = np.array([trial.values for trial in trials], dtype=float) * signs
    dominated = [bool(np.any(np.all(values <= v, axis=1) & np.any(values < v, axis=1))) for v in values]
    return [trial for trial, is_dominated in zip(trials, dominated) if not is_dominated]


# ------------------------------------------------------------------------ tuning
def tune_model(
    model_type: str,
    dataset: Dataset,
    settings: FitSettings,
    n_trials: int = 20,
    timeout: float | None = 3600.0,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int = 42,
    variant: str = "default",
    *,
    search: Search | None = None,
    directory: str | Path = ".",
    pruner: optuna.pruners.BasePruner | None = None,
    enqueue: list[dict[str, Any]] | None = None,
    overrides: dict[str, Any] | None = None,
    heartbeat: float = 60.0,
    worker: int = 0,
    worker_tag: str | None = None,
) -> TuningResult:
    """Run `n_trials` more trials (or until `timeout` seconds) of a study.

    search: objectives, sampler, folds and constraints (default: minimise `val_loss`
    with TPE on the validation part).
    storage: any SQLAlchemy URL; None (or empty) means `sqlite:///<directory>/optuna.db`.
    study_name: default `atb-<model_type>`; an existing study of that name is
    continued (its trials count toward the result), and refused if it tunes
    another model type, variant or objective list.
    seed: the sampler's seed, offset by the number of trials already in the
    study so a resumed study does not repeat its first proposals, and by
    WORKER_SEED_STRIDE x `worker` so workers sharing a study (several processes
    or machines on one PostgreSQL URL) propose different trials. Every trial fits
    with `settings.seed`.
    heartbeat: seconds between a running trial's heartbeats; a trial silent for
    twice that (its worker was killed) is failed by the next worker to start a
    trial, and queued again with the same parameters (up to MAX_RETRIES times).
    worker_tag: names this worker across restarts (`<run>/<worker>`, set by the Ray
    backend); a worker started again under the same tag runs only the trials its
    predecessor did not finish, after failing the trial it died in. Every trial
    records its worker (`worker`: the tag or number) and process (`host`: host:pid).
    pruner: default MedianPruner(5 startup trials, 2 warm-up steps), used only where
    the objective allows pruning (see the module docstring).
    enqueue: trials to run first, as Optuna parameters (e.g. `{"lstm_units":
    "64-32", "learning_rate": 1e-3}`); missing ones are sampled, and a
    set already in the study is not enqueued again.
    overrides: model overrides fixed for every trial (e.g. a smaller
    `n_estimators`); they may not name a searched hyperparameter.
    Trials whose training diverges (FloatingPointError) are recorded as failed.
    """
    search = search or Search()
    _space_of(model_type)
    objectives.check_objectives(search.scored, dataset.horizons)
    fixed = dict(overrides or {})
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    url = storage or f"sqlite:///{Path(directory) / DEFAULT_STORAGE_FILE}"
    if not storage:
        Path(directory).mkdir(parents=True, exist_ok=True)
    name = study_name or f"atb-{model_type}"
    objective = _objective(model_type, variant, dataset, settings, fixed, search, worker_tag or str(worker))
    with _quiet_optuna():
        _check_fixed_overrides(model_type, fixed)
        study = _open_study(url, name, model_type, variant, seed + WORKER_SEED_STRIDE * worker, pruner, search, heartbeat)
        for params in enqueue or []:
            study.enqueue_trial(params, skip_if_exists=True)
        remaining = n_trials - (_trials_run_before(study, worker_tag, heartbeat) if worker_tag else 0)
        if remaining > 0:
            study.optimize(objective, n_trials=remaining, timeout=timeout, catch=(FloatingPointError,), callbacks=[_log_trial])
        result = TuningResult.from_study(study, model_type, url, search)
    logger.info("study %s: best %s %.6g with %s %s (%d trials: %d complete, %d pruned, %d failed, %d infeasible)",
                name, search.objectives[0], result.best_value, result.best_params, result.best_fit_settings,
                result.n_trials, result.n_complete, result.n_pruned, result.n_failed, result.n_infeasible)
    return result


def tune_from_config(config: TrainingConfig, on_event: EventHandler = ignore_events) -> tuple[TuningResult, Path]:
    """`atb tune`: run the configured study for `config.model.model_type` on the configured data
    (here, or with backend "ray" as `tune_workers` Ray tasks sharing the study), and write
    `tuning.json` and `tuning.png` to a new folder under the output folder (returned with the result)."""
    model_type, symbol = config.model.model_type, config.data.symbol
    check_run(config, [model_type], writes_registry=False, command="atb tune")
    search = search_of(config.tuning)
    if config.tuning.tune_workers > 1 and config.compute.backend != "ray":
        raise ConfigError(f"tune_workers: {config.tuning.tune_workers} workers run as Ray tasks; add --backend ray, "
                          "or start one `atb tune --worker K` process per worker on the same --storage")
    if config.compute.backend == "ray":
        result = _tune_on_ray(config, search, on_event)
    else:
        on_event("stage", {"name": "data"})
        prepared = prepare_data(config, on_event=on_event)
        on_event("stage", {"name": "tune", "label": f"{symbol}: tuning {model_type}"})
        result = _tune_prepared(config, prepared, search)
    out_dir = config.output.output_dir / f"tuning_{symbol}_{model_type}_{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "tuning.json", result.to_dict())
    plot_tuning(result.to_dict(), out_dir / "tuning.png")
    return result, out_dir


def _tune_prepared(config: TrainingConfig, prepared: PreparedData, search: Search, worker_tag: str | None = None) -> TuningResult:
    model_type, tuning = config.model.model_type, config.tuning
    return tune_model(
        model_type,
        dataset_for(prepared, config, model_type),
        FitSettings.from_spec(config.fit),
        n_trials=tuning.tune_trials,
        timeout=tuning.tune_timeout,
        storage=tuning.tune_storage,
        study_name=f"atb-{config.data.symbol}-{model_type}",
        seed=config.fit.seed,
        variant=config.model.variant,
        search=search,
        directory=config.output.output_dir.resolve(),
        overrides=dict(config.model.overrides) or None,
        heartbeat=tuning.tune_heartbeat,
        worker=tuning.tune_worker,
        worker_tag=worker_tag,
    )


@dataclass(frozen=True)
class TuningJob:
    """One Ray tuning worker: the run's config (its worker number set), and the run's tag."""

    config: TrainingConfig
    run: str


def tune_worker(job: TuningJob) -> int:
    """A Ray task: prepare the data and run `tune_trials` trials of the shared study; the number of trials in the study after."""
    config = job.config
    result = _tune_prepared(config, prepare_data(config), search_of(config.tuning), f"{job.run}/{config.tuning.tune_worker}")
    return result.n_trials


def _tune_on_ray(config: TrainingConfig, search: Search, on_event: EventHandler) -> TuningResult:
    """`tune_workers` Ray tasks on one study (default storage: the SQLite file in the output folder,
    which only workers on this machine reach; a cluster needs a server URL such as postgresql://...)."""
    config = config.with_absolute_paths()
    tuning = config.tuning
    url = tuning.tune_storage or f"sqlite:///{config.output.output_dir / DEFAULT_STORAGE_FILE}"
    config.output.output_dir.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:8]
    jobs = [
        TuningJob(config.replace(tune_storage=url, tune_worker=tuning.tune_worker + k, threads=task_threads(config)), run)
        for k in range(tuning.tune_workers)
    ]

    def done(index: int, outcome: Outcome) -> None:
        state = f"failed: {outcome.error}" if outcome.error else f"done ({outcome.value} trials in the study)"
        on_event("message", {"text": f"tuning worker {jobs[index].config.tuning.tune_worker} {state}"})

    on_event("stage", {"name": "tune", "label": f"{config.data.symbol}: tuning {config.model.model_type} with {len(jobs)} Ray workers"})
    outcomes = run_ray(tune_worker, jobs, RayResources.of(config), on_done=done)
    if all(outcome.error for outcome in outcomes):
        raise RuntimeError(f"every tuning worker failed: {outcomes[0].error}")
    with _quiet_optuna():
        study = optuna.load_study(study_name=f"atb-{config.data.symbol}-{config.model.model_type}", storage=url)
        return TuningResult.from_study(study, config.model.model_type, url, search)


def default_pruner() -> optuna.pruners.MedianPruner:
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS)


def best_validation_loss(history: list[dict]) -> float:
    """The lowest finite `val_loss` of a fit's history."""
    losses = [row["val_loss"] for row in history if math.isfinite(row["val_loss"])]
    if not losses:
        raise FloatingPointError(f"no finite val_loss in {len(history)} history row(s)")
    return min(losses)


def tuning_blocks(dataset: Dataset, cv_folds: int) -> list[tuple[Split, Split, Split]]:
    """(fit on, early-stop on, score on) per fold: the training and validation parts
    without folds; K purged and embargoed walk-forward folds of both with."""
    if cv_folds == 0:
        return [(dataset.train, dataset.val, dataset.val)]
    joined = Split.concatenate(dataset.train, dataset.val)
    longest = max(dataset.horizons)
    folds = walk_forward_folds(len(joined), n_splits=cv_folds, max_horizon=longest, embargo=longest)
    return [(joined.subset(fold.train), joined.subset(fold.val), joined.subset(fold.test)) for fold in folds]


def _objective(
    model_type: str, variant: str, dataset: Dataset, settings: FitSettings, fixed: dict[str, Any], search: Search, worker: str
) -> Callable[[optuna.Trial], float | list[float]]:
    """The trial function; it holds the training and validation parts only."""
    blocks = tuning_blocks(dataset, search.cv_folds)
    view = replace(dataset, test=None)  # what scoring may read: horizons, target, never the test part
    single = len(search.objectives) == 1
    prune_epochs = single and search.objectives == ("val_loss",) and search.cv_folds == 0

    def objective(trial: optuna.Trial) -> float | list[float]:
        # Optuna's heartbeat thread records its first beat some time after the trial starts, and a
        # trial with no beat is never found stale: beat now, so a worker killed from here on has its trial run again
        trial.storage.record_heartbeat(trial._trial_id)
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("host", f"{socket.gethostname()}:{os.getpid()}")
        model_overrides = {**search_space(trial, model_type), **fixed}
        fit_changes = fit_space(trial, model_type)
        trial.set_user_attr("overrides", _jsonable(model_overrides))
        trial.set_user_attr("fit_settings", fit_changes)
        trial_settings = replace(settings, checkpoint_dir=None, **fit_changes)
        fold_scores = []
        for step, (fit_on, stop_on, score_on) in enumerate(blocks):
            model = create_model(model_type, dataset.input_shape, dataset.horizons, variant=variant, **model_overrides)
            on_epoch = _pruning_callback(trial) if prune_epochs and model.is_neural else None
            history = model.fit(fit_on, stop_on, trial_settings, on_epoch=on_epoch)
            scores = objectives.score(search.scored, model.predict(score_on.X), score_on, view, best_validation_loss(history))
            fold_scores.append(scores)
            if single and search.cv_folds:
                trial.report(float(np.mean([s[search.objectives[0]] for s in fold_scores])), step=step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"{search.objectives[0]} after fold {step + 1}")
        mean = {name: float(np.mean([s[name] for s in fold_scores])) for name in search.scored}
        trial.set_user_attr("scores", mean)
        for constraint, violation in zip(search.constraints.names, search.constraints.violations(mean)):
            trial.set_constraint(constraint, violation)  # the samplers that use constraints read them here
        values = [mean[name] for name in search.objectives]
        return values[0] if single else values

    return objective


def _pruning_callback(trial: optuna.Trial) -> Callable[[dict], None]:
    def report(row: dict) -> None:
        trial.report(row["val_loss"], step=int(row["epoch"]))
        if trial.should_prune():
            raise optuna.TrialPruned(f"val_loss {row['val_loss']:.6g} at epoch {row['epoch']}")

    return report


def make_sampler(search: Search, seed: int, model_type: str) -> optuna.samplers.BaseSampler:
    """Optuna's sampler of that name (TPE, GP and NSGA-II/III steer by the trials' constraints)."""
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == "grid":
        return optuna.samplers.GridSampler(search_grid(model_type), seed=seed)
    if search.sampler == "cmaes":  # categorical hyperparameters fall back to random sampling
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if search.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if search.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.NSGAIIISampler(seed=seed)


def _feasible(trial: FrozenTrial) -> bool:
    return all(value <= 0 for value in trial.constraints.values())


def _open_study(
    url: str, name: str, model_type: str, variant: str, seed: int, pruner: optuna.pruners.BasePruner | None, search: Search,
    heartbeat: float,
) -> optuna.Study:
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if is_sqlite else {}
    storage = _storage(url, engine_kwargs, heartbeat)
    study = optuna.create_study(storage=storage, study_name=name, directions=search.directions, load_if_exists=True)
    for key, value in (("model_type", model_type), ("variant", variant), ("objectives", list(search.objectives))):
        stored = study.user_attrs.get(key)
        if stored is None:
            study.set_user_attr(key, value)
        elif stored != value:
            raise ValueError(f"study {name!r} in {make_url(url).render_as_string(hide_password=True)} tunes "
                             f"{key} {stored!r}, not {value!r}; pass another study_name")
    if len(search.objectives) > 1:
        pruner = optuna.pruners.NopPruner()
    sampler = make_sampler(search, seed + len(study.trials), model_type)
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner or default_pruner())


def _storage(url: str, engine_kwargs: dict, heartbeat: float) -> optuna.storages.RDBStorage:
    """The study storage with heartbeats. Workers started together on an empty database race to
    create Optuna's tables; the losers see the winner's tables after a short wait."""
    attempt = 1
    while True:
        try:
            with warnings.catch_warnings():  # Optuna marks heartbeats experimental; they are what makes a killed worker's trial run again
                warnings.simplefilter("ignore", ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=_heartbeat_interval(heartbeat), grace_period=_grace_period(heartbeat),
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == STORAGE_ATTEMPTS:
                raise
            time.sleep(0.5 * attempt)
            attempt += 1


def _heartbeat_interval(heartbeat: float) -> int:
    return max(1, round(heartbeat))  # Optuna counts whole seconds


def _grace_period(heartbeat: float) -> int:
    """Seconds without a heartbeat after which a running trial is stale: two missed beats."""
    return max(2, round(2 * heartbeat))


def _trials_run_before(study: optuna.Study, worker_tag: str, heartbeat: float) -> int:
    """Trials an earlier run of this worker (same tag) ran to an end. If it died mid-trial, that
    trial is failed once its heartbeat's grace period has passed, and queued again to run first."""
    def own() -> list[FrozenTrial]:
        return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("worker") == worker_tag]

    with warnings.catch_warnings():  # Optuna marks stale-trial handling experimental
        warnings.simplefilter("ignore", ExperimentalWarning)
        if any(t.state == TrialState.RUNNING for t in own()):
            time.sleep(_grace_period(heartbeat) + _heartbeat_interval(heartbeat))
            optuna.storages.fail_stale_trials(study)
        killed = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in study.get_trials(deepcopy=False)}
    return sum(t.state.is_finished() and t.number not in killed for t in own())


def _check_fixed_overrides(model_type: str, fixed: dict[str, Any]) -> None:
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    searched = set(search_space(probe, model_type))
    clash = sorted(searched & set(fixed))
    if clash:
        raise ValueError(f"fixed overrides {clash} are searched for {model_type}; searched: {sorted(searched)}")


def _trial_row(trial: FrozenTrial) -> dict[str, Any]:
    return {
        "number": trial.number,
        "state": trial.state.name,
        "values": list(trial.values) if trial.values else None,
        "feasible": trial.state == TrialState.COMPLETE and _feasible(trial),
        "params": trial.params,
    }


def _importances(study: optuna.Study, n_complete: int) -> dict[str, float]:
    if n_complete < 2:
        return {}
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1.0  # the evaluator favours low targets
    try:
        with warnings.catch_warnings():  # its reminder that low targets are favoured: they are, by the sign
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(study, target=lambda trial: sign * trial.values[0], normalize=True)
        return {k: float(v) for k, v in importances.items()}
    except (ValueError, RuntimeError) as exc:  # e.g. no parameter varied across complete trials
        logger.info("study %s: no parameter importances: %s", study.study_name, exc)
        return {}


def _log_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    logger.info("study %s trial %d %s: values %s, params %s",
                study.study_name, trial.number, trial.state.name, trial.values, trial.params)


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's own per-trial INFO lines off (warnings stay); this module logs each trial."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
