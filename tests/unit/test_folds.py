import numpy as np
import pytest

from atb.folds import cv_folds, purged_kfold, walk_forward_folds


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


@pytest.mark.parametrize("scheme", ["expanding", "rolling", "purged-kfold", "monte-carlo"])
@pytest.mark.parametrize("horizon", [1, 7, 30])
@pytest.mark.parametrize("embargo", [0, 5])
def test_every_scheme_purges_and_embargoes_exactly(scheme, horizon, embargo):
    lookback = 20
    folds = cv_folds(scheme, 1200, n_splits=4, max_horizon=horizon, embargo=embargo, lookback=lookback, seed=3)
    assert len(folds) == 4
    for fold in folds:
        train, val, test = (set(part.tolist()) for part in fold.parts)
        assert not (train & val or train & test or val & test)  # a fold never overlaps its own test block
        for block in (fold.train, fold.val):  # no target of a fitted origin reaches a test target, and the reverse
            before, after = block[block < fold.test[0]], block[block > fold.test[-1]]
            if len(before):
                assert before.max() + horizon < fold.test[0]
            if len(after):  # after the test block: purge, embargo, and windows clear of the test targets
                assert after.min() - fold.test[-1] > horizon + max(embargo, lookback - 1)
        if scheme != "purged-kfold":  # chronological: [train][gap][val][gap][test], each gap exactly max_horizon + embargo
            gap = horizon + embargo
            assert fold.val[0] - fold.train[-1] - 1 == gap and fold.test[0] - fold.val[-1] - 1 == gap
            assert np.all(np.diff(fold.train) == 1) and np.all(np.diff(fold.val) == 1) and np.all(np.diff(fold.test) == 1)
        else:
            assert fold.train[fold.train < fold.val[0]].max() + horizon + embargo < fold.val[0]


def test_monte_carlo_folds_are_seeded_random_windows_of_the_first_fold_s_shape():
    first = walk_forward_folds(1200, n_splits=4, max_horizon=7, embargo=7)[0]
    folds = cv_folds("monte-carlo", 1200, n_splits=4, max_horizon=7, embargo=7, seed=1)
    assert [f.test[0] for f in folds] == [f.test[0] for f in cv_folds("monte-carlo", 1200, 4, 7, 7, seed=1)]
    assert [f.test[0] for f in folds] != [f.test[0] for f in cv_folds("monte-carlo", 1200, 4, 7, 7, seed=2)]
    for fold in folds:
        shift = fold.train[0] - first.train[0]
        for part, template in zip(fold.parts, first.parts):
            np.testing.assert_array_equal(part, template + shift)
        assert fold.test[-1] < 1200


def test_an_unknown_scheme_is_refused_by_name():
    with pytest.raises(ValueError, match="cv scheme 'bootstrap' is not one of"):
        cv_folds("bootstrap", 1000)
