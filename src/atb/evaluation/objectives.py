"""What a tuning study optimises and constrains: scores of one fit's forecasts on a block
of origins it was not trained on.

- `val_loss`: the fit's best early-stopping loss (from its history; minimise);
- `rmse_ratio`: RMSE of the forecast over the naive forecast's, mean over horizons (minimise);
- `direction_accuracy`: share of origins whose 1-bar move the forecast calls right (maximise);
- `sharpe`, `max_drawdown` (<= 0, so maximise), `win_rate` (maximise): the long/flat backtest
  of the 1-bar forecast (`atb.evaluation.backtest`, the reports' fee).

A strategy that never enters the market, or whose returns do not vary, has no Sharpe
ratio or win rate; it earns nothing, so both score 0 here rather than failing the trial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from atb.dataset import Dataset, Split
from atb.evaluation.metrics import direction_hits
from atb.evaluation.protocol import backtest

DIRECTIONS = {
    "val_loss": "minimize",
    "rmse_ratio": "minimize",
    "direction_accuracy": "maximize",
    "sharpe": "maximize",
    "max_drawdown": "maximize",
    "win_rate": "maximize",
}
TRADING = ("sharpe", "max_drawdown", "win_rate")


def check_objectives(names: tuple[str, ...], horizons: tuple[int, ...]) -> None:
    """Refuse unknown or repeated objectives, and trading ones without a 1-bar horizon."""
    unknown = [name for name in names if name not in DIRECTIONS]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"objectives {list(names)}: each must be one of {list(DIRECTIONS)}, at least one, none twice")
    if 1 not in horizons and any(name in TRADING + ("direction_accuracy",) for name in names):
        raise ValueError(f"objectives {list(names)} need horizon 1 (the backtest and direction use the 1-bar forecast); horizons: {list(horizons)}")


def score(names: tuple[str, ...], prediction: np.ndarray, split: Split, dataset: Dataset, val_loss: float) -> dict[str, float]:
    """Each named objective for `prediction` (target space, `(n, H)`) on `split`."""
    out: dict[str, float] = {}
    y = np.asarray(split.y, dtype=float)
    if "val_loss" in names:
        out["val_loss"] = float(val_loss)
    if "rmse_ratio" in names:
        naive = np.sqrt((y**2).mean(axis=0)) if dataset.transform.target.kind == "log_return" else _naive_price_rmse(split)
        out["rmse_ratio"] = float(np.mean(np.sqrt(((y - prediction) ** 2).mean(axis=0)) / naive))
    if "direction_accuracy" in names:
        j = dataset.horizons.index(1)
        predicted = dataset.transform.target.to_prices(prediction, split.origin_close)[:, j]
        hits, counted = direction_hits(split.origin_close, split.future_close[:, j], predicted)
        out["direction_accuracy"] = hits / counted if counted else 0.0
    if any(name in TRADING for name in names):
        trading = backtest(split, dataset, prediction)
        out.update({name: _zero_if_nan(trading[name]) for name in TRADING if name in names})
    return out


@dataclass(frozen=True)
class Constraints:
    """Limits on the validation backtest; a trial outside them is infeasible.
    `max_drawdown` is a positive fraction (0.3: no fall over 30%)."""

    max_drawdown: float | None = None
    min_win_rate: float | None = None

    def __post_init__(self) -> None:
        if self.max_drawdown is not None and not 0 < self.max_drawdown <= 1:
            raise ValueError(f"max_drawdown: {self.max_drawdown} must be in (0, 1]")
        if self.min_win_rate is not None and not 0 <= self.min_win_rate <= 1:
            raise ValueError(f"min_win_rate: {self.min_win_rate} must be in [0, 1]")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name in ("max_drawdown", "win_rate") if self._limit(name) is not None)

    def violations(self, scores: dict[str, float]) -> list[float]:
        """Optuna's convention: one value per constraint, <= 0 where it holds."""
        out = []
        if self.max_drawdown is not None:
            out.append(-scores["max_drawdown"] - self.max_drawdown)
        if self.min_win_rate is not None:
            out.append(self.min_win_rate - scores["win_rate"])
        return out

    def describe(self) -> str:
        parts = [f"max drawdown {self.max_drawdown:.0%}" if self.max_drawdown is not None else "",
                 f"win rate >= {self.min_win_rate:.0%}" if self.min_win_rate is not None else ""]
        return ", ".join(p for p in parts if p) or "none"

    def _limit(self, name: str) -> float | None:
        return self.max_drawdown if name == "max_drawdown" else self.min_win_rate


def _naive_price_rmse(split: Split) -> np.ndarray:
    return np.sqrt(((split.future_close - split.origin_close[:, None]) ** 2).mean(axis=0))


def _zero_if_nan(value: float) -> float:
    return 0.0 if math.isnan(value) else float(value)
