"""Statistical baselines: AutoARIMA and AutoETS on log close, fitted with statsforecast.

Both read one input column, the bar's log return (`price_logret_1`, unscaled),
so a window of `lookback` returns is the recent log-close path up to a
constant. `fit` rebuilds the training part's log-close path from the training
windows (consecutive origins overlap by all but one bar) and lets statsforecast
choose and estimate the model on it. Forecasting needs no refit: the fitted
recursion is run over each window from its first bar, which advances the
model's state to the window's origin, then projected `h` bars ahead.

- ARIMA(p, 1, q) with drift: the differencing order is fixed at 1, because a
  window carries returns, not the price level (log close is a random walk in
  levels on every series atb trades). Innovations before the window are taken
  as zero (conditional least squares); for an invertible MA part their effect
  decays geometrically over the window.
- ETS with additive errors, no, additive or damped trend and no season (AutoETS
  "AZN"). The level starts at the window's first log close and the trend at the
  trend state reached at the end of the training part; with the smoothing
  weights fitted on daily crypto closes the level adapts within a few bars.
  h bars ahead is level + (phi + ... + phi^h) * trend, the textbook damped
  forecast (statsforecast 2.1.1's own forecast adds phi once more from the
  second step on).

Fitted values are plain numbers in params.json (no pickle).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from atb.models.base import ForecastModel, one_pass_history
from atb.models.trainer import FitSettings
from atb.windows import Windows

RETURN_FEATURE = "price_logret_1"


class _StatisticalModel(ForecastModel):
    """A univariate model of log close, applied to each window's return path."""

    input_features: ClassVar[tuple[str, ...]] = (RETURN_FEATURE,)
    variants = {"default": {}}
    ensemble_family = "statistical"

    def fit(
        self,
        train: Windows,
        val: Windows,
        settings: FitSettings | None = None,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> list[dict]:
        started = time.perf_counter()
        if self.input_shape[1] != len(self.input_features):
            raise ValueError(f"{self.model_type} reads the column(s) {list(self.input_features)}; its windows must have "
                             f"{len(self.input_features)} feature(s), input_shape is {self.input_shape}")
        self.check_training_windows(train, "train")
        self.check_training_windows(val, "val")
        self.hyperparameters()
        self._fit_path(np.concatenate([[0.0], np.cumsum(_return_path(train.X))]))
        return one_pass_history(self, train, val, self._forecast(train.X), self._forecast(val.X), started, on_epoch)

    def predict(self, X: np.ndarray) -> np.ndarray:
        self.check_fitted()
        return self._forecast(X)

    def _forecast(self, X: np.ndarray) -> np.ndarray:
        """Cumulative log return to each horizon, from each window's return path."""
        returns = self.check_windows(X, "predict")[:, :, 0].astype(np.float64)
        steps = max(self.horizons)
        paths = np.array([self._forecast_returns(window, steps) for window in returns])  # (n, steps)
        cumulative = np.cumsum(paths, axis=1)
        return cumulative[:, [h - 1 for h in self.horizons]]

    def n_parameters(self) -> int:
        return len(self._fitted_values())

    def _write_state(self, directory: Path) -> None:
        """Everything learned fits in params.json."""

    def _fit_path(self, log_close: np.ndarray) -> None:
        raise NotImplementedError

    def _forecast_returns(self, returns: np.ndarray, steps: int) -> np.ndarray:
        """The next `steps` one-bar log returns after a window of returns."""
        raise NotImplementedError


class ArimaModel(_StatisticalModel):
    """AutoARIMA (statsforecast) on log close with d = 1; learned state `ar_`, `ma_`, `drift_`, `order_`."""

    model_type = "arima"
    description = "AutoARIMA on log close (statsforecast), d = 1 with drift; the state is run over each window."

    def _fit_path(self, log_close: np.ndarray) -> None:
        from statsforecast.models import AutoARIMA

        fitted = AutoARIMA(d=1, season_length=1, seasonal=False).fit(log_close).model_
        p, q = fitted["arma"][0], fitted["arma"][1]
        coef = {name: float(value) for name, value in fitted["coef"].items()}
        self.order_ = [int(p), 1, int(q)]
        self.ar_ = [coef[f"ar{i}"] for i in range(1, p + 1)]
        self.ma_ = [coef[f"ma{i}"] for i in range(1, q + 1)]
        self.drift_ = coef.get("drift", 0.0)

    def _forecast_returns(self, returns: np.ndarray, steps: int) -> np.ndarray:
        ar, ma, mean = np.asarray(self.ar_), np.asarray(self.ma_), self.drift_
        z = returns - mean
        errors = np.zeros(len(z) + steps)
        values = np.concatenate([z, np.zeros(steps)])
        for t in range(len(z) + steps):
            predicted = sum(ar[i] * values[t - 1 - i] for i in range(len(ar)) if t - 1 - i >= 0)
            predicted += sum(ma[j] * errors[t - 1 - j] for j in range(len(ma)) if t - 1 - j >= 0)
            if t < len(z):
                errors[t] = z[t] - predicted
            else:
                values[t] = predicted
        return values[len(z):] + mean

    def _read_state(self, directory: Path, fitted: dict[str, Any]) -> None:
        self.order_, self.ar_, self.ma_, self.drift_ = fitted["order"], fitted["ar"], fitted["ma"], float(fitted["drift"])

    def _fitted_values(self) -> dict[str, Any]:
        return {"order": self.order_, "ar": self.ar_, "ma": self.ma_, "drift": self.drift_}


class EtsModel(_StatisticalModel):
    """AutoETS (statsforecast, additive errors, no season) on log close; learned state
    `components_`, `alpha_`, `beta_`, `phi_` and `trend_` (the trend state at the end of training)."""

    model_type = "ets"
    description = "AutoETS on log close (statsforecast; additive errors, none/additive/damped trend); run over each window."

    def _fit_path(self, log_close: np.ndarray) -> None:
        from statsforecast.models import AutoETS

        fitted = AutoETS(season_length=1, model="AZN").fit(log_close).model_
        alpha, beta, _, phi = (float(v) for v in fitted["par"][:4])
        trend, damped = fitted["components"][1], fitted["components"][3] != "N"
        self.components_ = f"A{trend}{'d' if damped else ''}N"
        self.alpha_ = alpha
        self.beta_ = beta if trend == "A" else 0.0
        self.phi_ = phi if damped else 1.0
        self.trend_ = float(fitted["states"][-1, 1]) if trend == "A" else 0.0

    def _forecast_returns(self, returns: np.ndarray, steps: int) -> np.ndarray:
        log_close = np.concatenate([[0.0], np.cumsum(returns)])
        level, trend = log_close[0], self.trend_
        for y in log_close[1:]:
            error = y - (level + self.phi_ * trend)
            level = level + self.phi_ * trend + self.alpha_ * error
            trend = self.phi_ * trend + self.beta_ * error
        damping = np.cumsum(self.phi_ ** np.arange(1, steps + 1))
        forecast = level + damping * trend  # log close 1..steps bars ahead
        return np.diff(np.concatenate([[log_close[-1]], forecast]))

    def _read_state(self, directory: Path, fitted: dict[str, Any]) -> None:
        self.components_ = fitted["components"]
        self.alpha_, self.beta_, self.phi_, self.trend_ = (float(fitted[k]) for k in ("alpha", "beta", "phi", "trend"))

    def _fitted_values(self) -> dict[str, Any]:
        return {"components": self.components_, "alpha": self.alpha_, "beta": self.beta_, "phi": self.phi_, "trend": self.trend_}


def _return_path(X: np.ndarray) -> np.ndarray:
    """The one-bar returns the training windows cover, in order: the first window whole, then
    the last bar of each later window while windows follow one another bar by bar (a global
    model's other series, appended after the target's windows, are not used)."""
    returns = np.asarray(X[:, :, 0], dtype=np.float64)
    follows = np.all(np.isclose(returns[1:, :-1], returns[:-1, 1:], rtol=0, atol=1e-7), axis=1)
    run = len(returns) if follows.all() else int(np.argmin(follows)) + 1
    return np.concatenate([returns[0], returns[1:run, -1]])
