"""Causal features from candles (eight categories) and from funding rates (exogenous)."""

from atb.features.categories import FEATURE_CATEGORIES, OHLCV_CATEGORIES, category_counts, feature_categories
from atb.features.funding import funding_features, load_funding
from atb.features.indicators import WARMUP_BARS, compute_features, feature_matrix

__all__ = [
    "FEATURE_CATEGORIES",
    "OHLCV_CATEGORIES",
    "WARMUP_BARS",
    "category_counts",
    "compute_features",
    "feature_categories",
    "feature_matrix",
    "funding_features",
    "load_funding",
]
