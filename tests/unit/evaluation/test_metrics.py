import json
import math

import numpy as np
import pytest
from scipy import stats

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

# Four origins, horizon 1.
ORIGIN = np.array([100.0, 102.0, 101.0, 105.0])
ACTUAL = np.array([102.0, 101.0, 101.0, 107.0])
PREDICTED = np.array([101.0, 103.0, 100.0, 106.0])
# |diff| of the training closes at lag 1: 4, 3, 2, 0 -> scale 2.25.
TRAIN_CLOSES = np.array([100.0, 104.0, 101.0, 103.0, 103.0])


@pytest.fixture(scope="module")
def tiny() -> dict:
    return evaluate_horizon(ORIGIN, ACTUAL, PREDICTED, 1, TRAIN_CLOSES)


def test_keys_and_json_friendly_types(tiny):
    assert tuple(tiny) == METRIC_KEYS
    assert all(type(v) in (int, float, str) for v in tiny.values())
    json.dumps(tiny)


def test_price_errors_by_hand(tiny):
    # model errors actual - predicted: 1, -2, 1, 1
    assert tiny["n"] == 4
    assert tiny["rmse"] == pytest.approx(math.sqrt((1 + 4 + 1 + 1) / 4))
    assert tiny["mae"] == pytest.approx((1 + 2 + 1 + 1) / 4)
    assert tiny["mape"] == pytest.approx(100 * (1 / 102 + 2 / 101 + 1 / 101 + 1 / 107) / 4)
    # mean actual 102.75; SS_tot = .75² + 1.75² + 1.75² + 4.25² = 24.75; SS_res = 7
    assert tiny["r2"] == pytest.approx(1 - 7 / 24.75)


def test_naive_skill_by_hand(tiny):
    # naive errors actual - origin: 2, -1, 0, 2
    assert tiny["rmse_naive"] == pytest.approx(math.sqrt((4 + 1 + 0 + 4) / 4))
    assert tiny["mae_naive"] == pytest.approx(5 / 4)
    assert tiny["rmse_ratio"] == pytest.approx(math.sqrt(7 / 4) / 1.5)
    assert tiny["mase"] == pytest.approx(1.25 / 1.25)  # same MAE as naive here
    assert tiny["mase_insample"] == pytest.approx(1.25 / 2.25)


def test_a_forecast_that_calls_no_direction_has_no_directional_accuracy():
    assert math.isnan(directional_accuracy(ORIGIN, ACTUAL, ORIGIN))  # the naive forecast: undefined, not "always wrong"
    assert directional_accuracy(ORIGIN, ACTUAL, ACTUAL) == 1.0


def test_mase_is_one_for_naive_and_below_one_for_a_better_forecast():
    naive = evaluate_horizon(ORIGIN, ACTUAL, ORIGIN, 1, TRAIN_CLOSES)
    halfway = evaluate_horizon(ORIGIN, ACTUAL, (ORIGIN + ACTUAL) / 2, 1, TRAIN_CLOSES)
    assert naive["mase"] == 1.0
    assert halfway["mase"] == pytest.approx(0.5)
    assert halfway["mase_insample"] == pytest.approx(0.5 * 1.25 / 2.25)


def test_direction_by_hand(tiny):
    # actual moves +2, -1, 0 (left out), +2; forecast moves +1, +1, -1, +1 -> hits 1, 0, -, 1
    assert tiny["directional_accuracy"] == pytest.approx(2 / 3)
    assert tiny["direction_n"] == 3
    assert tiny["majority_direction"] == "up"
    assert tiny["majority_accuracy"] == pytest.approx(2 / 3)
    # P(X >= 2), X ~ Bin(3, 2/3) = 3 (2/3)² (1/3) + (2/3)³ = 12/27 + 8/27
    assert tiny["direction_pvalue"] == pytest.approx(20 / 27)


def test_dm_inside_evaluate_horizon_by_hand(tiny):
    # d = e² - e_naive² = -3, 3, 1, -3; mean -0.5; gamma_0 = (2.5² + 3.5² + 1.5² + 2.5²) / 4 = 6.75
    # HLN factor for n=4, h=1: (4 + 1 - 2) / 4 = 0.75 -> stat = -0.5 / sqrt(6.75 / 4) * sqrt(0.75) = -1/3
    assert tiny["dm_stat"] == pytest.approx(-1 / 3)
    assert tiny["dm_pvalue"] == pytest.approx(2 * stats.t.sf(1 / 3, df=3))


def test_diebold_mariano_horizon_3_by_hand():
    errors_model = np.array([1.0, -2.0, 3.0, 0.0, 2.0, -1.0])
    errors_naive = np.array([2.0, 1.0, -1.0, 2.0, -2.0, 1.0])
    # d = -3, 3, 8, -4, 0, 0; mean 2/3; centred (in thirds) -11, 7, 22, -14, -2, -2
    gamma0 = (121 + 49 + 484 + 196 + 4 + 4) / 9 / 6
    gamma1 = (7 * -11 + 22 * 7 + -14 * 22 + -2 * -14 + -2 * -2) / 9 / 6
    gamma2 = (22 * -11 + -14 * 7 + -2 * 22 + -2 * -14) / 9 / 6
    # Bartlett weights over h - 1 = 2 lags: 2/3 and 1/3 (rectangular weights 1, 1 give 858 - 398 - 712 < 0 here)
    variance = gamma0 + 2 * (2 / 3) * gamma1 + 2 * (1 / 3) * gamma2
    hln = (6 + 1 - 2 * 3 + 3 * 2 / 6) / 6
    expected = (2 / 3) / math.sqrt(variance / 6) * math.sqrt(hln)
    stat, pvalue = diebold_mariano(errors_model, errors_naive, horizon=3)
    assert stat == pytest.approx(expected)
    assert pvalue == pytest.approx(2 * stats.t.sf(abs(expected), df=5))


def test_diebold_mariano_power_one_uses_absolute_errors():
    # d = |e1| - |e2| = -1, 1, 2; mean 2/3; centred -5/3, 1/3, 4/3; gamma_0 = (25 + 1 + 16) / 9 / 3
    stat, _ = diebold_mariano(np.array([1.0, -2.0, 3.0]), np.array([2.0, 1.0, -1.0]), horizon=1, power=1)
    hln = (3 + 1 - 2) / 3
    assert stat == pytest.approx((2 / 3) / math.sqrt(42 / 27 / 3) * math.sqrt(hln))


def test_diebold_mariano_undefined_cases_give_nan():
    same = np.array([1.0, -1.0, 2.0, 0.5])
    assert all(math.isnan(v) for v in diebold_mariano(same, same, horizon=1))  # zero variance
    assert all(math.isnan(v) for v in diebold_mariano(same, same + 1, horizon=7))  # too few for h=7
    assert all(math.isnan(v) for v in diebold_mariano(same[:1], same[:1] + 1, horizon=1))


def test_diebold_mariano_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        diebold_mariano(np.ones(3), np.ones(4), horizon=1)
    with pytest.raises(ValueError, match="horizon"):
        diebold_mariano(np.ones(3), np.ones(3), horizon=0)
    with pytest.raises(ValueError, match="power"):
        diebold_mariano(np.ones(3), np.ones(3), horizon=1, power=0)


def test_binomial_pvalue_against_hand_sum():
    # 5 origins all up except one, forecast right on 4: P(X >= 4), X ~ Bin(5, 0.6)
    origin = np.full(5, 100.0)
    actual = np.array([101.0, 102.0, 99.0, 103.0, 98.0])  # 3 up, 2 down -> majority up, 0.6
    predicted = np.array([101.0, 101.0, 99.0, 101.0, 101.0])  # hits: 1, 1, 1, 1, 0
    result = evaluate_horizon(origin, actual, predicted, 1, TRAIN_CLOSES)
    assert result["majority_accuracy"] == pytest.approx(0.6)
    assert result["direction_pvalue"] == pytest.approx(5 * 0.6**4 * 0.4 + 0.6**5)


def test_perfect_forecast():
    result = evaluate_horizon(ORIGIN, ACTUAL, ACTUAL, 1, TRAIN_CLOSES)
    assert result["rmse"] == 0.0 and result["mae"] == 0.0 and result["rmse_ratio"] == 0.0
    assert result["r2"] == 1.0
    assert result["directional_accuracy"] == 1.0


def test_naive_forecast_has_ratio_one_and_no_direction():
    result = evaluate_horizon(ORIGIN, ACTUAL, ORIGIN, 1, TRAIN_CLOSES)
    assert result["rmse_ratio"] == 1.0
    assert result["directional_accuracy"] == 0.0  # a zero forecast move calls no direction: a miss
    assert result["direction_pvalue"] == 1.0
    assert math.isnan(result["dm_stat"])  # identical to the reference


def test_direction_helpers():
    origin = np.array([10.0, 10.0, 10.0, 10.0])
    actual = np.array([9.0, 8.0, 10.0, 11.0])
    predicted = np.array([9.5, 10.0, 12.0, 10.5])
    # counted: down, down, up (zero move left out); forecasts: down (hit), zero (miss), up (hit)
    assert direction_hits(origin, actual, predicted) == (2, 3)
    assert directional_accuracy(origin, actual, predicted) == pytest.approx(2 / 3)
    assert majority_baseline(origin, actual) == ("down", pytest.approx(2 / 3), 3)
    assert majority_baseline(origin[:2], np.array([11.0, 9.0])) == ("up", 0.5, 2)  # tie -> up
    assert math.isnan(directional_accuracy(origin, origin, predicted))


def test_naive_scale_uses_h_step_differences():
    assert naive_scale(TRAIN_CLOSES, 2) == pytest.approx((1 + 1 + 2) / 3)  # |101-100|, |103-104|, |103-101|
    with pytest.raises(ValueError, match="more than 5"):
        naive_scale(TRAIN_CLOSES, 5)


def test_evaluate_horizon_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        evaluate_horizon(ORIGIN, ACTUAL[:3], PREDICTED, 1, TRAIN_CLOSES)
    with pytest.raises(ValueError, match="positive prices"):
        evaluate_horizon(ORIGIN, -ACTUAL, PREDICTED, 1, TRAIN_CLOSES)
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_horizon(ORIGIN, ACTUAL, np.array([1.0, np.nan, 1.0, 1.0]), 1, TRAIN_CLOSES)
    with pytest.raises(ValueError, match="horizon"):
        evaluate_horizon(ORIGIN, ACTUAL, PREDICTED, 1.5, TRAIN_CLOSES)


def test_evaluate_forecasts_per_horizon_and_table():
    rng = np.random.default_rng(0)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 200)))
    horizons = (1, 7)
    origin = closes[100:150]
    future = np.stack([closes[100 + h : 150 + h] for h in horizons], axis=1)
    predicted = future * (1 + rng.normal(0, 0.01, future.shape))
    results = evaluate_forecasts(origin, future, predicted, horizons, closes[:100])
    assert list(results) == [1, 7]
    assert results[7] == evaluate_horizon(origin, future[:, 1], predicted[:, 1], 7, closes[:100])

    naive = evaluate_forecasts(origin, future, np.column_stack([origin, origin]), horizons, closes[:100])
    table = metrics_table({"model": results, "naive": naive})
    assert list(table.columns[:2]) == ["model", "horizon"]
    assert list(table.columns[2:]) == list(METRIC_KEYS)
    assert table[["model", "horizon"]].values.tolist() == [["model", 1], ["model", 7], ["naive", 1], ["naive", 7]]
    assert table.loc[table.model == "naive", "rmse_ratio"].tolist() == [1.0, 1.0]

    with pytest.raises(ValueError, match="shape"):
        evaluate_forecasts(origin, future[:, :1], predicted, horizons, closes[:100])
    with pytest.raises(ValueError, match="at least one"):
        metrics_table({})
