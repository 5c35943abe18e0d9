"""Tuning objectives, samplers, constraints, Pareto fronts and purged folds; never the test part."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from atb.dataset import Dataset, FeatureTransform, Split, TargetSpec
from atb.evaluation.objectives import Constraints, score
from atb.models.trainer import FitSettings
from atb.workflows.tuning import SAMPLERS, Search, TuningResult, pareto_front, search_grid, tune_model, tuning_blocks

LOOKBACK, N_FEATURES, HORIZONS = 8, 3, (1, 3)
SETTINGS = FitSettings(epochs=2, batch_size=64, patience=5, device="cpu", seed=0, n_jobs=1)
FAST_LIGHTGBM = {"n_estimators": 15, "early_stopping_rounds": 5}


def make_split(n: int, rng: np.random.Generator, start: str) -> Split:
    """Windows whose 1-bar and 3-bar log returns depend on the last row, with prices to match."""
    X = rng.normal(size=(n, LOOKBACK, N_FEATURES)).astype(np.float32)
    signal = 0.01 * X[:, -1, :2] @ np.array([[0.5, 0.9], [-0.2, 0.4]], dtype=np.float32)
    y = (signal + 0.01 * rng.normal(size=(n, len(HORIZONS)))).astype(np.float32)
    close = 100.0 * np.exp(np.cumsum(y[:, 0]))
    return Split(X=X, y=y, origin_time=pd.date_range(start, periods=n, freq="D", tz="UTC").to_numpy(),
                 origin_close=close, future_close=close[:, None] * np.exp(y.astype(float)))


def make_dataset(test: Split | None = None) -> Dataset:
    rng = np.random.default_rng(3)
    train, val = make_split(240, rng, "2020-01-01"), make_split(90, rng, "2020-09-01")
    transform = FeatureTransform(
        feature_names=[f"f{i}" for i in range(N_FEATURES)], center=np.zeros(N_FEATURES), scale=np.ones(N_FEATURES),
        lookback=LOOKBACK, target=TargetSpec(HORIZONS),
    )
    return Dataset(train=train, val=val, test=test if test is not None else make_split(90, rng, "2021-01-01"),
                   transform=transform, feature_scores=pd.Series(1.0, index=transform.feature_names),
                   train_close=pd.Series(train.origin_close))


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return make_dataset()


def tune(tmp_path, dataset, search: Search, n_trials: int = 3, model_type: str = "lightgbm", name: str = "s") -> TuningResult:
    overrides = FAST_LIGHTGBM if model_type == "lightgbm" else None
    return tune_model(model_type, dataset, SETTINGS, n_trials=n_trials, storage=f"sqlite:///{tmp_path / name}.db",
                      variant="lightweight", search=search, overrides=overrides)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_each_sampler_runs_three_trials(tmp_path, dataset, sampler):
    result = tune(tmp_path, dataset, Search(objectives=("rmse_ratio",), sampler=sampler))
    assert result.sampler == sampler and result.n_complete == 3 and len(result.trials) == 3
    assert result.best_value == min(t["values"][0] for t in result.trials)


def test_the_grid_sampler_walks_a_grid_of_the_declared_space():
    grid = search_grid("lightgbm")
    assert grid["num_leaves"] == [8, 45, 256] and grid["max_depth"] == [3, 7, 12]  # log-spaced ints, then linear
    assert grid["feature_fraction"] == pytest.approx([0.4, 0.7, 1.0])
    lstm = search_grid("lstm")
    assert lstm["dropout"] == pytest.approx([0.0, 0.25, 0.5]) and lstm["learning_rate"] == pytest.approx([1e-4, 1e-3, 1e-2])


def test_a_multi_objective_study_reports_its_pareto_front(tmp_path, dataset):
    search = Search(objectives=("sharpe", "rmse_ratio"), sampler="nsga2")
    result = tune(tmp_path, dataset, search, n_trials=6)
    assert result.directions == ("maximize", "minimize") and result.pareto
    complete = [t for t in result.trials if t["state"] == "COMPLETE"]
    for member in result.pareto:  # nothing complete is better on one objective and no worse on the other
        sharpe, ratio = member["values"]
        assert not any(t["values"][0] >= sharpe and t["values"][1] <= ratio and t["values"] != member["values"] for t in complete)
    assert result.best_trial in {m["number"] for m in result.pareto}
    assert result.best_value == max(m["values"][0] for m in result.pareto)
    assert set(result.best_scores) == {"sharpe", "rmse_ratio"}


def test_pareto_front_by_hand():
    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in ([1.0, 0.9], [0.5, 0.8], [0.4, 0.95], [1.0, 1.0]):
        study.add_trial(optuna.trial.create_trial(values=values))
    assert [t.number for t in pareto_front(study.trials, ["maximize", "minimize"])] == [0, 1]


def completed(study: optuna.Study, value: float, scores: dict, violations: list[float]) -> None:
    study.add_trial(optuna.trial.create_trial(value=value, user_attrs={"overrides": {}, "fit_settings": {}, "scores": scores},
                                              system_attrs={f"constraints:{i}": v for i, v in enumerate(violations)}))


def test_a_constraint_keeps_a_violating_trial_out_of_the_choice():
    limits = Constraints(max_drawdown=0.2)
    study = optuna.create_study(direction="maximize")
    deep_fall, shallow = {"sharpe": 2.0, "max_drawdown": -0.35}, {"sharpe": 1.1, "max_drawdown": -0.1}
    completed(study, 2.0, deep_fall, limits.violations(deep_fall))
    completed(study, 1.1, shallow, limits.violations(shallow))
    result = TuningResult.from_study(study, "lightgbm", "sqlite://", Search(objectives=("sharpe",), constraints=limits))
    assert result.best_trial == 1 and result.best_value == 1.1 and result.n_infeasible == 1
    assert [t["feasible"] for t in result.trials] == [False, True]


def test_constraints_reach_the_sampler_and_an_impossible_one_is_an_error(tmp_path, dataset):
    search = Search(objectives=("sharpe",), constraints=Constraints(min_win_rate=1.0))
    with pytest.raises(RuntimeError, match=r"within the constraints \(win rate >= 100%\): 3 complete, 3 of them infeasible"):
        tune(tmp_path, dataset, search)
    study = optuna.load_study(study_name="atb-lightgbm", storage=f"sqlite:///{tmp_path / 's'}.db")
    assert all(t.constraints["win_rate"] > 0 for t in study.trials)  # where the samplers read them


def test_objectives_by_hand():
    dataset = make_dataset()
    split = dataset.val.subset(slice(0, 4))
    split.y[:] = np.array([[0.01, 0.02], [-0.02, 0.0], [0.03, 0.01], [0.0, -0.01]], dtype=np.float32)
    split.future_close[:] = split.origin_close[:, None] * np.exp(split.y.astype(float))
    prediction = np.array([[0.02, 0.02], [0.01, 0.0], [0.01, 0.01], [0.01, 0.01]])
    scores = score(("rmse_ratio", "direction_accuracy", "win_rate", "val_loss"), prediction, split, dataset, 0.5)
    y = split.y.astype(float)
    expected_ratio = np.mean(np.sqrt(((y - prediction) ** 2).mean(axis=0)) / np.sqrt((y**2).mean(axis=0)))
    assert scores["rmse_ratio"] == pytest.approx(expected_ratio)
    assert scores["direction_accuracy"] == pytest.approx(2 / 3)  # the flat bar is left out; up, down(called up), up
    assert scores["val_loss"] == 0.5
    assert 0.0 <= scores["win_rate"] <= 1.0


@pytest.mark.parametrize("folds", [2, 3])
def test_folds_stay_in_training_and_validation_and_are_purged_and_embargoed(dataset, folds):
    blocks = tuning_blocks(dataset, folds)
    assert len(blocks) == folds
    last_allowed = dataset.val.origin_time[-1]
    gap = np.timedelta64(2 * max(HORIZONS), "D")  # purge of the longest horizon plus an embargo as long
    for fit_on, stop_on, score_on in blocks:
        assert score_on.origin_time[-1] <= last_allowed
        assert stop_on.origin_time[0] - fit_on.origin_time[-1] > gap - np.timedelta64(1, "D")
        assert score_on.origin_time[0] - stop_on.origin_time[-1] > gap - np.timedelta64(1, "D")


def test_tuning_on_folds_never_reads_the_test_part(tmp_path):
    rng = np.random.default_rng(7)
    noise = make_split(90, rng, "2021-01-01")
    noise.y[:] = rng.normal(size=noise.y.shape)
    noise.future_close[:] = 1.0
    search = Search(objectives=("sharpe", "rmse_ratio"), sampler="tpe", cv_folds=2, constraints=Constraints(max_drawdown=0.5))
    runs = [tune(tmp_path, make_dataset(test=test), search, name=str(i)).to_dict() for i, test in enumerate([None, noise])]
    assert runs[0] | {"storage": None} == runs[1] | {"storage": None}


def test_a_single_objective_on_folds_is_pruned_per_fold(tmp_path, dataset):
    pruner = optuna.pruners.ThresholdPruner(upper=0.0)  # any rmse_ratio is above 0: pruned at the first fold's report
    with pytest.raises(RuntimeError, match="2 pruned"):
        tune_model("lightgbm", dataset, SETTINGS, n_trials=2, storage=f"sqlite:///{tmp_path / 'p'}.db", variant="lightweight",
                   search=Search(objectives=("rmse_ratio",), cv_folds=2), overrides=FAST_LIGHTGBM, pruner=pruner)
