"""Direction metrics checked by hand on tiny arrays."""

import math

import numpy as np
import pytest

from atb.evaluation.direction import direction_metrics, direction_report, probability_metrics, probability_report


def test_six_origins_by_hand():
    origin = np.full(7, 100.0)
    actual = np.array([101, 102, 99, 98, 103, 100, 97], dtype=float)  # up up down down up (flat: left out) down
    predicted = np.array([100.5, 99.0, 99.5, 101.0, 100.2, 105.0, 99.0])  # up down down up up (left out) down
    m = direction_metrics(origin, actual, predicted)
    # truth (up?): T T F F T F ; calls (up?): T F F T T F
    # TP = 2 (1st, 5th), FP = 1 (4th), FN = 1 (2nd), TN = 2 (3rd, 6th)
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    # AUC of the moves (+0.5, -1, -0.5, +1, +0.2, -1) for ups (+0.5, -1, +0.2) against downs (-0.5, +1, -1):
    # pairs up > down: 0.5 beats -0.5, -1; -1 beats none (ties with -1: half); 0.2 beats -0.5, -1 -> (2 + 0.5 + 2) / 9
    assert m["roc_auc"] == pytest.approx(4.5 / 9)
    majority = m["majority"]  # 3 up, 3 down: "up" on a tie
    assert majority["direction"] == "up" and majority["accuracy"] == 0.5
    assert majority["precision"] == 0.5 and majority["recall"] == 1.0 and majority["f1"] == pytest.approx(2 / 3)
    assert 0.0 < m["accuracy_pvalue"] < 1.0


def test_undefined_values_are_nan_not_zero():
    origin = np.full(4, 10.0)
    m = direction_metrics(origin, np.array([11.0, 12.0, 9.0, 8.0]), origin)  # never calls up
    assert math.isnan(m["precision"]) and m["recall"] == 0.0 and m["roc_auc"] == 0.5
    all_up = direction_metrics(origin, np.array([11.0, 12.0, 13.0, 14.0]), origin + 1)
    assert math.isnan(all_up["roc_auc"]) and all_up["accuracy"] == 1.0
    report = direction_report(origin, np.column_stack([origin + 1, origin - 1]), np.column_stack([origin + 2, origin + 2]), (1, 7))
    assert report[1]["accuracy"] == 1.0 and report[7]["accuracy"] == 0.0


def test_probability_metrics_by_hand():
    origin = np.full(4, 1.0)
    actual = np.array([2.0, 0.5, 2.0, 1.0])  # up, down, up, no move (left out)
    probability = np.array([0.8, 0.3, 0.4, 0.9])  # calls: up, down, down
    m = probability_metrics(origin, actual, probability, base_rate=0.5, horizon=1)
    assert m["n"] == 3 and m["accuracy"] == pytest.approx(2 / 3)
    assert m["precision"] == 1.0 and m["recall"] == 0.5 and m["f1"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == 1.0  # both ups (0.8, 0.4) above the down (0.3)
    assert m["brier"] == pytest.approx((0.2**2 + 0.3**2 + 0.6**2) / 3)
    assert m["log_loss"] == pytest.approx(-(math.log(0.8) + math.log(0.7) + math.log(0.4)) / 3)
    assert m["base_rate"] == {"up_share": 0.5, "brier": 0.25, "log_loss": pytest.approx(math.log(2))}
    assert m["brier_skill"] == pytest.approx(1 - (0.49 / 3) / 0.25)
    assert m["majority"]["direction"] == "up" and m["majority"]["accuracy"] == pytest.approx(2 / 3)
    assert m["majority"]["brier"] == pytest.approx(1 / 3)  # always 1.0: one miss in three


def test_probability_report_per_horizon_and_refuses_non_probabilities():
    origin = np.full(5, 10.0)
    future = np.array([[11, 9], [9, 11], [11, 11], [9, 9], [12, 8]], dtype=float)
    probability = np.array([[0.9, 0.1], [0.2, 0.7], [0.6, 0.8], [0.1, 0.4], [0.7, 0.2]])
    report = probability_report(origin, future, probability, np.array([0.5, 0.5]), (1, 7))
    assert set(report) == {1, 7} and report[1]["accuracy"] == 1.0 and report[7]["accuracy"] == 1.0
    assert report[1]["brier"] < report[1]["base_rate"]["brier"]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        probability_metrics(origin, future[:, 0], probability[:, 0] + 1.0, 0.5, 1)
