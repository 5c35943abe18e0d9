"""Combining base-model forecasts: market regimes, combination methods, uncertainty."""

from atb.ensemble.combiners import (
    DEFAULT_WEIGHTS,
    FixedWeights,
    OnlineWeights,
    RegimeWeights,
    StackingMetaLearner,
    stack_predictions,
)
from atb.ensemble.regime import REGIMES, RegimeDetector, regime_shares
from atb.ensemble.uncertainty import (
    ConformalIntervals,
    combine_uncertainty,
    coverage,
    interval_score,
    mean_width,
    summarise_samples,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "REGIMES",
    "ConformalIntervals",
    "FixedWeights",
    "OnlineWeights",
    "RegimeDetector",
    "RegimeWeights",
    "StackingMetaLearner",
    "combine_uncertainty",
    "coverage",
    "interval_score",
    "mean_width",
    "regime_shares",
    "stack_predictions",
    "summarise_samples",
]
