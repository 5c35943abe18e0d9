"""Walk-forward runner: folds fitted inside themselves, per-fold and aggregated metrics."""

import numpy as np

from atb.config import TrainingConfig
from atb.dataset import build_dataset, forecast_origins
from atb.folds import cv_folds, walk_forward_folds
from atb.workflows.steps import prepare_data
from atb.workflows.walk_forward import run_walk_forward

CONFIG = TrainingConfig.build(model_type="drift", wf_splits=3, mlflow=False)


def test_each_fold_fits_selection_and_scaler_on_its_own_training_rows():
    prepared = prepare_data(CONFIG)
    candles, features = prepared.candles.frame, prepared.features
    origins = forecast_origins(features, CONFIG.dataset.lookback, CONFIG.dataset.max_horizon)
    fold = walk_forward_folds(len(origins), n_splits=3, max_horizon=30)[0]
    base = build_dataset(candles, features, CONFIG.dataset, parts=(fold.train, fold.val, fold.test))

    later = candles.index > base.train.origin_time[-1] + np.timedelta64(30, "D")
    rng = np.random.default_rng(0)
    changed_features = features.copy()
    changed_features.loc[later] = rng.normal(size=(later.sum(), features.shape[1]))
    changed_candles = candles.copy()
    changed_candles.loc[later, "close"] *= rng.uniform(0.5, 2.0, later.sum())
    other = build_dataset(changed_candles, changed_features, CONFIG.dataset, parts=(fold.train, fold.val, fold.test))

    assert other.transform.feature_names == base.transform.feature_names
    np.testing.assert_array_equal(other.transform.center, base.transform.center)
    np.testing.assert_array_equal(other.transform.scale, base.transform.scale)
    assert not np.array_equal(other.test.y, base.test.y)
    # a later fold fits on more history, so its fitted pieces differ
    last = walk_forward_folds(len(origins), n_splits=3, max_horizon=30)[-1]
    assert not np.array_equal(
        build_dataset(candles, features, CONFIG.dataset, parts=(last.train, last.val, last.test)).transform.center,
        base.transform.center,
    )


def test_per_fold_metrics_and_summary():
    result = run_walk_forward(CONFIG, prepare_data(CONFIG), [CONFIG.model.model_type])[CONFIG.model.model_type]
    assert len(result["folds"]) == 3
    tests = [fold["test"] for fold in result["folds"]]
    assert all(a[1] < b[0] for a, b in zip(tests, tests[1:]))
    summary = result["summary"]
    assert set(summary) == {"model", "naive", "drift"}
    assert summary["naive"][1]["rmse_ratio"]["mean"] == 1.0
    ratios = [fold["metrics"]["model"][30]["rmse_ratio"] for fold in result["folds"]]
    assert summary["model"][30]["rmse_ratio"]["mean"] == np.mean(ratios)


def test_model_types_share_each_folds_dataset_and_baselines():
    results = run_walk_forward(CONFIG, prepare_data(CONFIG), ["drift", "naive"])
    assert list(results) == ["drift", "naive"] and results["naive"]["model_type"] == "naive"
    for drift_fold, naive_fold in zip(results["drift"]["folds"], results["naive"]["folds"]):
        assert {k: v for k, v in drift_fold.items() if k != "metrics"} == {k: v for k, v in naive_fold.items() if k != "metrics"}
        assert drift_fold["metrics"]["naive"] == naive_fold["metrics"]["naive"] == naive_fold["metrics"]["model"]


def test_a_purged_kfold_fold_fits_nothing_on_its_test_block_rows():
    """The test block of a middle fold lies between training origins: changing its rows (features,
    closes) and the purge and embargo after it changes no selected feature and no scaler value."""
    prepared = prepare_data(CONFIG)
    candles, features, spec = prepared.candles.frame, prepared.features, CONFIG.dataset
    origins = forecast_origins(features, spec.lookback, spec.max_horizon)
    fold = cv_folds("purged-kfold", len(origins), n_splits=4, max_horizon=30, embargo=30, lookback=spec.lookback)[1]
    assert fold.train.min() < fold.test[0] and fold.train.max() > fold.test[-1]  # training on both sides
    base = build_dataset(candles, features, spec, parts=fold.parts)
    inside = np.zeros(len(candles), dtype=bool)
    inside[origins[fold.test[0]] : origins[fold.test[-1]] + 31] = True  # the test windows' last rows and their targets
    rng = np.random.default_rng(1)
    changed_features, changed_candles = features.copy(), candles.copy()
    changed_features.loc[inside] = rng.normal(size=(inside.sum(), features.shape[1]))
    changed_candles.loc[inside, "close"] *= rng.uniform(0.5, 2.0, inside.sum())
    other = build_dataset(changed_candles, changed_features, spec, parts=fold.parts)
    assert other.transform.feature_names == base.transform.feature_names
    np.testing.assert_array_equal(other.transform.center, base.transform.center)
    np.testing.assert_array_equal(other.transform.scale, base.transform.scale)
    np.testing.assert_array_equal(other.train.X, base.train.X)
    np.testing.assert_array_equal(other.train.y, base.train.y)
    assert not np.array_equal(other.test.y, base.test.y)
