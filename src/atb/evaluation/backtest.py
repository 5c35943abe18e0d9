"""A long/flat trading backtest of 1-step forecasts, beside buy-and-hold.

At each origin t the strategy is long (position 1) when the predicted 1-step
return is > 0, otherwise flat (0), and holds that position to t+1. It starts
flat; each change of position pays ``fee`` times the traded notional (the
equity at that moment), so a period's return is
``(1 - fee * |p_t - p_{t-1}|) * (1 + p_t * r_t) - 1``. A position still open
after the last period is marked to market, not sold. Buy-and-hold is always
long and pays no fee: the market itself.

Report values are Python floats/ints. NaN marks what is undefined: Sharpe with
fewer than two periods or zero volatility, Calmar without a drawdown, win rate
without a period in the market.
"""

from __future__ import annotations

import math

import numpy as np

from atb.evaluation.checks import finite_array, positive_prices, same_length

VAR_LEVEL = 0.95


def backtest_long_flat(
    origin_close: np.ndarray,
    next_close: np.ndarray,
    predicted_return: np.ndarray,
    fee: float = 0.001,
    periods_per_year: float = 365,
) -> dict:
    """Performance of the long/flat strategy, with buy-and-hold under key ``buy_and_hold``.

    Keys: total_return, annualised_return, sharpe, max_drawdown (<= 0),
    calmar, win_rate (share of in-market periods with a positive net return),
    exposure, n_trades (position changes, the first entry included), var_95 and
    cvar_95 (historical 5% quantile of per-period returns and the mean of the
    returns at or below it; negative numbers are losses).
    """
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be > 0, got {periods_per_year}")
    asset, positions = _asset_returns_and_positions(origin_close, next_close, predicted_return)
    report = _performance(strategy_returns(asset, positions, fee), positions, periods_per_year)
    always_long = np.ones_like(positions)
    report["buy_and_hold"] = _performance(strategy_returns(asset, always_long, 0.0), always_long, periods_per_year)
    return report


def equity_curves(
    origin_close: np.ndarray,
    next_close: np.ndarray,
    predicted_return: np.ndarray,
    fee: float = 0.001,
) -> dict[str, np.ndarray]:
    """Equity `(n + 1,)` starting at 1.0 for keys ``strategy`` and ``buy_and_hold``."""
    asset, positions = _asset_returns_and_positions(origin_close, next_close, predicted_return)
    return {
        "strategy": _equity(strategy_returns(asset, positions, fee)),
        "buy_and_hold": _equity(strategy_returns(asset, np.ones_like(positions), 0.0)),
    }


def strategy_returns(asset_returns: np.ndarray, positions: np.ndarray, fee: float) -> np.ndarray:
    """Per-period net returns of holding `positions` (starting flat), fee on each change."""
    if not 0 <= fee < 1:
        raise ValueError(f"fee must be a fraction in [0, 1), got {fee}")
    positions = np.asarray(positions, dtype=float)
    traded = np.abs(np.diff(positions, prepend=0.0))
    return (1.0 - fee * traded) * (1.0 + positions * np.asarray(asset_returns, dtype=float)) - 1.0


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak, as a fraction <= 0 (0.0 when equity never falls)."""
    equity = np.asarray(equity, dtype=float)
    return float(np.min(equity / np.maximum.accumulate(equity) - 1.0))


def _performance(returns: np.ndarray, positions: np.ndarray, periods_per_year: float) -> dict:
    equity = _equity(returns)
    total = float(equity[-1] - 1.0)
    annualised = float(equity[-1] ** (periods_per_year / len(returns)) - 1.0)
    drawdown = max_drawdown(equity)
    in_market = positions > 0
    var = float(np.quantile(returns, 1.0 - VAR_LEVEL))
    return {
        "total_return": total,
        "annualised_return": annualised,
        "sharpe": _sharpe(returns, periods_per_year),
        "max_drawdown": drawdown,
        "calmar": annualised / abs(drawdown) if drawdown < 0 else math.nan,
        "win_rate": float(np.mean(returns[in_market] > 0)) if in_market.any() else math.nan,
        "exposure": float(in_market.mean()),
        "n_trades": int(np.abs(np.diff(positions, prepend=0.0)).sum()),
        "var_95": var,
        "cvar_95": float(returns[returns <= var].mean()),
    }


def _sharpe(returns: np.ndarray, periods_per_year: float) -> float:
    if len(returns) < 2:
        return math.nan
    volatility = float(np.std(returns, ddof=1))
    if volatility == 0:
        return math.nan
    return float(np.mean(returns) / volatility * math.sqrt(periods_per_year))


def _equity(returns: np.ndarray) -> np.ndarray:
    return np.concatenate([[1.0], np.cumprod(1.0 + returns)])


def _asset_returns_and_positions(
    origin_close: np.ndarray, next_close: np.ndarray, predicted_return: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    origin = positive_prices("origin_close", origin_close)
    following = positive_prices("next_close", next_close)
    predicted = finite_array("predicted_return", predicted_return)
    same_length(origin_close=origin, next_close=following, predicted_return=predicted)
    return following / origin - 1.0, (predicted > 0).astype(float)
