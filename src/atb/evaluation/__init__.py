"""Evaluation: protocol metrics, significance tests, a trading backtest and diagnostic plots.

`atb.evaluation.plots` is imported on its own so that metrics need no matplotlib.
"""

from atb.evaluation.backtest import backtest_long_flat, equity_curves
from atb.evaluation.metrics import (
    METRIC_KEYS,
    diebold_mariano,
    direction_hits,
    directional_accuracy,
    evaluate_forecasts,
    evaluate_horizon,
    majority_baseline,
    metrics_table,
    naive_scale,
)

__all__ = [
    "METRIC_KEYS",
    "backtest_long_flat",
    "diebold_mariano",
    "direction_hits",
    "directional_accuracy",
    "equity_curves",
    "evaluate_forecasts",
    "evaluate_horizon",
    "majority_baseline",
    "metrics_table",
    "naive_scale",
]
