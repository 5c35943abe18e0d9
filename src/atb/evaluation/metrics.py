"""Protocol metrics per horizon, in price space, on the test origins.

Every forecast is judged against the naive forecast (close at t+h = close at t)
on the same origins. Definitions the protocol leaves open are fixed here:

- ``mase`` scales the MAE by the MAE of the naive forecast on the same origins
  and horizon, so that, as the protocol asks of a skill score, below 1.0 beats
  the naive forecast and the naive forecast itself scores exactly 1.
  ``mase_insample`` is the textbook MASE (Hyndman & Koehler, 2006): the MAE
  over the in-sample MAE of the h-step naive forecast on the training closes,
  ``mean |c[t+h] - c[t]|``. Its scale is in training-period prices, so when
  the price level has moved (on the bundled BTC sample the test prices lie
  above every training price) even the naive forecast scores far from 1:
  compare it between models, not with 1.
- Directional accuracy counts an origin as a hit when
  ``sign(predicted - origin) == sign(actual - origin)``. Origins whose actual
  move is exactly zero are left out; a forecast of exactly zero change is
  counted as wrong (it calls no direction). The naive forecast therefore
  scores 0.
- The majority baseline always calls the more frequent actual direction of the
  evaluated origins ("up" on a tie). Its share is the null hypothesis of the
  one-sided exact binomial test of the hits.
- Diebold-Mariano uses Newey-West (Bartlett) weights over ``h - 1`` lags, which
  keep the long-run variance non-negative (the original rectangular weights can
  make it negative), the Harvey-Leybourne-Newbold factor and Student t with
  ``n - 1`` degrees of freedom.

All values are Python ``int``/``float``/``str``. A value is NaN only where it is
undefined: a zero denominator (naive RMSE or MAE, MASE scale, a constant actual series
for R²), no origin with a non-zero move (directional metrics), or too few
origins / zero variance for the Diebold-Mariano test.
"""

from __future__ import annotations

import logging
import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

from atb.evaluation.checks import finite_array, positive_prices, same_length

logger = logging.getLogger(__name__)

METRIC_KEYS = (
    "n",
    "rmse",
    "mae",
    "mape",
    "r2",
    "rmse_naive",
    "mae_naive",
    "rmse_ratio",
    "mase",
    "mase_insample",
    "directional_accuracy",
    "direction_n",
    "majority_direction",
    "majority_accuracy",
    "direction_pvalue",
    "dm_stat",
    "dm_pvalue",
)


def evaluate_horizon(
    origin_close: np.ndarray,
    actual_close: np.ndarray,
    predicted_close: np.ndarray,
    horizon: int,
    scale_series: np.ndarray,
) -> dict:
    """All protocol metrics of one horizon; keys are `METRIC_KEYS`.

    origin_close, actual_close, predicted_close: `(n,)` closes at t, at t+h,
    and forecast for t+h. scale_series: the training-part closes (for `mase_insample`).
    """
    origin = positive_prices("origin_close", origin_close)
    actual = positive_prices("actual_close", actual_close)
    predicted = finite_array("predicted_close", predicted_close)
    same_length(origin=origin, actual=actual, predicted=predicted)
    horizon = _valid_horizon(horizon)
    scale = naive_scale(scale_series, horizon)

    rmse = float(skm.root_mean_squared_error(actual, predicted))
    mae = float(skm.mean_absolute_error(actual, predicted))
    rmse_naive = float(skm.root_mean_squared_error(actual, origin))
    mae_naive = float(skm.mean_absolute_error(actual, origin))
    hits, direction_n = direction_hits(origin, actual, predicted)
    majority_direction, majority_accuracy, _ = majority_baseline(origin, actual)
    dm_stat, dm_pvalue = diebold_mariano(actual - predicted, actual - origin, horizon)
    return {
        "n": len(actual),
        "rmse": rmse,
        "mae": mae,
        "mape": float(100.0 * skm.mean_absolute_percentage_error(actual, predicted)),
        "r2": r_squared(actual, predicted),
        "rmse_naive": rmse_naive,
        "mae_naive": mae_naive,
        "rmse_ratio": _ratio(rmse, rmse_naive),
        "mase": _ratio(mae, mae_naive),
        "mase_insample": _ratio(mae, scale),
        "directional_accuracy": _ratio(hits, direction_n),
        "direction_n": direction_n,
        "majority_direction": majority_direction,
        "majority_accuracy": majority_accuracy,
        "direction_pvalue": binomial_pvalue(hits, direction_n, majority_accuracy),
        "dm_stat": dm_stat,
        "dm_pvalue": dm_pvalue,
    }


def evaluate_forecasts(
    origin_close: np.ndarray,
    future_close: np.ndarray,
    predicted_close: np.ndarray,
    horizons: Sequence[int],
    scale_series: np.ndarray,
) -> dict[int, dict]:
    """`evaluate_horizon` for each horizon: columns of `future_close`/`predicted_close` `(n, H)`."""
    future = np.asarray(future_close, dtype=float)
    predicted = np.asarray(predicted_close, dtype=float)
    horizons = [int(h) for h in horizons]
    expected = (len(np.asarray(origin_close)), len(horizons))
    for name, values in (("future_close", future), ("predicted_close", predicted)):
        if values.shape != expected:
            raise ValueError(f"{name} has shape {values.shape}, expected (n origins, n horizons) = {expected}")
    return {
        h: evaluate_horizon(origin_close, future[:, j], predicted[:, j], h, scale_series)
        for j, h in enumerate(horizons)
    }


def metrics_table(results: Mapping[str, Mapping[int, Mapping]]) -> pd.DataFrame:
    """Long table, one row per (model, horizon), columns `model`, `horizon`, then the metrics."""
    rows = [
        {"model": model, "horizon": int(h), **per_horizon[h]}
        for model, per_horizon in results.items()
        for h in sorted(per_horizon)
    ]
    if not rows:
        raise ValueError("metrics_table needs at least one model with one horizon")
    table = pd.DataFrame(rows)
    leading = ["model", "horizon"] + [key for key in METRIC_KEYS if key in table.columns]
    return table[leading + [c for c in table.columns if c not in leading]]


def naive_scale(scale_series: np.ndarray, horizon: int) -> float:
    """In-sample MAE of the h-step naive forecast: ``mean |c[t+h] - c[t]|`` over the series."""
    series = finite_array("scale_series", scale_series)
    horizon = _valid_horizon(horizon)
    if len(series) <= horizon:
        raise ValueError(
            f"scale_series has {len(series)} values; the h={horizon} naive scale needs more than {horizon}"
        )
    return float(np.mean(np.abs(series[horizon:] - series[:-horizon])))


def direction_hits(origin_close: np.ndarray, actual_close: np.ndarray, predicted_close: np.ndarray) -> tuple[int, int]:
    """(hits, origins counted): origins with a zero actual move are left out, a zero forecast move is a miss."""
    origin, actual, predicted = (np.asarray(a, dtype=float) for a in (origin_close, actual_close, predicted_close))
    same_length(origin=origin, actual=actual, predicted=predicted)
    actual_sign = np.sign(actual - origin)
    counted = actual_sign != 0
    hits = np.sign(predicted - origin)[counted] == actual_sign[counted]
    return int(hits.sum()), int(counted.sum())


def directional_accuracy(origin_close: np.ndarray, actual_close: np.ndarray, predicted_close: np.ndarray) -> float:
    """Share of origins (non-zero actual move) whose forecast move has the actual move's sign;
    NaN for a forecast that never calls a direction (the naive forecast): not 0, "always wrong"."""
    if not np.any(np.asarray(predicted_close, dtype=float) != np.asarray(origin_close, dtype=float)):
        return math.nan
    hits, counted = direction_hits(origin_close, actual_close, predicted_close)
    return _ratio(hits, counted)


def majority_baseline(origin_close: np.ndarray, actual_close: np.ndarray) -> tuple[str, float, int]:
    """(majority direction "up"/"down", its share, origins counted), zero moves left out, "up" on a tie."""
    moves = np.sign(np.asarray(actual_close, dtype=float) - np.asarray(origin_close, dtype=float))
    ups, downs = int((moves > 0).sum()), int((moves < 0).sum())
    direction = "up" if ups >= downs else "down"
    return direction, _ratio(max(ups, downs), ups + downs), ups + downs


def diebold_mariano(
    errors_model: np.ndarray,
    errors_reference: np.ndarray,
    horizon: int,
    power: float = 2,
) -> tuple[float, float]:
    """Diebold-Mariano test of equal accuracy, with HAC variance and the HLN correction.

    Loss differential ``d = |e_model|^power - |e_reference|^power``; a negative
    statistic means the model has the smaller loss. Long-run variance of ``d``:
    Newey-West with Bartlett weights ``1 - k/h`` over ``h - 1`` lags. The
    statistic ``mean(d) / sqrt(var / n)`` is multiplied by
    ``sqrt((n + 1 - 2h + h(h-1)/n) / n)`` and compared with Student t, ``n - 1``
    degrees of freedom, two-sided. Returns (NaN, NaN) when undefined: fewer
    than two errors, ``n <= h - 1``, a non-positive HLN term, or zero variance
    (e.g. identical forecasts).
    """
    model = finite_array("errors_model", errors_model)
    reference = finite_array("errors_reference", errors_reference)
    same_length(errors_model=model, errors_reference=reference)
    horizon = _valid_horizon(horizon)
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    differential = np.abs(model) ** power - np.abs(reference) ** power
    n = len(differential)
    if n < 2 or horizon - 1 >= n:
        logger.warning("Diebold-Mariano undefined: %d errors for horizon %d", n, horizon)
        return math.nan, math.nan
    hln_term = (n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n
    if hln_term <= 0:
        logger.warning("Diebold-Mariano undefined: HLN term %.3g for %d errors at horizon %d", hln_term, n, horizon)
        return math.nan, math.nan
    variance = _newey_west_variance(differential, lags=horizon - 1)
    if variance <= 0:
        logger.info("Diebold-Mariano undefined: the loss differential has zero variance")
        return math.nan, math.nan
    statistic = float(differential.mean() / math.sqrt(variance / n) * math.sqrt(hln_term))
    pvalue = float(2.0 * stats.t.sf(abs(statistic), df=n - 1))
    return statistic, pvalue


def _newey_west_variance(values: np.ndarray, lags: int) -> float:
    """Long-run variance: gamma_0 + 2 * sum_k (1 - k/(lags+1)) gamma_k, autocovariances divided by n."""
    centred = values - values.mean()
    n = len(centred)
    variance = float(centred @ centred) / n
    for k in range(1, lags + 1):
        variance += 2.0 * (1.0 - k / (lags + 1)) * float(centred[k:] @ centred[:-k]) / n
    return variance


def binomial_pvalue(hits: int, trials: int, null_share: float) -> float:
    """One-sided exact binomial test: P(X >= hits) for X ~ Binomial(trials, null_share)."""
    if trials == 0:
        return math.nan
    return float(stats.binomtest(hits, trials, p=null_share, alternative="greater").pvalue)


def r_squared(actual: np.ndarray, predicted: np.ndarray) -> float:
    """R² of `predicted` against `actual` (NaN for fewer than 2 points or a constant `actual`)."""
    if len(actual) < 2:
        return math.nan
    return float(skm.r2_score(actual, predicted, force_finite=False))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator != 0 else math.nan


def _valid_horizon(horizon: int) -> int:
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be a positive whole number of bars, got {horizon!r}")
    return int(horizon)
