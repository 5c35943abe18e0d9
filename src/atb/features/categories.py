"""Feature categories and the column-name prefix that marks each one."""

from __future__ import annotations

from collections.abc import Iterable

CATEGORY_PREFIXES: dict[str, str] = {
    "price": "price",
    "moving_average": "ma",
    "momentum": "mom",
    "volatility": "volat",
    "volume": "volume",
    "statistical": "stat",
    "time": "time",
    "regime": "regime",
    "exogenous": "funding",
}
FEATURE_CATEGORIES: tuple[str, ...] = tuple(CATEGORY_PREFIXES)
OHLCV_CATEGORIES: tuple[str, ...] = FEATURE_CATEGORIES[:-1]  # computed from candles alone
_CATEGORY_OF_PREFIX = {prefix: category for category, prefix in CATEGORY_PREFIXES.items()}


def prefixed(category: str, name: str) -> str:
    """Column name of feature `name` in `category`."""
    return f"{CATEGORY_PREFIXES[category]}_{name}"


def feature_categories(columns: Iterable[str]) -> dict[str, str]:
    """Map each feature column to its category, read from its name prefix."""
    categories = {}
    for column in columns:
        prefix = str(column).split("_", 1)[0]
        if prefix not in _CATEGORY_OF_PREFIX:
            raise ValueError(
                f"feature column {column!r} has no known category prefix; "
                f"expected one of {sorted(p + '_' for p in _CATEGORY_OF_PREFIX)}"
            )
        categories[column] = _CATEGORY_OF_PREFIX[prefix]
    return categories


def category_counts(columns: Iterable[str]) -> dict[str, int]:
    """Number of columns per category, for every category in `FEATURE_CATEGORIES` order (zeros kept)."""
    counts = dict.fromkeys(FEATURE_CATEGORIES, 0)
    for category in feature_categories(columns).values():
        counts[category] += 1
    return counts
