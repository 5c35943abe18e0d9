"""Fit every combination method on validation-part predictions and score them on the test part.

The stacking meta-learner is the one served (chosen before any test result);
fixed, regime and online weights are evaluated beside it. Conformal intervals
are calibrated on cross-fitted validation stacking predictions; MC-dropout and
mixture intervals are scored on the test part for the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from atb.config import ProductionSpec
from atb.dataset import Dataset, Split
from atb.ensemble.combiners import FixedWeights, OnlineWeights, RegimeWeights, StackingMetaLearner
from atb.ensemble.regime import RegimeDetector, regime_shares
from atb.ensemble.spec import LEVELS, EnsembleSpec
from atb.ensemble.uncertainty import (
    ConformalIntervals,
    combine_uncertainty,
    coverage,
    gaussian_interval,
    mc_moments,
    mean_width,
)
from atb.models import ForecastModel
from atb.models.gate import SkillGate

CROSS_FIT_BLOCKS = 5
SERVED_METHOD = "ensemble_stacking"
# (val_prediction, val_target, drift, horizons) -> the skill gate; see atb.evaluation.skill
GateFitter = Callable[[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]], SkillGate]


@dataclass
class FittedEnsemble:
    """Every combination's test forecast, the served spec and what the report and plots show."""

    test_predictions: dict[str, np.ndarray]  # base names and ensemble_{fixed,regime,stacking,online} -> (n, H)
    validation_predictions: dict[str, np.ndarray]  # the bases' and the cross-fitted stacking forecasts of the validation part
    spec: EnsembleSpec
    online_weights: pd.DataFrame  # test origins x bases, weight at the first horizon
    test_regimes: pd.Series  # regime label per test origin
    regime_shares: dict[str, dict[str, float]]  # split -> regime -> share of origins
    uncertainty: dict  # interval coverage and width per method and level
    stacking_coefficients: dict[str, dict[str, float]]  # "h{h}" -> intercept and one coefficient per base

    @property
    def served_prediction(self) -> np.ndarray:
        return self.test_predictions[SERVED_METHOD]


def fit_ensemble(
    dataset: Dataset,
    close: pd.Series,
    models: dict[str, ForecastModel],
    val_preds: dict[str, np.ndarray],
    test_preds: dict[str, np.ndarray],
    test_windows: dict[str, np.ndarray],
    spec: ProductionSpec,
    seed: int,
    fit_gate: GateFitter | None = None,
) -> FittedEnsemble:
    """Every combination method on the test part, fitted on validation predictions only.

    `val_preds` and `test_preds` are each model's forecasts of the validation and test
    origins of `dataset` (which gives the targets and times); `test_windows` each model's
    own input windows of the test origins (for MC dropout); `close` gives the regimes.
    `fit_gate(val_prediction, val_target, drift, horizons)` puts a skill gate in front of the
    served stacking forecast, fitted on its cross-fitted validation predictions; the
    ungated stacking forecast is reported beside it as `ensemble_stacking_raw`."""
    val, test = dataset.val, dataset.test

    detector = regime_detector(close, dataset)
    regimes = regimes_by_split(close, dataset, detector)
    test_regimes = regimes["test"]

    names = list(models)
    fixed = FixedWeights()
    fixed_weights = {name: float(weight) for name, weight in fixed.weights_of(names).items()}
    families = {name: m.ensemble_family for name, m in models.items()}
    regime = RegimeWeights(families=families, base_weights=fixed_weights)
    val_window = (val.origin_time[0], val.origin_time[-1])
    stacking = StackingMetaLearner().fit(val_preds, val.y, val.origin_time, val_window)
    online = OnlineWeights(horizons=dataset.horizons, initial=fixed_weights).fit(val_preds, val.y)
    online_test, online_weights = online.combine(test_preds, test.y)

    raw_stacking, raw_cross_fitted = stacking.combine(test_preds), cross_fitted_stacking(val_preds, val)
    gate = fit_gate(raw_cross_fitted, val.y, dataset.train.y.mean(axis=0), dataset.horizons) if fit_gate else None
    cross_fitted = gate.apply(raw_cross_fitted) if gate else raw_cross_fitted
    test_predictions = {
        **test_preds,
        "ensemble_fixed": fixed.combine(test_preds),
        "ensemble_regime": regime.combine(test_preds, test_regimes),
        SERVED_METHOD: gate.apply(raw_stacking) if gate else raw_stacking,
        **({f"{SERVED_METHOD}_raw": raw_stacking} if gate else {}),
        "ensemble_online": online_test,
    }

    conformal = ConformalIntervals(LEVELS).fit(cross_fitted, val.y)
    residual_std = {
        name: np.std(val_preds[name] - val.y, axis=0, ddof=1).tolist()
        for name, m in models.items()
        if not (m.supports_mc_dropout and spec.uncertainty)
    }
    uncertainty = interval_report(
        spec, seed, models, test, test_windows, test_preds, test_predictions[SERVED_METHOD], conformal, residual_std, fixed_weights
    )

    fitted = stacking.coefficients()
    coef = fitted[names].to_numpy(dtype=float)
    ensemble_spec = EnsembleSpec(
        bases={name: name for name in names},  # replaced by registry refs once the bases are stored
        horizons=dataset.horizons,
        intercept=fitted["intercept"].to_numpy(dtype=float),
        coefficients=coef,
        fixed_weights=fixed_weights,
        conformal={str(level): conformal.quantiles_[level].tolist() for level in LEVELS},
        residual_std=residual_std,
        mc_samples=spec.mc_samples if spec.uncertainty else 1,
        gate=gate,
        regime={"detector": detector.to_dict(), "families": families, "tilt": regime.tilt},
        online=online.state_dict(),
    )
    return FittedEnsemble(
        test_predictions=test_predictions,
        validation_predictions={
            **val_preds, SERVED_METHOD: cross_fitted, **({f"{SERVED_METHOD}_raw": raw_cross_fitted} if gate else {})
        },
        spec=ensemble_spec,
        online_weights=pd.DataFrame(online_weights[:, :, 0], index=pd.DatetimeIndex(test.origin_time), columns=names),
        test_regimes=pd.Series(test_regimes, index=pd.DatetimeIndex(test.origin_time)),
        regime_shares={name: regime_shares(labels) for name, labels in regimes.items()},
        uncertainty=uncertainty,
        stacking_coefficients={
            f"h{h}": {"intercept": float(ensemble_spec.intercept[j]), **dict(zip(names, map(float, coef[j])))}
            for j, h in enumerate(dataset.horizons)
        },
    )


def regime_detector(close: pd.Series, dataset: Dataset) -> RegimeDetector:
    """The regime detector with its thresholds fitted on the training part."""
    return RegimeDetector().fit(close, pd.Timestamp(dataset.train.origin_time[-1]))


def regimes_by_split(close: pd.Series, dataset: Dataset, detector: RegimeDetector | None = None) -> dict[str, np.ndarray]:
    """Regime label of every origin per split; thresholds fitted on the training part (or `detector`'s)."""
    labels = (detector or regime_detector(close, dataset)).transform(close)
    return {
        name: labels.loc[pd.DatetimeIndex(part.origin_time)].to_numpy()
        for name, part in (("train", dataset.train), ("val", dataset.val), ("test", dataset.test))
    }


def cross_fitted_stacking(val_preds: dict[str, np.ndarray], val: Split) -> np.ndarray:
    """Out-of-block stacking predictions on the validation part (contiguous blocks),
    so conformal calibration does not use in-sample residuals."""
    n = len(val)
    out = np.empty_like(val.y, dtype=float)
    window = (val.origin_time[0], val.origin_time[-1])
    for block in np.array_split(np.arange(n), CROSS_FIT_BLOCKS):
        rest = np.setdiff1d(np.arange(n), block)
        learner = StackingMetaLearner().fit(
            {k: v[rest] for k, v in val_preds.items()}, val.y[rest], val.origin_time[rest], window
        )
        out[block] = learner.combine({k: v[block] for k, v in val_preds.items()})
    return out


def interval_report(
    spec: ProductionSpec,
    seed: int,
    models: dict[str, ForecastModel],
    test: Split,
    test_windows: dict[str, np.ndarray],
    base_predictions: dict[str, np.ndarray],
    point: np.ndarray,
    conformal: ConformalIntervals,
    residual_std: dict[str, list[float]],
    fixed_weights: dict[str, float],
) -> dict:
    """Empirical coverage and width of MC-dropout and conformal intervals on the test part
    (`test_windows`: each model's input windows of `test`; `base_predictions`: each model's
    point forecast of `test`; `point`: the ensemble's)."""
    out: dict = {"levels": list(LEVELS), "conformal": {}, "mc_dropout": {}, "ensemble_mixture": {}}
    for level in LEVELS:
        lower, upper = conformal.interval(point, level)
        out["conformal"][str(level)] = _interval_stats(lower, upper, test.y)
    if not spec.uncertainty:
        out["mc_dropout"] = "off (--no-uncertainty)"
        return out
    means, stds = {}, {}
    for name, model in models.items():
        means[name], stds[name] = mc_moments(
            model, test_windows[name], spec.mc_samples, enabled=True, seed=seed, point=base_predictions[name]
        )
        if model.supports_mc_dropout:
            out["mc_dropout"][name] = {
                str(level): _interval_stats(*gaussian_interval(means[name], stds[name], level), test.y) for level in LEVELS
            }
            out["mc_dropout"][name]["mean_std"] = stds[name].mean(axis=0).tolist()
        else:
            stds[name] = np.broadcast_to(np.asarray(residual_std[name]), means[name].shape)
    mix_mean, mix_std = combine_uncertainty(means, stds, fixed_weights)
    out["ensemble_mixture"] = {str(level): _interval_stats(*gaussian_interval(mix_mean, mix_std, level), test.y) for level in LEVELS}
    return out


def _interval_stats(lower: np.ndarray, upper: np.ndarray, y: np.ndarray) -> dict:
    return {"coverage": coverage(lower, upper, y).tolist(), "mean_width": mean_width(lower, upper).tolist()}
