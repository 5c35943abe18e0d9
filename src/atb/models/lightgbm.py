"""Gradient-boosted trees on the flattened window, one booster per horizon.

A window `(lookback, n_features)` becomes one row of lookback * n_features
columns; column `t * n_features + f` is feature f at window position t, i.e.
lag k = lookback - 1 - t bars before the forecast origin ("feature@t-k").
The training data is binned once and shared by the per-horizon boosters; each
stops early on its validation MAE (l1), or for task "direction" (objective
`binary`, predictions are probabilities of "up") on its validation log loss.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

import lightgbm as lgb
import numpy as np
import pandas as pd

from atb.io import atomic_write_text
from atb.models.base import LAG_SEPARATOR, ForecastModel, ModelFileError, mae_history_row
from atb.models.trainer import FitSettings
from atb.windows import WindowArray, Windows

logger = logging.getLogger(__name__)

DEFAULT_N_JOBS = 2  # threads when neither the settings nor OMP_NUM_THREADS say
SINGLE_THREAD_ROWS = 256  # predictions on fewer rows run on one thread (no OpenMP start-up)
ROWS_PER_CHUNK = 8192  # flattened rows built at once from a WindowArray (fit and predict)

_COMMON = {
    "feature_fraction": 0.85,
    "bagging_fraction": 0.8,
    "min_child_samples": 20,
    "reg_alpha": 0.1,
    "reg_lambda": 0.1,
    "early_stopping_rounds": 50,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "lightweight": {"n_estimators": 300, "num_leaves": 31, "max_depth": 6, "learning_rate": 0.05, **_COMMON},
    "default": {"n_estimators": 1000, "num_leaves": 127, "max_depth": 8, "learning_rate": 0.03, **_COMMON},
    "deep": {"n_estimators": 2000, "num_leaves": 255, "max_depth": 10, "learning_rate": 0.02, **_COMMON},
}


class LightGBMModel(ForecastModel):
    """LightGBM regression per horizon; learned state `boosters_` (one per horizon),
    `best_iterations_`, `history_` (one row per boosting round)."""

    model_type = "lightgbm"
    description = "Gradient-boosted trees (LightGBM) on the flattened window, one model per horizon."
    variants = VARIANTS
    ensemble_family = "trees"
    stops_early = True
    has_feature_importance = True
    supports_direction = True
    attribution_method = "TreeSHAP"

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        """Optuna search space; n_estimators is a cap (boosting stops early on validation
        MAE), so it stays the variant's."""
        return {
            "num_leaves": trial.suggest_int("num_leaves", 8, 256, log=True),
            "max_depth": trial.suggest_int("max_depth", 3, 12),
            "learning_rate": trial.suggest_float("learning_rate", 0.005, 0.2, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
            "reg_alpha": trial.suggest_float("reg_alpha", 1e-3, 10.0, log=True),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }

    def fit(
        self,
        train: Windows,
        val: Windows,
        settings: FitSettings | None = None,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Boost each horizon until validation MAE stops improving for
        `early_stopping_rounds`; `on_epoch` is called with each round's history row
        once all horizons are done. FitSettings.device is ignored (CPU trees)."""
        settings = settings or FitSettings()
        self.check_training_windows(train, "train")
        self.check_training_windows(val, "val")
        hp = self.hyperparameters()
        self.n_jobs_ = settings.n_jobs or default_threads()
        params = _booster_params(hp, settings.seed, self.n_jobs_, self.task)
        y_train, y_val = _label_columns(train.y), _label_columns(val.y)
        train_set = lgb.Dataset(flat_rows(train.X), y_train[0], params=params, free_raw_data=False).construct()
        val_set = lgb.Dataset(flat_rows(val.X), y_val[0], reference=train_set, params=params, free_raw_data=False).construct()
        started = time.perf_counter()
        self.boosters_, self.best_iterations_, curves = [], [], []
        for j, horizon in enumerate(self.horizons):
            train_set.set_label(y_train[j])
            val_set.set_label(y_val[j])
            evaluations: dict = {}
            booster = lgb.train(
                params, train_set, num_boost_round=hp["n_estimators"],
                valid_sets=[train_set, val_set], valid_names=["train", "val"],
                callbacks=[lgb.early_stopping(hp["early_stopping_rounds"], verbose=False),
                           lgb.record_evaluation(evaluations)],
            )
            self.boosters_.append(booster)
            self.best_iterations_.append(int(booster.best_iteration) or booster.current_iteration())
            curves.append((evaluations["train"][params["metric"]], evaluations["val"][params["metric"]]))
            logger.info("lightgbm h=%d: best iteration %d of %d", horizon, self.best_iterations_[-1], len(curves[-1][1]))
        metric = "logloss" if self.task == "direction" else "mae"
        self.history_ = _round_history(curves, self.horizons, hp["learning_rate"], time.perf_counter() - started, metric)
        if on_epoch is not None:
            for row in self.history_:
                on_epoch(row)
        return self.history_

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.check_fitted()
        X = self.check_windows(X, "predict")
        threads = 1 if len(X) < SINGLE_THREAD_ROWS else self.n_jobs_
        chunks = X.batches(ROWS_PER_CHUNK) if isinstance(X, WindowArray) else [X]
        return np.concatenate([
            np.column_stack([
                booster.predict(flatten(chunk), num_iteration=best, num_threads=threads)
                for booster, best in zip(self.boosters_, self.best_iterations_)
            ])
            for chunk in chunks
        ]).astype(np.float64, copy=False)

    def attributions(self, X: np.ndarray) -> np.ndarray:
        """Exact TreeSHAP contributions (LightGBM's own `pred_contrib`), summed over each feature's
        lags: `(n, H, n_features + 1)`, the last column the expected value, each row summing to
        the prediction (for task "direction", to its log-odds)."""
        self.check_fitted()
        rows = flatten(self.check_windows(X, "attributions"))
        lookback, n_features = self.input_shape
        out = []
        for booster, best in zip(self.boosters_, self.best_iterations_):
            contributions = booster.predict(rows, num_iteration=best, pred_contrib=True)
            by_feature = contributions[:, :-1].reshape(len(rows), lookback, n_features).sum(axis=1)
            out.append(np.column_stack([by_feature, contributions[:, -1]]))
        return np.stack(out, axis=1)

    def feature_importance(self, feature_names: list[str]) -> pd.Series:
        """Total gain per input column "feature@t-k" summed over horizons, descending."""
        self.check_fitted()
        lookback, n_features = self.input_shape
        if len(feature_names) != n_features:
            raise ValueError(f"feature_names has {len(feature_names)} names; the model was fitted on {n_features} features")
        gain = sum(
            booster.feature_importance("gain", iteration=best)
            for booster, best in zip(self.boosters_, self.best_iterations_)
        )
        names = [f"{name}{LAG_SEPARATOR}{lookback - 1 - t}" for t in range(lookback) for name in feature_names]
        return pd.Series(gain, index=names, name="gain").sort_values(ascending=False, kind="stable")

    def n_parameters(self) -> int:
        """Leaf values over all trees used for prediction."""
        self.check_fitted()
        return sum(
            sum(tree["num_leaves"] for tree in booster.dump_model(num_iteration=best)["tree_info"])
            for booster, best in zip(self.boosters_, self.best_iterations_)
        )

    def _write_state(self, directory: Path) -> None:
        for horizon, booster, best in zip(self.horizons, self.boosters_, self.best_iterations_):
            atomic_write_text(directory / _model_file(horizon), booster.model_to_string(num_iteration=best))

    def _read_state(self, directory: Path, fitted: dict[str, Any]) -> None:
        self.boosters_ = [_read_booster(directory / _model_file(h), self.input_shape) for h in self.horizons]
        self.best_iterations_ = [booster.current_iteration() for booster in self.boosters_]
        self.n_jobs_ = int(fitted.get("n_jobs", DEFAULT_N_JOBS))

    def _fitted_values(self) -> dict[str, Any]:
        return {"best_iterations": self.best_iterations_, "n_jobs": self.n_jobs_}


class _FlatRows(lgb.Sequence):
    """The flattened rows of a WindowArray, built a chunk at a time while LightGBM bins them."""

    batch_size = ROWS_PER_CHUNK

    def __init__(self, windows: WindowArray) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index):  # float64, as LightGBM samples Sequences (float32 values convert exactly)
        rows = self.windows[index].astype(np.float64)
        return rows.reshape(-1) if rows.ndim == 2 else rows.reshape(len(rows), -1)


def flat_rows(X: np.ndarray | WindowArray) -> np.ndarray | _FlatRows:
    """What a LightGBM Dataset is built from: the rows of an array, or a WindowArray's read in chunks."""
    return _FlatRows(X) if isinstance(X, WindowArray) else flatten(X)


def flatten(X: np.ndarray) -> np.ndarray:
    """Windows `(n, lookback, n_features)` -> rows `(n, lookback * n_features)` (no copy when contiguous)."""
    return np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), -1)


def _label_columns(y: np.ndarray) -> np.ndarray:
    """Targets `(n, H)` as H contiguous float64 label columns."""
    return np.ascontiguousarray(np.asarray(y, dtype=np.float64).T)


def default_threads() -> int:
    """LightGBM's threads when the fit settings name none: OMP_NUM_THREADS where set (the usual cap on a
    process's threads, which torch honours too), else DEFAULT_N_JOBS."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_N_JOBS


def _booster_params(hp: dict[str, Any], seed: int, n_jobs: int, task: str) -> dict[str, Any]:
    direction = task == "direction"
    return {
        "objective": "binary" if direction else "regression",
        "metric": "binary_logloss" if direction else "l1",
        "learning_rate": hp["learning_rate"],
        "num_leaves": hp["num_leaves"],
        "max_depth": hp["max_depth"],
        "feature_fraction": hp["feature_fraction"],
        "bagging_fraction": hp["bagging_fraction"],
        "bagging_freq": 1,
        "min_child_samples": hp["min_child_samples"],
        "lambda_l1": hp["reg_alpha"],
        "lambda_l2": hp["reg_lambda"],
        "seed": seed,
        "num_threads": n_jobs,
        "deterministic": True,
        "force_col_wise": True,
        "verbosity": -1,
    }


def _round_history(curves: list[tuple[list, list]], horizons: tuple[int, ...], lr: float, seconds: float, metric: str) -> list[dict]:
    """One row per boosting round: train/val `metric` (mae, or logloss for task "direction")
    averaged over horizons, per horizon as `val_{metric}_h{h}`. A horizon that stopped
    earlier keeps its last value; `seconds` is the mean per round."""
    n_rounds = max(len(val) for _, val in curves)

    def at(curve: list, r: int) -> float:
        return float(curve[min(r, len(curve) - 1)])

    rows = []
    for r in range(n_rounds):
        per_horizon = {f"val_{metric}_h{h}": at(val, r) for h, (_, val) in zip(horizons, curves)}
        loss = float(np.mean([at(train, r) for train, _ in curves]))
        rows.append(mae_history_row(r + 1, loss, per_horizon, lr, seconds / n_rounds))
    return rows


def _model_file(horizon: int) -> str:
    return f"model_h{horizon}.txt"


def _read_booster(path: Path, input_shape: tuple[int, int]) -> lgb.Booster:
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist: the saved lightgbm model lacks this horizon's trees")
    try:
        booster = lgb.Booster(model_str=path.read_text())
    except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not a readable LightGBM model: {exc}") from exc
    expected = input_shape[0] * input_shape[1]
    if booster.num_feature() != expected:
        raise ModelFileError(f"{path} expects {booster.num_feature()} columns, the model's window has {expected}")
    return booster
