"""Up/down calls of a price forecast against what happened, as a classifier would be judged:
accuracy, precision, recall and F1 of the "up" call, and ROC AUC of the forecast move as a
score for "up"; each beside always calling the majority direction of the same origins.

Origins whose actual move is zero are left out. A forecast of exactly no move calls "down"
here (it does not call "up"); ROC AUC only ranks the forecast moves, so a forecast with a
single value everywhere scores 0.5. Undefined values (e.g. precision without an "up" call)
are NaN.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm

from atb.evaluation.metrics import binomial_pvalue, majority_baseline


def direction_metrics(origin_close: np.ndarray, actual_close: np.ndarray, predicted_close: np.ndarray) -> dict:
    """The classification view of one horizon's forecasts (see the module docstring)."""
    origin, actual, predicted = (np.asarray(a, dtype=float) for a in (origin_close, actual_close, predicted_close))
    counted = actual != origin
    up = actual[counted] > origin[counted]
    move = predicted[counted] - origin[counted]
    called_up = move > 0
    direction, majority_share, n = majority_baseline(origin, actual)
    majority_calls = np.full(len(up), direction == "up")
    hits = int((called_up == up).sum())
    return {
        "n": n,
        "accuracy": _share(hits, n),
        "precision": _safe(skm.precision_score, up, called_up),
        "recall": _safe(skm.recall_score, up, called_up),
        "f1": _safe(skm.f1_score, up, called_up),
        "roc_auc": float(skm.roc_auc_score(up, move)) if 0 < up.sum() < len(up) else math.nan,
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


def direction_report(origin_close: np.ndarray, future_close: np.ndarray, predicted_close: np.ndarray, horizons: tuple[int, ...]) -> dict:
    """`direction_metrics` per horizon, from `(n, H)` actual and predicted closes."""
    return {h: direction_metrics(origin_close, future_close[:, j], predicted_close[:, j]) for j, h in enumerate(horizons)}


def _safe(score, truth: np.ndarray, calls: np.ndarray) -> float:
    return float(score(truth, calls, zero_division=np.nan)) if len(truth) else math.nan


def _share(hits: int, n: int) -> float:
    return hits / n if n else math.nan
