import numpy as np
import pytest

from atb.folds import purged_kfold, walk_forward_folds


@pytest.mark.parametrize("mode", ["expanding", "rolling"])
@pytest.mark.parametrize("embargo", [0, 5])
def test_walk_forward_blocks_are_purged_and_tests_cover_the_tail(mode, embargo):
    n, splits, horizon = 1200, 5, 30
    folds = walk_forward_folds(n, n_splits=splits, max_horizon=horizon, embargo=embargo, mode=mode)
    assert [fold.index for fold in folds] == list(range(splits))
    gap = horizon + embargo
    for fold in folds:
        assert fold.train.max() + gap < fold.val.min()
        assert fold.val.max() + gap < fold.test.min()
        for part in (fold.train, fold.val, fold.test):
            np.testing.assert_array_equal(part, np.arange(part[0], part[-1] + 1))
        assert fold.train.min() >= 0
    tests = np.concatenate([fold.test for fold in folds])
    np.testing.assert_array_equal(tests, np.arange(n - len(tests), n))
    assert len(tests) == splits * (n // (splits + 1))


def test_rolling_windows_keep_their_length_and_expanding_ones_grow():
    rolling = walk_forward_folds(1000, n_splits=4, max_horizon=7, mode="rolling")
    assert len({len(fold.train) for fold in rolling}) == 1
    assert len({len(fold.val) for fold in rolling}) == 1
    assert rolling[-1].train[0] > rolling[0].train[0]
    expanding = walk_forward_folds(1000, n_splits=4, max_horizon=7)
    assert all(fold.train[0] == 0 for fold in expanding)
    assert np.all(np.diff([len(fold.train) for fold in expanding]) > 0)
    history = len(expanding[0].train) + len(expanding[0].val)
    assert len(expanding[0].val) == round(0.15 * history)


def test_walk_forward_options_and_arrays_are_read_only():
    folds = walk_forward_folds(500, n_splits=3, max_horizon=1, test_size=50)
    assert [len(fold.test) for fold in folds] == [50, 50, 50] and folds[-1].test[-1] == 499
    with pytest.raises(ValueError, match="read-only"):
        folds[0].train[0] = 3


def test_walk_forward_names_the_numbers_when_data_is_short():
    with pytest.raises(ValueError, match=r"n_origins=200 .* fewer than min_train=100"):
        walk_forward_folds(200, n_splits=5, max_horizon=30, min_train=100)
    with pytest.raises(ValueError, match="n_origins=3 is too few for n_splits=5"):
        walk_forward_folds(3, n_splits=5)
    with pytest.raises(ValueError, match="mode must be one of"):
        walk_forward_folds(1000, mode="sliding")


@pytest.mark.parametrize("embargo", [0, 4])
def test_purged_kfold_drops_overlapping_targets_and_the_embargo(embargo):
    n, k, horizon = 500, 5, 10
    splits = purged_kfold(n, k=k, max_horizon=horizon, embargo=embargo)
    tests = np.concatenate([test for _, test in splits])
    np.testing.assert_array_equal(tests, np.arange(n))
    for train, test in splits:
        first, last = test[0], test[-1]
        assert not np.intersect1d(train, test).size
        # no training target window [i, i + h] meets the test block's span
        assert not np.any((train + horizon >= first) & (train <= last))
        # nor the embargo after it
        assert not np.any((train > last) & (train <= last + embargo))
        # everything farther away is kept
        expected = np.setdiff1d(np.arange(n), np.arange(first - horizon, last + horizon + embargo + 1))
        np.testing.assert_array_equal(train, expected)


def test_purged_kfold_errors():
    with pytest.raises(ValueError, match="2 <= k <= n_origins"):
        purged_kfold(3, k=5)
    with pytest.raises(ValueError, match="leaves no training origins"):
        purged_kfold(20, k=2, max_horizon=30)
