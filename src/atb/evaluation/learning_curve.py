"""Learning curve: does more training history help? The model type is refitted on the newest
25%, 50% and 75% of its training windows (same seed and settings, split for early stopping
as the full fit was) and scored, raw, on those windows and on validation beside the full fit.
Validation skill still improving at 100% says more history would help; training skill far
ahead of validation says the model memorises."""

from __future__ import annotations

from collections.abc import Callable

from atb.dataset import Dataset, Split
from atb.evaluation.breakdown import rmse_ratios
from atb.models import ForecastModel
from atb.models.trainer import FitSettings

FRACTIONS = (0.25, 0.5, 0.75)


def learning_curve(
    build: Callable[[], ForecastModel],
    full: ForecastModel,
    dataset: Dataset,
    settings: FitSettings,
    fitting_parts: Callable[[Split, Split], tuple[Split, Split]],
) -> dict:
    """Per training-set size (the newest windows): n, and training and validation RMSE/naive per
    horizon; `fitting_parts(train, val)` gives what a fit fits on and stops early on."""
    train, val = dataset.train, dataset.val
    rows = []
    for fraction in (*FRACTIONS, 1.0):
        n = max(1, round(fraction * len(train)))
        subset = train.subset(slice(len(train) - n, None))
        if fraction < 1.0:
            model = build()
            model.fit(*fitting_parts(subset, val), settings)
        else:
            model = full
        rows.append({
            "fraction": fraction,
            "n_train": n,
            "train": rmse_ratios(model.predict(subset.X), subset, dataset),
            "validation": rmse_ratios(model.predict(val.X), val, dataset),
        })
    return {"sizes": rows, "still_improving": {h: bool(rows[-1]["validation"][h] < rows[-2]["validation"][h]) for h in dataset.horizons}}

