import json
import math

import numpy as np
import pytest

from atb.evaluation.backtest import backtest_long_flat, equity_curves, max_drawdown, strategy_returns

# Asset returns +10%, -10%, +10%, -10%.
ORIGIN = np.array([100.0, 110.0, 99.0, 108.9])
NEXT = np.array([110.0, 99.0, 108.9, 98.01])
REPORT_KEYS = {
    "total_return",
    "annualised_return",
    "sharpe",
    "max_drawdown",
    "calmar",
    "win_rate",
    "exposure",
    "n_trades",
    "var_95",
    "cvar_95",
}


def _random_walk(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    closes = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.03, n + 1)))
    return closes[:-1], closes[1:]


def test_alternating_positions_by_hand():
    # long, flat, long, flat: every period changes position and pays 1%
    report = backtest_long_flat(ORIGIN, NEXT, np.array([0.01, -0.02, 0.03, 0.0]), fee=0.01, periods_per_year=4)
    # per period: 0.99 * 1.1 - 1 = 0.089, 0.99 - 1 = -0.01, 0.089, -0.01
    total = 1.089**2 * 0.99**2 - 1
    assert report["total_return"] == pytest.approx(total)
    assert report["annualised_return"] == pytest.approx(total)  # 4 periods = one year
    assert report["n_trades"] == 4
    assert report["exposure"] == 0.5
    assert report["win_rate"] == 1.0
    assert report["max_drawdown"] == pytest.approx(-0.01)  # 1.089 -> 1.089 * 0.99
    assert report["calmar"] == pytest.approx(total / 0.01)
    # mean 0.0395, deviations ±0.0495, sample std 0.0495 * sqrt(4/3)
    assert report["sharpe"] == pytest.approx(0.0395 / (0.0495 * math.sqrt(4 / 3)) * math.sqrt(4))
    # 5% quantile of [-0.01, -0.01, 0.089, 0.089] sits between the two lowest
    assert report["var_95"] == pytest.approx(-0.01)
    assert report["cvar_95"] == pytest.approx(-0.01)


def test_buy_and_hold_by_hand():
    hold = backtest_long_flat(ORIGIN, NEXT, np.zeros(4), periods_per_year=4)["buy_and_hold"]
    assert hold["total_return"] == pytest.approx(1.1**2 * 0.9**2 - 1)
    assert hold["max_drawdown"] == pytest.approx(0.9801 / 1.1 - 1)
    assert (hold["exposure"], hold["n_trades"], hold["win_rate"]) == (1.0, 1, 0.5)
    assert hold["var_95"] == pytest.approx(-0.1)
    assert hold["cvar_95"] == pytest.approx(-0.1)


def test_always_long_is_buy_and_hold_minus_one_entry_fee():
    origin, following = _random_walk(100)
    report = backtest_long_flat(origin, following, np.ones(100), fee=0.002)
    assert report["n_trades"] == 1
    assert 1 + report["total_return"] == pytest.approx((1 - 0.002) * (1 + report["buy_and_hold"]["total_return"]))


def test_perfect_predictor_never_loses_without_fees():
    origin, following = _random_walk(200, seed=1)
    report = backtest_long_flat(origin, following, following / origin - 1, fee=0.0)
    assert np.all(np.diff(equity_curves(origin, following, following / origin - 1, fee=0.0)["strategy"]) >= 0)
    assert report["max_drawdown"] == 0.0
    assert math.isnan(report["calmar"])  # no drawdown
    assert report["win_rate"] == 1.0
    assert report["total_return"] > report["buy_and_hold"]["total_return"]


def test_always_flat_stays_at_one():
    report = backtest_long_flat(ORIGIN, NEXT, -np.ones(4))
    assert (report["total_return"], report["exposure"], report["n_trades"], report["max_drawdown"]) == (0, 0, 0, 0)
    assert math.isnan(report["sharpe"]) and math.isnan(report["win_rate"])


def test_report_is_json_friendly():
    report = backtest_long_flat(ORIGIN, NEXT, np.array([0.01, -0.02, 0.03, 0.0]))
    assert set(report) == REPORT_KEYS | {"buy_and_hold"}
    assert set(report["buy_and_hold"]) == REPORT_KEYS
    assert all(type(v) in (int, float) for v in report["buy_and_hold"].values())
    json.dumps(report)


def test_equity_curves_match_report():
    origin, following = _random_walk(50, seed=2)
    predicted = np.random.default_rng(3).normal(0, 0.01, 50)
    curves = equity_curves(origin, following, predicted)
    report = backtest_long_flat(origin, following, predicted)
    assert curves["strategy"].shape == curves["buy_and_hold"].shape == (51,)
    assert curves["strategy"][0] == 1.0
    assert curves["strategy"][-1] - 1 == pytest.approx(report["total_return"])
    assert curves["buy_and_hold"][-1] == pytest.approx(following[-1] / origin[0])


def test_max_drawdown_of_a_known_curve():
    assert max_drawdown(np.array([1.0, 1.2, 0.9, 1.1, 0.6, 0.8])) == pytest.approx(0.6 / 1.2 - 1)
    assert max_drawdown(np.array([1.0, 1.1, 1.2])) == 0.0


def test_fee_charged_on_entry_and_exit():
    returns = strategy_returns(np.array([0.0, 0.0, 0.0]), np.array([1.0, 1.0, 0.0]), fee=0.01)
    np.testing.assert_allclose(returns, [-0.01, 0.0, -0.01])


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        backtest_long_flat(ORIGIN, NEXT[:3], np.zeros(4))
    with pytest.raises(ValueError, match="positive prices"):
        backtest_long_flat(-ORIGIN, NEXT, np.zeros(4))
    with pytest.raises(ValueError, match="non-finite"):
        backtest_long_flat(ORIGIN, NEXT, np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="fee"):
        backtest_long_flat(ORIGIN, NEXT, np.zeros(4), fee=1.5)
    with pytest.raises(ValueError, match="periods_per_year"):
        backtest_long_flat(ORIGIN, NEXT, np.zeros(4), periods_per_year=0)
    with pytest.raises(ValueError, match="non-empty"):
        backtest_long_flat(np.array([]), np.array([]), np.array([]))
