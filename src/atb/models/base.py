"""The one interface every forecasting model implements, neural or not.

A model is built from `(input_shape, horizons, variant, **overrides)`, where a
variant is a named set of hyperparameters and an override replaces one of them.
The constructor only stores these; `fit` sets the learned state (names ending in
`_`). Capabilities are class attributes and are checked in one place,
`require_capability`, so a caller asks a model what it can do instead of
catching errors.

On disk a model is a directory: `params.json` (everything needed to rebuild it)
plus its own weights files; nothing is pickled.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from atb.io import atomic_write_json
from atb.windows import WindowArray, Windows

if TYPE_CHECKING:
    from atb.models.trainer import FitSettings

PARAMS_FILE = "params.json"
FORMAT_VERSION = 1
LAG_SEPARATOR = "@t-"  # input column names: "feature@t-k", feature k bars before the origin

BASELINE_FAMILY = "baseline"  # the ensemble family of the reference forecasts (naive, drift)
CAPABILITIES = ("is_neural", "supports_mc_dropout", "has_attention", "onnx_exportable", "has_feature_importance", "supports_direction")
# What a model forecasts per horizon: the target itself, or the probability that the close
# at t+h is above the close at t (targets 1.0 up, 0.0 otherwise).
TASKS = ("regression", "direction")


class ModelFileError(ValueError):
    """A saved model file is missing, unreadable or does not match its parameters."""


class CapabilityError(TypeError):
    """The model type does not offer the requested capability."""


class ForecastModel(ABC):
    """Multi-horizon forecaster: windows `(n, lookback, n_features)` -> `(n, H)`.

    Subclasses set `model_type`, `description`, `variants` (name -> hyperparameters,
    with a "default" entry whose keys are the valid override names), their
    `ensemble_family` (how the regime-weighted ensemble groups model types:
    "recurrent", "attention", "convolutional", "trees", "baseline", ...), a
    `search_space(trial)` for tuning (None: not tunable), `input_features` when
    they read fixed unscaled columns, and the capability flags they have.
    """

    model_type: ClassVar[str]
    description: ClassVar[str]
    variants: ClassVar[dict[str, dict[str, Any]]]
    ensemble_family: ClassVar[str]
    search_space: ClassVar[Callable[[Any], dict[str, Any]] | None] = None
    # The feature columns a type reads, unscaled, instead of the dataset's selected and
    # scaled features (None: the selected features).
    input_features: ClassVar[tuple[str, ...] | None] = None

    is_neural: ClassVar[bool] = False
    # Whether `fit` stops early on its second argument (the workflows then hand it a held-out
    # tail of the training part, keeping the validation part for the skill gate).
    stops_early: ClassVar[bool] = False
    supports_mc_dropout: ClassVar[bool] = False
    has_attention: ClassVar[bool] = False
    onnx_exportable: ClassVar[bool] = False
    has_feature_importance: ClassVar[bool] = False
    supports_direction: ClassVar[bool] = False
    # How `attributions` explains single forecasts (None: it does not).
    attribution_method: ClassVar[str | None] = None

    def __init__(
        self,
        input_shape: tuple[int, int],
        horizons: tuple[int, ...] = (1, 7, 30),
        variant: str = "default",
        task: str = "regression",
        **overrides: Any,
    ):
        check_choice("task", task, TASKS)
        if task == "direction" and not self.supports_direction:
            raise CapabilityError(f"model type {self.model_type!r} cannot forecast direction probabilities (task 'direction')")
        self.input_shape = tuple(input_shape)
        self.horizons = tuple(horizons)
        self.variant = variant
        self.task = task
        self.overrides = dict(overrides)

    # ----------------------------------------------------------------- interface
    @abstractmethod
    def fit(
        self,
        train: Windows,
        val: Windows,
        settings: FitSettings | None = None,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Learn from `train`, use `val` for early stopping (types with `stops_early`); return (and keep as
        `history_`) one dict per epoch: epoch, loss, val_loss, lr, seconds, val_mae_h{h}."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Point forecasts `(n, H)` float64 in target space (task "direction": probabilities of "up")."""

    def predict_samples(self, X: np.ndarray, n_samples: int, seed: int = 0) -> np.ndarray:
        """`(n_samples, n, H)` draws from the predictive distribution (MC dropout)."""
        self.require_capability("supports_mc_dropout")
        raise NotImplementedError

    def attention_weights(self, X: np.ndarray) -> np.ndarray:
        """Attention mass per timestep of the window `(n, lookback)`."""
        self.require_capability("has_attention")
        raise NotImplementedError

    def attributions(self, X: np.ndarray) -> np.ndarray:
        """Per window, horizon and feature (summed over lags) the contribution to the forecast,
        and last a reference value: `(n, H, n_features + 1)`, each row summing to the forecast."""
        raise CapabilityError(f"model type {self.model_type!r} has no per-forecast attributions")

    def feature_importance(self, feature_names: list[str]) -> pd.Series:
        """Importance per input column "feature@t-k", sorted descending."""
        self.require_capability("has_feature_importance")
        raise NotImplementedError

    def feature_importance_by_feature(self, feature_names: list[str]) -> pd.Series:
        """`feature_importance` summed over lags: one value per original feature, descending."""
        return importance_by_feature(self.feature_importance(feature_names))

    def n_parameters(self) -> int:
        """Number of learned values (network weights, tree leaves, fitted constants)."""
        return 0

    # ------------------------------------------------------------ hyperparameters
    def get_params(self) -> dict[str, Any]:
        """Constructor arguments (JSON-ready); `clone()` builds an unfitted twin from them."""
        return {
            "model_type": self.model_type,
            "input_shape": list(self.input_shape),
            "horizons": list(self.horizons),
            "variant": self.variant,
            "task": self.task,
            "overrides": dict(self.overrides),
        }

    def clone(self) -> ForecastModel:
        """An unfitted model with the same parameters."""
        return type(self)(self.input_shape, self.horizons, self.variant, self.task, **self.overrides)

    def hyperparameters(self) -> dict[str, Any]:
        """The variant's hyperparameters with the overrides applied (validated)."""
        check_choice(f"{self.model_type} variant", self.variant, self.variants)
        valid = self.variants["default"]
        unknown = sorted(set(self.overrides) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown {self.model_type} override(s) {unknown}; valid names: {sorted(valid)}"
            )
        return {**self.variants[self.variant], **self.overrides}

    def training_defaults(self) -> dict[str, Any]:
        """Training settings the model declares for itself (saved in params.json)."""
        return {}

    def require_capability(self, flag: str) -> None:
        """Raise CapabilityError unless this model type has capability `flag`."""
        if flag not in CAPABILITIES:
            raise ValueError(f"unknown capability {flag!r}; valid: {list(CAPABILITIES)}")
        if not getattr(self, flag):
            raise CapabilityError(f"model type {self.model_type!r} does not have capability {flag!r}")

    # ----------------------------------------------------------------- fitted state
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "history_")

    def check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{self.model_type} model is not fitted yet; call fit() or load_model() first")

    def check_windows(self, X: np.ndarray, where: str) -> np.ndarray:
        """`X` as a float32 array `(n, lookback, n_features)` matching `input_shape`."""
        return check_windows(X, self.input_shape, f"{self.model_type}.{where}")

    def check_training_windows(self, windows: Windows, name: str) -> None:
        """Refuse windows whose shapes do not match the model or that hold non-finite values."""
        self.check_windows(windows.X, f"fit({name})")
        if windows.y.shape != (len(windows.X), len(self.horizons)):
            raise ValueError(
                f"{self.model_type}.fit: {name}.y must have shape ({len(windows.X)}, {len(self.horizons)}) "
                f"for horizons {self.horizons}, got {windows.y.shape}"
            )
        if len(windows) == 0:
            raise ValueError(f"{self.model_type}.fit: {name} split is empty")
        finite_x = windows.X.all_finite() if isinstance(windows.X, WindowArray) else np.isfinite(windows.X).all()
        if not (finite_x and np.isfinite(windows.y).all()):
            raise ValueError(f"{self.model_type}.fit: {name} holds NaN or infinite values")

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write the model's files, then `params.json` last (its presence marks a complete save)."""
        self.check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._write_state(directory)
        atomic_write_json(directory / PARAMS_FILE, {
            "format_version": FORMAT_VERSION,
            **self.get_params(),
            "hyperparameters": self.hyperparameters(),
            "training_defaults": self.training_defaults(),
            "fitted": {"history": self.history_, **self._fitted_values()},
        })
        return directory

    @classmethod
    def from_saved(cls, directory: Path, params: dict[str, Any]) -> ForecastModel:
        """Rebuild a model saved by `save` from its directory and parsed params.json."""
        model = cls(
            tuple(params["input_shape"]), tuple(params["horizons"]), params["variant"], params.get("task", "regression"), **params["overrides"]
        )
        fitted = params.get("fitted", {})
        model._read_state(Path(directory), fitted)
        model.history_ = list(fitted.get("history", []))
        return model

    @abstractmethod
    def _write_state(self, directory: Path) -> None:
        """Write learned weights (not params.json) into `directory`, atomically."""

    @abstractmethod
    def _read_state(self, directory: Path, fitted: dict[str, Any]) -> None:
        """Restore learned state from `directory` and the `fitted` values of params.json."""

    def _fitted_values(self) -> dict[str, Any]:
        """Small learned values kept in params.json (JSON-ready)."""
        return {}

    def __repr__(self) -> str:
        extra = f", {self.overrides}" if self.overrides else ""
        return f"{type(self).__name__}({self.model_type!r}, variant={self.variant!r}{extra})"


def check_choice(what: str, value: str, valid: dict | tuple | list) -> None:
    """Raise ValueError naming `what` and the valid values unless `value` is one of them."""
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {sorted(valid)}")


def check_windows(X: np.ndarray | WindowArray, input_shape: tuple[int, ...], where: str) -> np.ndarray | WindowArray:
    """`X` as a float32 array `(n, lookback, n_features)` matching `input_shape`
    (any window shape when `input_shape` is empty, i.e. unknown); a WindowArray stays lazy."""
    if not isinstance(X, WindowArray):
        X = np.asarray(X, dtype=np.float32)
    if X.ndim != 3 or (input_shape and X.shape[1:] != tuple(input_shape)):
        expected = ", ".join(str(v) for v in input_shape or ("lookback", "n_features"))
        raise ValueError(f"{where}: windows must have shape (n, {expected}), got {X.shape}")
    return X


def read_params(directory: str | Path) -> dict[str, Any]:
    """Parse `directory/params.json`, refusing a missing or corrupt file with its path."""
    path = Path(directory) / PARAMS_FILE
    if not path.is_file():
        raise ModelFileError(f"{path} does not exist: not a saved model directory")
    try:
        params = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise ModelFileError(f"{path} must hold a JSON object")
    missing = [k for k in ("model_type", "input_shape", "horizons", "variant", "overrides") if k not in params]
    if missing:
        raise ModelFileError(f"{path} lacks required field(s) {missing}")
    return params


def importance_by_feature(importance: pd.Series) -> pd.Series:
    """Sum a "feature@t-k" importance over lags k: one value per feature, descending."""
    features = importance.index.str.rsplit(LAG_SEPARATOR, n=1).str[0]
    return importance.groupby(features).sum().sort_values(ascending=False, kind="stable")


def horizon_mae(y_true: np.ndarray, y_pred: np.ndarray, horizons: tuple[int, ...]) -> dict[str, float]:
    """`{"val_mae_h{h}": MAE}` per horizon, in target space."""
    errors = np.abs(np.asarray(y_pred, dtype=float) - np.asarray(y_true, dtype=float)).mean(axis=0)
    return {f"val_mae_h{h}": float(e) for h, e in zip(horizons, errors)}


def one_pass_history(
    model: ForecastModel,
    train: Windows,
    val: Windows,
    train_prediction: np.ndarray,
    val_prediction: np.ndarray,
    started: float,
    on_epoch: Callable[[dict], None] | None,
) -> list[dict]:
    """The one-row history of a model fitted in one pass (kept as `history_` and passed to
    `on_epoch`): training MAE as the loss, validation MAE per horizon."""
    val_mae = horizon_mae(val.y, np.broadcast_to(val_prediction, val.y.shape), model.horizons)
    loss = float(np.abs(train_prediction - train.y).mean())
    model.history_ = [mae_history_row(1, loss, val_mae, lr=0.0, seconds=time.perf_counter() - started)]
    if on_epoch is not None:
        on_epoch(model.history_[0])
    return model.history_


def mae_history_row(epoch: int, loss: float, val_mae: dict[str, float], lr: float, seconds: float) -> dict[str, Any]:
    """One `history_` row of a model scored by MAE: val_loss is `val_mae` averaged over horizons."""
    return {
        "epoch": epoch,
        "loss": loss,
        "val_loss": float(np.mean(list(val_mae.values()))),
        "lr": lr,
        "seconds": seconds,
        **val_mae,
    }
