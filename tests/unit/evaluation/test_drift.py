"""PSI and KS against hand-computed values; the reference summary of a distribution."""

import math

import numpy as np
import pytest
from scipy import stats

from atb.evaluation.drift import bin_counts, distribution, drift_against, psi


def test_psi_by_hand():
    # shares 0.5/0.5 against 0.25/0.75: (0.25-0.5)ln(0.25/0.5) + (0.75-0.5)ln(0.75/0.5)
    assert psi([2, 2], [1, 3]) == pytest.approx(0.25 * math.log(2) + 0.25 * math.log(1.5))
    assert psi([5, 5, 5], [5, 5, 5]) == 0.0
    assert psi([1, 1], [2, 0]) == pytest.approx((1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))


def test_bins_put_outside_values_in_the_end_bins():
    assert bin_counts(np.array([-5.0, 0.5, 1.5, 2.5, 9.0]), np.array([0.0, 1.0, 2.0, 3.0])).tolist() == [2, 1, 2]


def test_ks_matches_scipy_on_the_stored_sample_and_a_shift_is_seen():
    rng = np.random.default_rng(0)
    reference = distribution(rng.normal(size=5000))
    same, shifted = rng.normal(size=300), rng.normal(loc=1.0, size=300)
    assert drift_against(reference, same)["ks"] == pytest.approx(stats.ks_2samp(reference["sample"], same).statistic)
    calm, moved = drift_against(reference, same), drift_against(reference, shifted)
    assert calm["psi"] < 0.1 and calm["ks_pvalue"] > 0.01 and calm["outside_1_99"] < 0.05
    assert moved["psi"] > 0.25 and moved["ks_pvalue"] < 1e-6 and moved["outside_1_99"] > 0.05
    assert sum(reference["counts"]) == 5000 and len(reference["sample"]) == 200


def test_the_no_drift_limit_comes_from_windows_of_the_reference_rows():
    from atb.evaluation.drift import null_limit, null_psi

    rng = np.random.default_rng(1)
    slow = np.cumsum(rng.normal(size=3000)) * 0.01  # a persistent series: short windows cover little of its range
    reference = distribution(slow)
    reference["null_psi"] = null_psi(slow, reference)
    assert set(reference["null_psi"]) == {"30", "90", "180", "365"}
    assert null_limit(reference, 100) == reference["null_psi"]["90"]["q99"] > reference["null_psi"]["365"]["q99"]
    assert null_limit({"counts": [1]}, 90) is None
