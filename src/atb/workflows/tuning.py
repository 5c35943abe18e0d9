"""Hyperparameter search with Optuna: seeded TPE sampling, median pruning on validation loss.

A study lives in an SQLAlchemy storage (by default the SQLite file
`<directory>/optuna.db`), so several workers can share it and a later call
with the same study name continues it. Each trial builds a model from sampled
overrides, fits it on the training split, and scores it by its best validation
loss (the minimum `val_loss` of its history). The test split is never handed
to a trial.

Neural trials report `val_loss` after every epoch and stop early when the
pruner judges them worse than the median of earlier trials at the same epoch.
LightGBM trials are not pruned: their history arrives only after boosting.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from atb.dataset import Dataset
from atb.models import create_model, model_class
from atb.models.factory import MODEL_CLASSES, tunable_models
from atb.models.trainer import FitSettings
from atb.windows import Windows

logger = logging.getLogger(__name__)

DEFAULT_STORAGE_FILE = "optuna.db"
SQLITE_TIMEOUT_S = 60  # seconds a worker waits for another worker's write lock on SQLite
PRUNER_STARTUP_TRIALS = 5  # complete trials before any pruning
PRUNER_WARMUP_EPOCHS = 2  # epochs below this are never pruned (epochs count from 1)


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


def _space_of(model_type: str) -> Callable[[optuna.Trial], dict[str, Any]]:
    space = MODEL_CLASSES[model_type].search_space if model_type in MODEL_CLASSES else None
    if space is None:
        raise ValueError(f"model type {model_type!r} has no search space; tunable types: {tunable_models()}")
    return space


# ------------------------------------------------------------------------ result
@dataclass(frozen=True)
class TuningResult:
    """Outcome of a study. `best_params` are create_model overrides (layer sizes as
    tuples); `best_fit_settings` are FitSettings changes (e.g. learning_rate). The
    storage URL is shown without its password. Counts cover the whole study,
    earlier runs and other workers included."""

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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (tuples become lists)."""
        return {**asdict(self), "best_params": _jsonable(self.best_params)}

    @classmethod
    def from_study(cls, study: optuna.Study, model_type: str, storage: str) -> TuningResult:
        states = [trial.state for trial in study.trials]
        complete = states.count(TrialState.COMPLETE)
        if complete == 0:
            raise RuntimeError(
                f"study {study.study_name!r} has no complete trial ({states.count(TrialState.PRUNED)} pruned, "
                f"{states.count(TrialState.FAIL)} failed of {len(states)}); run more trials or widen the timeout"
            )
        best = study.best_trial
        return cls(
            model_type=model_type,
            study_name=study.study_name,
            storage=make_url(storage).render_as_string(hide_password=True),
            best_params={k: tuple(v) if isinstance(v, list) else v for k, v in best.user_attrs["overrides"].items()},
            best_fit_settings=dict(best.user_attrs["fit_settings"]),
            best_value=float(best.value),
            n_trials=len(states),
            n_complete=complete,
            n_pruned=states.count(TrialState.PRUNED),
            n_failed=states.count(TrialState.FAIL),
        )


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
    directory: str | Path = ".",
    pruner: optuna.pruners.BasePruner | None = None,
    enqueue: list[dict[str, Any]] | None = None,
    overrides: dict[str, Any] | None = None,
) -> TuningResult:
    """Run `n_trials` more trials (or until `timeout` seconds) of a minimising study.

    storage: any SQLAlchemy URL; None (or empty) means `sqlite:///<directory>/optuna.db`.
    study_name: default `atb-<model_type>`; an existing study of that name is
    continued (its trials count toward the result), and refused if it tunes
    another model type or variant.
    seed: the TPE sampler's seed, offset by the number of trials already in the
    study so a resumed study does not repeat its first proposals; workers sharing
    a study should pass different seeds. Every trial fits with `settings.seed`.
    pruner: default MedianPruner(5 startup trials, 2 warm-up epochs).
    enqueue: trials to run first, as Optuna parameters (e.g. `{"lstm_units":
    "64-32", "learning_rate": 1e-3}`); missing ones are sampled, and a
    set already in the study is not enqueued again.
    overrides: model overrides fixed for every trial (e.g. a smaller
    `n_estimators`); they may not name a searched hyperparameter.
    Trials whose training diverges (FloatingPointError) are recorded as failed.
    """
    _space_of(model_type)
    fixed = dict(overrides or {})
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    url = storage or f"sqlite:///{Path(directory) / DEFAULT_STORAGE_FILE}"
    if not storage:
        Path(directory).mkdir(parents=True, exist_ok=True)
    name = study_name or f"atb-{model_type}"
    objective = _objective(model_type, variant, dataset.input_shape, dataset.horizons, dataset.train, dataset.val,
                           settings, fixed)
    with _quiet_optuna():
        _check_fixed_overrides(model_type, fixed)
        study = _open_study(url, name, model_type, variant, seed, pruner)
        for params in enqueue or []:
            study.enqueue_trial(params, skip_if_exists=True)
        study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(FloatingPointError,),
                       callbacks=[_log_trial])
    result = TuningResult.from_study(study, model_type, url)
    logger.info("study %s: best val_loss %.6g with %s %s (%d trials: %d complete, %d pruned, %d failed)",
                name, result.best_value, result.best_params, result.best_fit_settings,
                result.n_trials, result.n_complete, result.n_pruned, result.n_failed)
    return result


def default_pruner() -> optuna.pruners.MedianPruner:
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS)


def best_validation_loss(history: list[dict]) -> float:
    """The lowest finite `val_loss` of a fit's history."""
    losses = [row["val_loss"] for row in history if math.isfinite(row["val_loss"])]
    if not losses:
        raise FloatingPointError(f"no finite val_loss in {len(history)} history row(s)")
    return min(losses)


def _objective(
    model_type: str,
    variant: str,
    input_shape: tuple[int, int],
    horizons: tuple[int, ...],
    train: Windows,
    val: Windows,
    settings: FitSettings,
    fixed: dict[str, Any],
) -> Callable[[optuna.Trial], float]:
    """The trial function; it holds the training and validation splits only."""

    def objective(trial: optuna.Trial) -> float:
        model_overrides = {**search_space(trial, model_type), **fixed}
        fit_changes = fit_space(trial, model_type)
        trial.set_user_attr("overrides", _jsonable(model_overrides))
        trial.set_user_attr("fit_settings", fit_changes)
        model = create_model(model_type, input_shape, horizons, variant=variant, **model_overrides)
        trial_settings = replace(settings, checkpoint_dir=None, **fit_changes)
        history = model.fit(train, val, trial_settings, on_epoch=_pruning_callback(trial) if model.is_neural else None)
        return best_validation_loss(history)

    return objective


def _pruning_callback(trial: optuna.Trial) -> Callable[[dict], None]:
    def report(row: dict) -> None:
        trial.report(row["val_loss"], step=int(row["epoch"]))
        if trial.should_prune():
            raise optuna.TrialPruned(f"val_loss {row['val_loss']:.6g} at epoch {row['epoch']}")

    return report


def _open_study(
    url: str, name: str, model_type: str, variant: str, seed: int, pruner: optuna.pruners.BasePruner | None
) -> optuna.Study:
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if is_sqlite else {}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    study = optuna.create_study(storage=storage, study_name=name, direction="minimize", load_if_exists=True)
    for key, value in (("model_type", model_type), ("variant", variant)):
        stored = study.user_attrs.get(key)
        if stored is None:
            study.set_user_attr(key, value)
        elif stored != value:
            raise ValueError(f"study {name!r} in {make_url(url).render_as_string(hide_password=True)} tunes "
                             f"{key} {stored!r}, not {value!r}; pass another study_name")
    sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner or default_pruner())


def _check_fixed_overrides(model_type: str, fixed: dict[str, Any]) -> None:
    probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    searched = set(search_space(probe, model_type))
    clash = sorted(searched & set(fixed))
    if clash:
        raise ValueError(f"fixed overrides {clash} are searched for {model_type}; searched: {sorted(searched)}")


def _log_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    logger.info("study %s trial %d %s: value %s, params %s",
                study.study_name, trial.number, trial.state.name, trial.value, trial.params)


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
