"""Up/down calls judged as a classifier would be: accuracy, precision, recall and F1 of the
"up" call, and ROC AUC of a score for "up"; each beside always calling the majority
direction of the same origins.

Two sources of calls: a price forecast (`direction_metrics`: the forecast move is the score,
"up" when it is above zero), and a direction model's probability of "up"
(`probability_metrics`: "up" when above 0.5, plus the Brier score and log loss beside the
constant training base rate, with a Diebold-Mariano test of the Brier difference).

Origins whose actual move is zero are left out. A forecast of exactly no move (or a
probability of exactly 0.5) calls "down" here (it does not call "up"); ROC AUC only ranks
the scores, so a single score everywhere gets 0.5. Undefined values (e.g. precision
without an "up" call) are NaN.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm

from atb.evaluation.metrics import binomial_pvalue, diebold_mariano, majority_baseline

PROBABILITY_FLOOR = 1e-6  # log loss clips probabilities into [floor, 1 - floor]


def direction_metrics(origin_close: np.ndarray, actual_close: np.ndarray, predicted_close: np.ndarray) -> dict:
    """The classification view of one horizon's price forecasts (see the module docstring)."""
    origin, actual, predicted = (np.asarray(a, dtype=float) for a in (origin_close, actual_close, predicted_close))
    return _calls(origin, actual, predicted - origin)


def probability_metrics(origin_close: np.ndarray, actual_close: np.ndarray, probability_up: np.ndarray, base_rate: float, horizon: int) -> dict:
    """One horizon of a direction model: the calls of `direction_metrics` ("up" when the
    probability is above 0.5, ROC AUC of the probability), its Brier score and log loss, the
    same for the constant `base_rate` (the training part's share of "up"), the Brier skill
    score 1 - Brier / base-rate Brier, and the DM p-value of the Brier difference."""
    origin, actual, probability = (np.asarray(a, dtype=float) for a in (origin_close, actual_close, probability_up))
    if not ((probability >= 0) & (probability <= 1)).all():
        raise ValueError("probability_up must lie in [0, 1]")
    out = _calls(origin, actual, probability - 0.5)
    counted = actual != origin
    up = (actual[counted] > origin[counted]).astype(float)
    probability = probability[counted]
    constant = np.full(len(up), float(base_rate))
    brier, base_brier = _brier(probability, up), _brier(constant, up)
    _, pvalue = diebold_mariano(probability - up, constant - up, horizon) if len(up) > 1 else (math.nan, math.nan)
    out.update({
        "brier": brier,
        "log_loss": _log_loss(probability, up),
        "brier_skill": 1.0 - brier / base_brier if base_brier > 0 else math.nan,
        "brier_dm_pvalue": pvalue,
        "base_rate": {"up_share": float(base_rate), "brier": base_brier, "log_loss": _log_loss(constant, up)},
    })
    out["majority"]["brier"] = _brier(np.full(len(up), float(out["majority"]["direction"] == "up")), up)
    return out


def _calls(origin: np.ndarray, actual: np.ndarray, score: np.ndarray) -> dict:
    """Metrics of the calls "up" where `score` > 0, on origins whose actual move is not zero."""
    counted = actual != origin
    up = actual[counted] > origin[counted]
    scores = score[counted]
    called_up = scores > 0
    direction, majority_share, n = majority_baseline(origin, actual)
    majority_calls = np.full(len(up), direction == "up")
    hits = int((called_up == up).sum())
    return {
        "n": n,
        "accuracy": _share(hits, n),
        "precision": _safe(skm.precision_score, up, called_up),
        "recall": _safe(skm.recall_score, up, called_up),
        "f1": _safe(skm.f1_score, up, called_up),
        "roc_auc": float(skm.roc_auc_score(up, scores)) if 0 < up.sum() < len(up) else math.nan,
        "accuracy_pvalue": binomial_pvalue(hits, n, majority_share),
        "majority": {
            "direction": direction,
            "accuracy": majority_share,
            "precision": _safe(skm.precision_score, up, majority_calls),
            "recall": _safe(skm.recall_score, up, majority_calls),
            "f1": _safe(skm.f1_score, up, majority_calls),
            "roc_auc": 0.5,
        },
    }


def probability_report(origin_close: np.ndarray, future_close: np.ndarray, probability_up: np.ndarray, base_rate: np.ndarray, horizons: tuple[int, ...]) -> dict:
    """`probability_metrics` per horizon, from `(n, H)` actual closes and probabilities and the per-horizon base rates."""
    return {h: probability_metrics(origin_close, future_close[:, j], probability_up[:, j], base_rate[j], h) for j, h in enumerate(horizons)}


def direction_report(origin_close: np.ndarray, future_close: np.ndarray, predicted_close: np.ndarray, horizons: tuple[int, ...]) -> dict:
    """`direction_metrics` per horizon, from `(n, H)` actual and predicted closes."""
    return {h: direction_metrics(origin_close, future_close[:, j], predicted_close[:, j]) for j, h in enumerate(horizons)}


def _brier(probability: np.ndarray, up: np.ndarray) -> float:
    return float(np.mean((probability - up) ** 2)) if len(up) else math.nan


def _log_loss(probability: np.ndarray, up: np.ndarray) -> float:
    if not len(up):
        return math.nan
    clipped = np.clip(probability, PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
    return float(-np.mean(up * np.log(clipped) + (1.0 - up) * np.log(1.0 - clipped)))


def _safe(score, truth: np.ndarray, calls: np.ndarray) -> float:
    return float(score(truth, calls, zero_division=np.nan)) if len(truth) else math.nan


def _share(hits: int, n: int) -> float:
    return hits / n if n else math.nan
