"""Reference forecasts every learned model is measured against.

Both work in log-return target space (the pipeline evaluates them there):
- NaiveModel: no change, log-return 0 at every horizon (tomorrow's close = today's);
- DriftModel: the random walk with drift, log-return h * c, where c is the mean
  one-bar log-return of the training period.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from atb.models.base import BASELINE_FAMILY, ForecastModel, one_pass_history
from atb.models.trainer import FitSettings
from atb.windows import Windows


class _Baseline(ForecastModel):
    """A closed-form forecast: fitting is one pass over the training targets."""

    variants = {"default": {}}
    ensemble_family = BASELINE_FAMILY

    def fit(
        self,
        train: Windows,
        val: Windows,
        settings: FitSettings | None = None,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        """Fit, then return a one-row history (MAE averaged over horizons as the loss)."""
        started = time.perf_counter()
        self.check_training_windows(train, "train")
        self.check_training_windows(val, "val")
        self.hyperparameters()
        self._fit_targets(np.asarray(train.y, dtype=np.float64))
        return one_pass_history(self, train, val, self._forecast(), self._forecast(), started, on_epoch)

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.check_fitted()
        X = self.check_windows(X, "predict")
        return np.tile(self._forecast(), (len(X), 1))

    def _fit_targets(self, y: np.ndarray) -> None:
        """Learn from the training targets `(n, H)`."""

    def _forecast(self) -> np.ndarray:
        """The forecast `(H,)` shared by every origin."""
        raise NotImplementedError

    def _write_state(self, directory: Path) -> None:
        """Everything learned fits in params.json."""

    def _read_state(self, directory: Path, fitted: dict[str, Any]) -> None:
        """Nothing beyond params.json to read."""


class NaiveModel(_Baseline):
    """No change: a log-return of 0 at every horizon, i.e. the forecast close is
    the origin's close. Learns nothing; `fit` records its errors like any model's."""

    model_type = "naive"
    description = "No-change forecast: every horizon's close equals the origin's close."

    def _forecast(self) -> np.ndarray:
        return np.zeros(len(self.horizons))


class DriftModel(_Baseline):
    """Random walk with drift: forecast log-return h * c at horizon h.

    c is the mean one-bar log-return over the training period, estimated as
    mean(y[:, j]) / h_j at the shortest horizon h_j (for h_j = 1 that is exactly
    (log close_end - log close_start) / n_bars, the textbook estimator).
    Learned state: `drift_per_bar_`.
    """

    model_type = "drift"
    description = "Random walk with drift: the mean training log-return per bar times the horizon."

    def _fit_targets(self, y: np.ndarray) -> None:
        shortest = int(np.argmin(self.horizons))
        self.drift_per_bar_ = float(y[:, shortest].mean() / self.horizons[shortest])

    def _forecast(self) -> np.ndarray:
        return self.drift_per_bar_ * np.asarray(self.horizons, dtype=np.float64)

    def n_parameters(self) -> int:
        return 1

    def _read_state(self, directory: Path, fitted: dict[str, Any]) -> None:
        self.drift_per_bar_ = float(fitted["drift_per_bar"])

    def _fitted_values(self) -> dict[str, Any]:
        return {"drift_per_bar": self.drift_per_bar_}
