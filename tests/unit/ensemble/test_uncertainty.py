import numpy as np
import pytest

from atb.ensemble.uncertainty import (
    ConformalIntervals,
    combine_uncertainty,
    coverage,
    interval_score,
    mean_width,
    summarise_samples,
)


def test_summary_shapes_and_nested_intervals():
    samples = np.random.default_rng(0).normal(0.0, 1.0, size=(200, 5, 3))
    summary = summarise_samples(samples)
    assert set(summary) == {"mean", "std", "lower_80", "upper_80", "lower_95", "upper_95"}
    assert all(value.shape == (5, 3) for value in summary.values())
    assert np.all(summary["lower_95"] <= summary["lower_80"])
    assert np.all(summary["lower_80"] < summary["mean"]) and np.all(summary["mean"] < summary["upper_80"])
    assert np.all(summary["upper_80"] <= summary["upper_95"])
    np.testing.assert_allclose(summary["std"], samples.std(axis=0, ddof=1))
    np.testing.assert_allclose(summary["upper_80"], np.quantile(samples, 0.9, axis=0))
    with pytest.raises(ValueError, match=r"\(S, n, H\) with S >= 2"):
        summarise_samples(samples[:1])


def test_mixture_moments_match_a_hand_computation():
    means = {"a": np.array([[0.0]]), "b": np.array([[2.0]])}
    stds = {"a": np.array([[1.0]]), "b": np.array([[3.0]])}
    # mean = 0.25*0 + 0.75*2 = 1.5; E[x^2] = 0.25*(1+0) + 0.75*(9+4) = 10; var = 10 - 2.25
    mean, std = combine_uncertainty(means, stds, {"a": 0.25, "b": 0.75})
    np.testing.assert_allclose(mean, [[1.5]])
    np.testing.assert_allclose(std, [[np.sqrt(7.75)]])
    mean_t, std_t = combine_uncertainty(means, stds, np.array([[[0.25], [0.75]]]))
    np.testing.assert_allclose(mean_t, mean)
    np.testing.assert_allclose(std_t, std)
    with pytest.raises(ValueError, match="sum to 1"):
        combine_uncertainty(means, stds, {"a": 0.5, "b": 0.6})


def test_conformal_quantile_matches_a_hand_computation():
    pred = np.zeros((4, 2))
    y = np.array([[0.4, -1.0], [-0.1, 2.0], [0.3, -3.0], [0.2, 4.0]])
    intervals = ConformalIntervals(levels=(0.5, 0.8, 0.9)).fit(pred, y)
    # n = 4: level 0.5 -> rank ceil(2.5) = 3; level 0.8 -> rank ceil(4.0) = 4; level 0.9 -> rank 5 > n
    np.testing.assert_allclose(intervals.quantiles_[0.5], [0.3, 3.0])
    np.testing.assert_allclose(intervals.quantiles_[0.8], [0.4, 4.0])
    assert np.all(np.isinf(intervals.quantiles_[0.9]))
    lower, upper = intervals.interval(np.ones((2, 2)), 0.5)
    np.testing.assert_allclose(lower, [[0.7, -2.0]] * 2)
    np.testing.assert_allclose(upper, [[1.3, 4.0]] * 2)
    with pytest.raises(ValueError, match="was not calibrated"):
        intervals.interval(pred, 0.95)


def test_conformal_coverage_is_close_to_nominal_on_exchangeable_data():
    rng = np.random.default_rng(1)
    n, scales = 2000, np.array([0.01, 0.03, 0.08])

    def draw():
        pred = rng.normal(0.0, 0.02, size=(n, 3))
        return pred, pred + rng.standard_t(4, size=(n, 3)) * scales

    intervals = ConformalIntervals().fit(*draw())
    pred_test, y_test = draw()
    for level in (0.8, 0.95):
        lower, upper = intervals.interval(pred_test, level)
        np.testing.assert_allclose(coverage(lower, upper, y_test), level, atol=0.05)


def test_coverage_width_and_interval_score():
    lower, upper = np.zeros((4, 1)), np.ones((4, 1))
    y = np.array([[0.5], [1.0], [1.5], [-1.0]])
    np.testing.assert_allclose(coverage(lower, upper, y), [0.5])
    np.testing.assert_allclose(mean_width(lower, upper), [1.0])
    # level 0.8 -> penalty 2 / 0.2 = 10; misses by 0.5 and 1.0
    np.testing.assert_allclose(interval_score(lower, upper, y, 0.8), [(4 * 1.0 + 10 * 0.5 + 10 * 1.0) / 4])
    with pytest.raises(ValueError, match="share one"):
        coverage(lower, upper, y[:3])
