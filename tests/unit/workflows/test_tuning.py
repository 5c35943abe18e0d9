"""Optuna tuning: SQLite studies, pruning, resuming, search spaces, no use of the test split."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import NullHeartbeatThread
from optuna.trial import TrialState

from atb.dataset import Dataset, FeatureTransform, Split, TargetSpec
from atb.models import AVAILABLE_MODELS, create_model
from atb.models.factory import tunable_models
from atb.models.trainer import FitSettings
from atb.workflows.tuning import (
    TuningResult,
    best_validation_loss,
    fit_space,
    search_space,
    tune_model,
)

LOOKBACK, N_FEATURES, HORIZONS = 12, 4, (1, 3)
SETTINGS = FitSettings(epochs=2, batch_size=64, patience=5, device="cpu", seed=0, n_jobs=1)
FAST_LIGHTGBM = {"n_estimators": 20, "early_stopping_rounds": 5}


def make_split(n: int, rng: np.random.Generator) -> Split:
    X = rng.normal(size=(n, LOOKBACK, N_FEATURES)).astype(np.float32)
    signal = X[:, -1, :2] @ np.array([[0.5, 0.3], [-0.2, 0.4]], dtype=np.float32)
    y = (signal + 0.1 * rng.normal(size=(n, len(HORIZONS)))).astype(np.float32)
    close = 100.0 + np.arange(n, dtype=float)
    return Split(X=X, y=y, origin_time=pd.date_range("2024-01-01", periods=n, freq="D").to_numpy(),
                 origin_close=close, future_close=np.column_stack([close] * len(HORIZONS)))


def make_dataset(seed: int = 0, test: Split | None = None) -> Dataset:
    rng = np.random.default_rng(seed)
    train, val = make_split(200, rng), make_split(60, rng)
    transform = FeatureTransform(
        feature_names=[f"f{i}" for i in range(N_FEATURES)], center=np.zeros(N_FEATURES), scale=np.ones(N_FEATURES),
        lookback=LOOKBACK, target=TargetSpec(HORIZONS),
    )
    return Dataset(
        train=train, val=val, test=test if test is not None else make_split(60, rng), transform=transform,
        feature_scores=pd.Series(1.0, index=transform.feature_names), train_close=pd.Series(train.origin_close),
    )


def sqlite(tmp_path, name: str = "optuna.db") -> str:
    return f"sqlite:///{tmp_path / name}"


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return make_dataset()


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny networks train fastest on one thread; more threads crawl on a busy machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def refit_best_loss(result: TuningResult, dataset: Dataset, settings: FitSettings) -> float:
    model = create_model(result.model_type, dataset.input_shape, dataset.horizons, "lightweight", **result.best_params)
    return best_validation_loss(model.fit(dataset.train, dataset.val, replace(settings, **result.best_fit_settings)))


@pytest.mark.parametrize("model_type, overrides", [("lstm", None), ("lightgbm", FAST_LIGHTGBM)])
def test_tiny_study_on_sqlite_gives_params_create_model_accepts(tmp_path, dataset, model_type, overrides):
    result = tune_model(model_type, dataset, SETTINGS, n_trials=2, storage=sqlite(tmp_path), seed=1,
                        variant="lightweight", overrides=overrides)

    assert (result.n_trials, result.n_complete, result.n_pruned, result.n_failed) == (2, 2, 0, 0)
    assert result.study_name == f"atb-{model_type}"
    stored = optuna.load_study(study_name=result.study_name, storage=sqlite(tmp_path))
    assert result.best_value == min(t.value for t in stored.trials)
    assert set(result.best_params) >= set(overrides or {})
    if model_type == "lstm":
        assert isinstance(result.best_params["lstm_units"], tuple)
        assert set(result.best_fit_settings) == {"learning_rate"}
        assert all(t.value == min(t.intermediate_values.values()) for t in stored.trials)
    else:
        assert result.best_fit_settings == {}
    assert refit_best_loss(result, dataset, SETTINGS) == pytest.approx(result.best_value, rel=1e-6)
    assert json.loads(json.dumps(result.to_dict()))["best_params"] == result.to_dict()["best_params"]


@pytest.mark.filterwarnings("ignore:Fixed parameter")  # the diverging learning rate lies outside the space
def test_trial_worse_than_the_median_is_pruned_and_stored_as_pruned(tmp_path, dataset):
    good = {"lstm_units": "32", "dropout": 0.0, "learning_rate": 3e-3}
    diverging = {**good, "learning_rate": 5.0}
    result = tune_model(
        "lstm", dataset, replace(SETTINGS, epochs=3), n_trials=2, storage=sqlite(tmp_path), variant="lightweight",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0), enqueue=[good, diverging],
    )

    trials = optuna.load_study(study_name="atb-lstm", storage=sqlite(tmp_path)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert trials[1].params["learning_rate"] == 5.0 and list(trials[1].intermediate_values) == [1]
    assert (result.n_complete, result.n_pruned) == (1, 1)
    assert result.best_fit_settings == {"learning_rate": 3e-3}


def test_same_study_name_continues_the_study(tmp_path, dataset):
    run = dict(storage=sqlite(tmp_path), study_name="atb-BTCUSDT-lightgbm", variant="lightweight",
               overrides=FAST_LIGHTGBM)
    first = tune_model("lightgbm", dataset, SETTINGS, n_trials=2, **run)
    second = tune_model("lightgbm", dataset, SETTINGS, n_trials=1, **run)

    trials = optuna.load_study(study_name="atb-BTCUSDT-lightgbm", storage=sqlite(tmp_path)).trials
    assert (first.n_trials, second.n_trials, len(trials)) == (2, 3, 3)
    assert second.best_value <= first.best_value
    assert trials[2].params != trials[0].params, "a resumed study must not repeat its first proposal"


def test_study_of_another_model_type_is_refused(tmp_path, dataset):
    tune_model("lightgbm", dataset, SETTINGS, n_trials=1, storage=sqlite(tmp_path), study_name="shared",
               variant="lightweight", overrides=FAST_LIGHTGBM)
    with pytest.raises(ValueError, match="tunes model_type 'lightgbm', not 'lstm'"):
        tune_model("lstm", dataset, SETTINGS, n_trials=1, storage=sqlite(tmp_path), study_name="shared")


@pytest.mark.parametrize("model_type, overrides", [("lstm", None), ("lightgbm", FAST_LIGHTGBM)])
def test_tuning_never_touches_the_test_split(tmp_path, model_type, overrides):
    rng = np.random.default_rng(99)
    poisoned = make_split(60, rng)
    poisoned.X[:] = np.nan
    poisoned.y[:] = np.nan
    results = [
        tune_model(model_type, make_dataset(test=test), SETTINGS, n_trials=2, storage=sqlite(tmp_path, f"{i}.db"),
                   variant="lightweight", overrides=overrides)
        for i, test in enumerate([poisoned, make_split(60, rng)])
    ]
    assert results[0].to_dict() | {"storage": None} == results[1].to_dict() | {"storage": None}


@pytest.mark.parametrize("model_type", tunable_models())
def test_every_sampled_point_builds_a_valid_model(model_type):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(8):
        trial = study.ask()
        model = create_model(model_type, (LOOKBACK, N_FEATURES), HORIZONS, **search_space(trial, model_type))
        if model.is_neural:
            model.build_network()
            assert 0 < fit_space(trial, model_type)["learning_rate"] < 1
        else:
            assert fit_space(trial, model_type) == {}


def test_every_learned_model_type_is_tunable():
    """All but the references and the statistical baselines (which choose their own orders)."""
    assert set(tunable_models()) == set(AVAILABLE_MODELS) - {"naive", "drift", "arima", "ets"}


@pytest.mark.parametrize("model_type", ["naive", "no_such_model"])
def test_untunable_model_type_is_refused_with_the_tunable_ones(tmp_path, dataset, model_type):
    with pytest.raises(ValueError, match=r"tunable types: \['lstm'"):
        tune_model(model_type, dataset, SETTINGS, n_trials=1, storage=sqlite(tmp_path))
    with pytest.raises(ValueError, match="no search space"):
        search_space(optuna.create_study().ask(), model_type)
    assert not (tmp_path / "optuna.db").exists()


class WorkerKilled(BaseException):
    """Ends the trial the way a killed process does: Optuna neither fails nor completes it."""


def test_a_trial_whose_worker_dies_before_optunas_first_heartbeat_is_failed_and_run_again(tmp_path, dataset, monkeypatch):
    def dies(*args, **kwargs):
        raise WorkerKilled

    # Optuna's heartbeat thread beats some time after the trial starts: here, never
    monkeypatch.setattr(optuna.study._optimize, "get_heartbeat_thread", lambda *args: NullHeartbeatThread())
    run = {"storage": sqlite(tmp_path), "heartbeat": 1, "variant": "lightweight", "worker_tag": "run/0"}
    with monkeypatch.context() as killing:
        killing.setattr("atb.workflows.tuning.create_model", dies)
        with pytest.raises(WorkerKilled):
            tune_model("lstm", dataset, SETTINGS, n_trials=1, **run)
    tune_model("lstm", dataset, SETTINGS, n_trials=1, **run)  # the worker started again under its tag

    killed, retry = optuna.load_study(study_name="atb-lstm", storage=sqlite(tmp_path)).get_trials()
    assert killed.state == TrialState.FAIL and killed.user_attrs["host"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        assert retry.state == TrialState.COMPLETE and RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 0
    assert killed.params.items() <= retry.params.items()


def test_fixed_override_of_a_searched_hyperparameter_is_refused(tmp_path, dataset):
    with pytest.raises(ValueError, match=r"fixed overrides \['num_leaves'\] are searched"):
        tune_model("lightgbm", dataset, SETTINGS, n_trials=1, storage=sqlite(tmp_path), overrides={"num_leaves": 7})


def test_default_storage_is_a_sqlite_file_in_the_directory(tmp_path, dataset):
    result = tune_model("lightgbm", dataset, SETTINGS, n_trials=1, directory=tmp_path / "studies",
                        variant="lightweight", overrides=FAST_LIGHTGBM)
    assert (tmp_path / "studies" / "optuna.db").is_file()
    assert result.storage == f"sqlite:///{tmp_path / 'studies' / 'optuna.db'}"


def test_storage_password_is_hidden_in_the_result():
    study = optuna.create_study()
    study.enqueue_trial({})
    trial = study.ask()
    trial.set_user_attr("overrides", {})
    trial.set_user_attr("fit_settings", {})
    study.tell(trial, 1.0)
    result = TuningResult.from_study(study, "lstm", "postgresql://tuner:secret@db.example/optuna")
    assert "secret" not in json.dumps(result.to_dict()) and "tuner:***@" in result.storage


def test_objective_is_the_lowest_finite_validation_loss():
    history = [{"val_loss": v} for v in (0.5, 0.3, float("nan"), 0.4)]
    assert best_validation_loss(history) == 0.3
    with pytest.raises(FloatingPointError, match="no finite val_loss"):
        best_validation_loss([{"val_loss": float("nan")}])
