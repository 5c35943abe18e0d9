"""Four ways to combine base-model forecasts into one.

Common shapes: base predictions are a ``dict[name, (n, H)]`` (the order of the
dict is the model order everywhere), targets ``(n, H)``, regime labels ``(n,)``.
Anything learned (stacking coefficients, online accuracy state) is fitted on
validation origins only; test targets are used solely as they are realised.

- ``FixedWeights``: constant weights.
- ``RegimeWeights``: the fixed weights tilted towards the model family suited
  to each bar's regime (a model type declares its ``ensemble_family``).
- ``StackingMetaLearner``: one non-negative ElasticNet per horizon on the base
  predictions, fitted on the validation window and refusing anything else.
- ``OnlineWeights``: inverse-MSE weights from an exponential moving average of
  each model's realised errors, honouring when each target becomes known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import ElasticNet

from atb.ensemble.regime import REGIMES

DEFAULT_WEIGHTS = {"enhanced_lstm": 0.35, "transformer": 0.40, "lightgbm": 0.25}
# Regime -> the model families it favours (an empty tuple: equal weights).
REGIME_FAVOURS: dict[str, tuple[str, ...]] = {
    "trending": ("recurrent",),
    "mean_reverting": ("trees",),
    "volatile": ("attention",),
    "ranging": (),
}


def stack_predictions(predictions: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """Model names and the predictions as one ``(n, M, H)`` array, shapes checked."""
    if not predictions:
        raise ValueError("no base-model predictions given")
    names = list(predictions)
    arrays = [np.asarray(predictions[name], dtype=float) for name in names]
    for name, array in zip(names, arrays):
        if array.ndim != 2:
            raise ValueError(f"predictions of {name!r} must be (n, H), got shape {array.shape}")
        if array.shape != arrays[0].shape:
            raise ValueError(
                f"predictions of {name!r} have shape {array.shape}, {names[0]!r} has {arrays[0].shape}"
            )
    return names, np.stack(arrays, axis=1)


class FixedWeights:
    """Constant weights, normalised over the models present.

    ``weights=None`` uses ``DEFAULT_WEIGHTS`` when every model is named there and
    equal weights otherwise. An explicit mapping must name every model combined.
    """

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        self.weights = weights

    def weights_of(self, names: Sequence[str]) -> pd.Series:
        """Normalised weight of each model in ``names``."""
        names = list(names)
        if self.weights is not None:
            missing = [name for name in names if name not in self.weights]
            if missing:
                raise ValueError(f"no weight given for models {missing}; weights name {list(self.weights)}")
            raw = pd.Series({name: float(self.weights[name]) for name in names})
        elif all(name in DEFAULT_WEIGHTS for name in names):
            raw = pd.Series({name: DEFAULT_WEIGHTS[name] for name in names})
        else:
            raw = pd.Series(1.0, index=names)
        if (raw < 0).any() or raw.sum() <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {raw.to_dict()}")
        return raw / raw.sum()

    def combine(self, predictions: Mapping[str, np.ndarray]) -> np.ndarray:
        names, stacked = stack_predictions(predictions)
        return np.einsum("nmh,m->nh", stacked, self.weights_of(names).to_numpy())

    def weights_for(self, n: int, names: Sequence[str] | None = None) -> pd.DataFrame:
        """The weights of ``n`` origins, one row each (models: ``names``, by default those weighted)."""
        names = list(names if names is not None else (self.weights or DEFAULT_WEIGHTS))
        weights = self.weights_of(names)
        return pd.DataFrame(np.tile(weights.to_numpy(), (n, 1)), columns=names)


class RegimeWeights:
    """Fixed weights tilted per regime (``REGIME_FAVOURS``), then renormalised.

    ``families`` maps each model name to its family (``ensemble_family`` of its
    type). In a regime, every model of a favoured family has its weight
    multiplied by ``1 + tilt``; when no model present is favoured the base
    weights stay; a regime favouring nothing (``ranging``) uses equal weights.
    Nothing is learned, so there is no ``fit``.
    """

    def __init__(
        self, families: Mapping[str, str], base_weights: Mapping[str, float] | None = None, tilt: float = 0.5
    ) -> None:
        self.families = families
        self.base_weights = base_weights
        self.tilt = tilt

    def weights_in(self, regime: str, names: Sequence[str]) -> pd.Series:
        """Normalised weight of each model in ``names`` during ``regime``."""
        if regime not in REGIME_FAVOURS:
            raise ValueError(f"unknown regime '{regime}'; valid regimes: {REGIMES}")
        if self.tilt < 0:
            raise ValueError(f"RegimeWeights.tilt must be >= 0, got {self.tilt!r}")
        missing = [name for name in names if name not in self.families]
        if missing:
            raise ValueError(f"no ensemble family given for models {missing}; families name {list(self.families)}")
        favoured = REGIME_FAVOURS[regime]
        if not favoured:
            return pd.Series(1.0 / len(names), index=list(names))
        base = FixedWeights(self.base_weights).weights_of(names)
        boost = [1.0 + self.tilt if self.families[name] in favoured else 1.0 for name in names]
        tilted = base * np.asarray(boost)
        return tilted / tilted.sum()

    def weights_over_time(self, regimes: Sequence[str], names: Sequence[str]) -> pd.DataFrame:
        """Weights ``(n, M)`` at each origin; index from ``regimes`` when it is a Series."""
        names = list(names)
        table = {regime: self.weights_in(regime, names).to_numpy() for regime in dict.fromkeys(regimes)}
        rows = np.array([table[regime] for regime in regimes]).reshape(len(regimes), len(names))
        index = regimes.index if isinstance(regimes, pd.Series) else None
        return pd.DataFrame(rows, columns=names, index=index)

    def combine(self, predictions: Mapping[str, np.ndarray], regimes: Sequence[str]) -> np.ndarray:
        names, stacked = stack_predictions(predictions)
        if len(regimes) != len(stacked):
            raise ValueError(f"got {len(regimes)} regime labels for {len(stacked)} origins")
        weights = self.weights_over_time(regimes, names).to_numpy()
        return np.einsum("nmh,nm->nh", stacked, weights)


class StackingMetaLearner:
    """One ElasticNet per horizon over the base predictions, fitted on validation origins only.

    ``fit`` takes the origin time of every row and the validation window
    ``(val_start, val_end)`` and raises when any origin lies outside it, so
    training-part predictions (in-sample, over-confident) or test-part targets
    cannot reach the meta-learner. ``alpha`` is in units of each horizon's
    validation target variance, so one value suits every horizon.
    """

    def __init__(
        self, alpha: float = 0.01, l1_ratio: float = 0.5, positive: bool = True, fit_intercept: bool = True
    ) -> None:
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.positive = positive
        self.fit_intercept = fit_intercept

    def fit(
        self,
        val_predictions: Mapping[str, np.ndarray],
        y_val: np.ndarray,
        origin_time: Sequence,
        val_window: tuple,
    ) -> StackingMetaLearner:
        names, stacked = stack_predictions(val_predictions)
        y_val = np.asarray(y_val, dtype=float)
        _check_validation_origins(origin_time, val_window, len(stacked))
        if y_val.shape != (stacked.shape[0], stacked.shape[2]):
            raise ValueError(f"y_val has shape {y_val.shape}, predictions need {(stacked.shape[0], stacked.shape[2])}")
        if not (np.all(np.isfinite(stacked)) and np.all(np.isfinite(y_val))):
            raise ValueError("validation predictions and targets must be finite")
        self.models_ = []
        for h in range(y_val.shape[1]):
            scale = max(float(np.var(y_val[:, h])), np.finfo(float).tiny)
            model = ElasticNet(
                alpha=self.alpha * scale,
                l1_ratio=self.l1_ratio,
                positive=self.positive,
                fit_intercept=self.fit_intercept,
            )
            self.models_.append(model.fit(stacked[:, :, h], y_val[:, h]))
        self.names_ = names
        return self

    def combine(self, predictions: Mapping[str, np.ndarray]) -> np.ndarray:
        self._check_fitted()
        missing = [name for name in self.names_ if name not in predictions]
        if missing:
            raise ValueError(f"predictions lack models {missing} the meta-learner was fitted on")
        _, stacked = stack_predictions({name: predictions[name] for name in self.names_})
        if stacked.shape[2] != len(self.models_):
            raise ValueError(f"predictions have {stacked.shape[2]} horizons, fitted on {len(self.models_)}")
        return np.column_stack([model.predict(stacked[:, :, h]) for h, model in enumerate(self.models_)])

    def coefficients(self) -> pd.DataFrame:
        """Coefficient of each model and the intercept, one row per horizon position."""
        self._check_fitted()
        rows = [[*model.coef_, float(model.intercept_)] for model in self.models_]
        frame = pd.DataFrame(rows, columns=[*self.names_, "intercept"])
        frame.index.name = "horizon"
        return frame

    def _check_fitted(self) -> None:
        if not hasattr(self, "models_"):
            raise RuntimeError("StackingMetaLearner is not fitted: call fit(...) on validation origins first")


class OnlineWeights:
    """Weights that follow each model's recently realised accuracy.

    Per horizon ``h`` (bars; origins are consecutive bars), the error of origin
    ``s`` is realised at bar ``s + h``; the weights used at origin ``t`` rely
    only on errors of origins ``s <= t - h``. Each model's squared errors feed a
    bias-corrected exponential moving average (span ``window``); its data weight
    is ``(1 / EMA) ** power``, normalised. The weight used is
    ``(1 - c) * initial + c * data weight`` with ``c = 1 - (1 - a) ** k`` after
    ``k`` realised errors (``a = 2 / (window + 1)``), so it starts from the
    initial (fixed) weights and moves to the data as evidence accumulates.

    ``fit`` runs the recursion over the validation part and keeps its state,
    including the validation errors not yet realised at its end, which are
    absorbed when due; ``combine`` continues from there (or from the initial
    weights when not fitted) and does not change the state.
    """

    def __init__(
        self,
        window: int = 50,
        initial: Mapping[str, float] | None = None,
        power: float = 1.0,
        horizons: Sequence[int] = (1, 7, 30),
    ) -> None:
        self.window = window
        self.initial = initial
        self.power = power
        self.horizons = horizons

    def fit(self, val_predictions: Mapping[str, np.ndarray], y_val: np.ndarray) -> OnlineWeights:
        names, stacked = stack_predictions(val_predictions)
        _, _, self.state_ = self._run(names, stacked, y_val, self._empty_state(stacked.shape[1:]))
        self.names_ = names
        return self

    def combine(
        self, predictions: Mapping[str, np.ndarray], y_true: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Combined forecasts ``(n, H)`` and the weights used ``(n, M, H)``, origins in time order.

        ``y_true`` may hold NaN for targets not realised yet; they are skipped.
        """
        names, stacked = stack_predictions(predictions)
        if hasattr(self, "state_"):
            if names != self.names_:
                raise ValueError(f"models {names} differ from those fitted {self.names_} (same order needed)")
            state = self.state_
        else:
            state = self._empty_state(stacked.shape[1:])
        combined, weights, _ = self._run(names, stacked, y_true, state)
        return combined, weights

    def weights_after(self, realised: Sequence[np.ndarray]) -> np.ndarray:
        """The weights `(M, H)` once the fitted state has absorbed the validation errors still
        pending at its end and then, per horizon j, `realised[j]`: squared errors `(k_j, M)` of
        later origins in the order they became known (e.g. from a log of served forecasts)."""
        if not hasattr(self, "state_"):
            raise RuntimeError("OnlineWeights is not fitted: call fit(...) on validation origins first")
        horizons = self._checked_horizons(self.state_["ema"].shape[1])
        if len(realised) != len(horizons):
            raise ValueError(f"realised errors are given for {len(realised)} horizons, the weights have {len(horizons)}")
        initial = FixedWeights(self.initial).weights_of(self.names_).to_numpy()
        decay = 1.0 - 2.0 / (self.window + 1.0)
        ema, count = self.state_["ema"].copy(), self.state_["realised"].copy()
        weights = np.empty_like(ema)
        for j, horizon in enumerate(horizons):
            pending = self.state_["recent_errors"][-horizon:, :, j]
            for errors in (*pending, *np.asarray(realised[j], dtype=float).reshape(-1, len(self.names_))):
                if np.all(np.isfinite(errors)):
                    ema[:, j] = decay * ema[:, j] + (1.0 - decay) * errors
                    count[j] += 1
            weights[:, j] = self._weights(ema[:, j], count[j], initial, decay)
        return weights

    def state_dict(self) -> dict:
        """The fitted state and settings as JSON-ready values (`from_state_dict` restores them)."""
        return {
            "window": self.window, "initial": dict(self.initial or {}), "power": self.power, "horizons": [int(h) for h in self.horizons],
            "names": list(self.names_), **{key: np.asarray(value).tolist() for key, value in self.state_.items()},
        }

    @classmethod
    def from_state_dict(cls, values: dict) -> OnlineWeights:
        online = cls(window=int(values["window"]), initial=values["initial"] or None, power=float(values["power"]), horizons=tuple(values["horizons"]))
        online.names_ = list(values["names"])
        n_models, n_horizons = len(online.names_), len(online.horizons)
        online.state_ = {
            "ema": np.asarray(values["ema"], dtype=float).reshape(n_models, n_horizons),
            "realised": np.asarray(values["realised"], dtype=int).reshape(n_horizons),
            "recent_errors": np.asarray(values["recent_errors"], dtype=float).reshape(-1, n_models, n_horizons),
        }
        return online

    def _run(
        self, names: list[str], stacked: np.ndarray, y_true: np.ndarray, state: dict
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        n, n_models, n_horizons = stacked.shape
        horizons = self._checked_horizons(n_horizons)
        y_true = np.asarray(y_true, dtype=float)
        if y_true.shape != (n, n_horizons):
            raise ValueError(f"targets have shape {y_true.shape}, predictions need {(n, n_horizons)}")
        initial = FixedWeights(self.initial).weights_of(names).to_numpy()
        decay = 1.0 - 2.0 / (self.window + 1.0)
        errors = np.concatenate([state["recent_errors"], (stacked - y_true[:, None, :]) ** 2])
        offset = len(state["recent_errors"])
        ema, realised = state["ema"].copy(), state["realised"].copy()
        weights = np.empty((n, n_models, n_horizons))
        for i in range(n):
            for j, horizon in enumerate(horizons):
                due = offset + i - horizon
                if due >= 0 and np.all(np.isfinite(errors[due, :, j])):
                    ema[:, j] = decay * ema[:, j] + (1.0 - decay) * errors[due, :, j]
                    realised[j] += 1
                weights[i, :, j] = self._weights(ema[:, j], realised[j], initial, decay)
        combined = np.einsum("nmh,nmh->nh", stacked, weights)
        keep = max(horizons)
        new_state = {"ema": ema, "realised": realised, "recent_errors": errors[-keep:]}
        return combined, weights, new_state

    def _weights(self, ema: np.ndarray, realised: int, initial: np.ndarray, decay: float) -> np.ndarray:
        if realised == 0:
            return initial
        confidence = 1.0 - decay**realised
        mse = ema / confidence + np.finfo(float).eps
        data = mse ** (-self.power)
        return (1.0 - confidence) * initial + confidence * data / data.sum()

    def _empty_state(self, shape: tuple[int, int]) -> dict:
        n_models, n_horizons = shape
        return {
            "ema": np.zeros((n_models, n_horizons)),
            "realised": np.zeros(n_horizons, dtype=int),
            "recent_errors": np.empty((0, n_models, n_horizons)),
        }

    def _checked_horizons(self, n_horizons: int) -> list[int]:
        horizons = [int(h) for h in self.horizons]
        if len(horizons) != n_horizons or any(h < 1 for h in horizons):
            raise ValueError(
                f"OnlineWeights.horizons={tuple(self.horizons)} must list {n_horizons} positive horizons "
                "(one per prediction column)"
            )
        if self.window < 1 or self.power < 0:
            raise ValueError(f"OnlineWeights needs window >= 1 and power >= 0, got {self.window}, {self.power}")
        return horizons


def _check_validation_origins(origin_time: Sequence, val_window: tuple, n: int) -> None:
    times = pd.Index(np.asarray(origin_time))
    if len(times) != n:
        raise ValueError(f"got {len(times)} origin times for {n} validation rows")
    val_start, val_end = val_window
    if val_start > val_end:
        raise ValueError(f"val_window start {val_start!r} is after its end {val_end!r}")
    outside = (times < val_start) | (times > val_end)
    if outside.any():
        raise ValueError(
            f"{int(outside.sum())} of {n} origins lie outside the validation window "
            f"[{val_start!r}, {val_end!r}] (first: {times[outside][0]!r}); the meta-learner "
            "is fitted on validation origins only"
        )
