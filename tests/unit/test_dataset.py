"""Dataset builder: chronology, purge, fitted pieces that see only training rows."""

import numpy as np
import pandas as pd
import pytest

from atb.config import DatasetSpec
from atb.dataset import (
    FeatureTransform,
    Split,
    TargetSpec,
    auxiliary_training_windows,
    build_dataset,
    early_stopping_split,
    select_features,
    split_origins,
)


def _candles(n=600, seed=0):
    rng = np.random.default_rng(seed)
    index = pd.date_range("2020-01-01", periods=n, freq="1D", tz="UTC", name="timestamp")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": rng.uniform(1, 2, n)},
        index=index,
    )


def _features(candles, seed=1):
    rng = np.random.default_rng(seed)
    log_close = np.log(candles["close"])
    frame = pd.DataFrame(
        {f"noise_{i}": rng.normal(size=len(candles)) for i in range(6)}, index=candles.index
    )
    frame["ret_1"] = log_close.diff()
    frame["ret_5"] = log_close.diff(5)
    frame.iloc[:5] = np.nan  # warm-up
    return frame


def test_shapes_split_and_purge():
    candles = _candles()
    ds = build_dataset(candles, _features(candles), DatasetSpec(horizons=(1, 7, 30), lookback=20, n_features=4))
    assert ds.train.X.shape[1:] == (20, 4) and ds.train.y.shape[1] == 3
    assert ds.input_shape == (20, 4)
    # chronological and purged: the last training target ends before the first validation origin
    assert ds.train.origin_time[-1] < ds.val.origin_time[0] < ds.test.origin_time[0]
    last_train_target = pd.Timestamp(ds.train.origin_time[-1]) + pd.Timedelta(days=30)
    assert last_train_target < pd.Timestamp(ds.val.origin_time[0])
    assert pd.Timestamp(ds.val.origin_time[-1]) + pd.Timedelta(days=30) < pd.Timestamp(ds.test.origin_time[0])
    # targets are log returns of the real closes, and map back to prices
    np.testing.assert_allclose(ds.test.y, np.log(ds.test.future_close / ds.test.origin_close[:, None]), rtol=1e-6)
    np.testing.assert_allclose(ds.transform.target.to_prices(ds.test.y, ds.test.origin_close), ds.test.future_close, rtol=1e-5)


def test_window_ends_at_origin():
    candles = _candles()
    features = _features(candles)
    ds = build_dataset(candles, features, DatasetSpec(lookback=10, n_features=8, horizons=(1,)))
    t = pd.Timestamp(ds.val.origin_time[3])
    expected = ds.transform.scale_frame(features.loc[:t].iloc[-10:])
    np.testing.assert_array_equal(ds.val.X[3], expected)
    np.testing.assert_array_equal(ds.transform.latest_window(features.loc[:t])[0], expected)


def test_changing_validation_and_test_rows_changes_nothing_fitted():
    candles = _candles()
    features = _features(candles)
    base = build_dataset(candles, features, DatasetSpec(lookback=20, n_features=4))
    # every row from the first validation origin on: validation and test data
    later = candles.index >= pd.Timestamp(base.val.origin_time[0])
    rng = np.random.default_rng(7)
    candles2, features2 = candles.copy(), features.copy()
    candles2.loc[later, "close"] *= rng.uniform(0.5, 2.0, later.sum())
    features2.loc[later] = rng.normal(size=(later.sum(), features.shape[1])) * 100
    changed = build_dataset(candles2, features2, DatasetSpec(lookback=20, n_features=4))

    assert changed.transform.feature_names == base.transform.feature_names
    np.testing.assert_array_equal(changed.transform.center, base.transform.center)
    np.testing.assert_array_equal(changed.transform.scale, base.transform.scale)
    np.testing.assert_array_equal(changed.train.X, base.train.X)
    np.testing.assert_array_equal(changed.train.y, base.train.y)
    pd.testing.assert_series_equal(changed.feature_scores, base.feature_scores)
    # and the test part did change, so the check could fail
    assert not np.array_equal(changed.test.X, base.test.X)


def test_selection_prefers_informative_features():
    rng = np.random.default_rng(0)
    target = pd.Series(rng.normal(size=300))
    features = pd.DataFrame({"noise": rng.normal(size=300), "signal": target + rng.normal(scale=0.1, size=300), "const": 1.0})
    selected, scores = select_features(features, target, 2)
    assert selected == ["signal", "noise"]
    assert scores["const"] == 0.0


def test_selection_against_close():
    candles = _candles()
    ds = build_dataset(candles, _features(candles), DatasetSpec(lookback=20, n_features=2, selection_target="close"))
    assert len(ds.transform.feature_names) == 2


def test_price_targets():
    candles = _candles()
    ds = build_dataset(candles, _features(candles), DatasetSpec(lookback=20, n_features=3, target_kind="price"))
    np.testing.assert_allclose(ds.test.y, ds.test.future_close, rtol=1e-6)


def test_transform_round_trip(tmp_path):
    candles = _candles()
    ds = build_dataset(candles, _features(candles), DatasetSpec(lookback=20, n_features=3))
    ds.transform.save(tmp_path / "transform.json")
    loaded = FeatureTransform.load(tmp_path / "transform.json")
    assert loaded.feature_names == ds.transform.feature_names
    np.testing.assert_array_equal(loaded.center, ds.transform.center)
    assert loaded.target == TargetSpec((1, 7, 30), "log_return")


def test_corrupt_transform_is_a_clear_error(tmp_path):
    (tmp_path / "transform.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"transform\.json is corrupt"):
        FeatureTransform.load(tmp_path / "transform.json")
    with pytest.raises(FileNotFoundError, match=r"transform\.json is missing"):
        FeatureTransform.load(tmp_path / "nowhere" / "transform.json")


def test_too_few_rows_is_a_clear_error():
    candles = _candles(80)
    with pytest.raises(ValueError, match=r"not enough data: 80 bars leave .* lookback 60 and horizon 30"):
        build_dataset(candles, _features(candles), DatasetSpec(lookback=60))


def test_split_origins_refuses_empty_parts():
    with pytest.raises(ValueError, match=r"no validation origins"):
        split_origins(100, (0.7, 0.15, 0.15), purge=30)


def test_a_global_models_other_series_stays_inside_the_targets_training_dates():
    candles, other = _candles(seed=0), _candles(seed=5)
    spec = DatasetSpec(lookback=20, n_features=4)
    target = build_dataset(candles, _features(candles), spec)
    last = pd.Timestamp(target.train.origin_time[-1])
    windows = auxiliary_training_windows(other, _features(other, seed=6), target.transform, last)
    assert pd.Timestamp(windows.origin_time[-1]) == last and len(windows) == len(target.train)
    target_ends = pd.DatetimeIndex(windows.origin_time) + pd.Timedelta(days=max(spec.horizons))
    assert target_ends.max() < pd.Timestamp(target.val.origin_time[0])  # no target reaches validation dates
    np.testing.assert_allclose(windows.y, np.log(windows.future_close / windows.origin_close[:, None]), rtol=1e-6)

    changed = other.copy()
    later = changed.index >= pd.Timestamp(target.val.origin_time[0])
    changed.loc[later, "close"] *= 3.0  # the other series' validation and test dates change
    features = _features(other, seed=6)
    features.loc[later] += 100.0
    again = auxiliary_training_windows(changed, features, target.transform, last)
    np.testing.assert_array_equal(again.X, windows.X)
    np.testing.assert_array_equal(again.y, windows.y)


def test_early_stopping_holds_out_the_latest_training_dates_after_a_purge():
    candles, other = _candles(seed=0), _candles(seed=5)
    spec = DatasetSpec(lookback=20, n_features=4)
    target = build_dataset(candles, _features(candles), spec)
    windows = auxiliary_training_windows(other, _features(other, seed=6), target.transform, pd.Timestamp(target.train.origin_time[-1]))
    joined = Split.concatenate(target.train, windows)  # a global model's training windows: two series, shared dates

    fit_on, stop_on = early_stopping_split(joined, share=0.2, purge=30)
    dates = np.unique(joined.origin_time)
    n_stop = round(0.2 * len(dates))
    np.testing.assert_array_equal(np.unique(stop_on.origin_time), dates[-n_stop:])
    np.testing.assert_array_equal(np.unique(fit_on.origin_time), dates[: len(dates) - n_stop - 30])
    assert len(stop_on) == 2 * n_stop  # both series are cut at the same dates
    np.testing.assert_array_equal(stop_on.y, np.concatenate([target.train.y[-n_stop:], windows.y[-n_stop:]]))
    assert pd.Timestamp(fit_on.origin_time.max()) + pd.Timedelta(days=30) < pd.Timestamp(stop_on.origin_time.min())

    with pytest.raises(ValueError, match=r"not enough training origins to stop early.*stop_share 0.4 and a purge of 300"):
        early_stopping_split(target.train, share=0.4, purge=300)


def _with_idle_stretch(candles, start, length):
    """`length` bars without trades from `start`: OHLC = the previous close, volume 0 (a filled gap)."""
    out = candles.copy()
    previous = out["close"].iloc[start - 1]
    out.iloc[start : start + length, :4] = previous
    out.iloc[start : start + length, 4] = 0.0
    return out


def test_no_window_or_target_touches_a_long_idle_stretch():
    spec = DatasetSpec(horizons=(1, 7), lookback=20, n_features=4, max_idle_bars=5)
    candles = _with_idle_stretch(_candles(900), 400, 25)
    ds = build_dataset(candles, _features(candles), spec)
    idle = candles.index[400:425]
    for split in (ds.train, ds.val, ds.test):
        for origin in pd.DatetimeIndex(split.origin_time):
            touched = (idle >= origin - pd.Timedelta(days=19)) & (idle <= origin + pd.Timedelta(days=7))
            assert not touched.any(), origin
    assert any("25 bar(s) in stretches of more than 5 bars without trades" in note for note in ds.notes)
    short = _with_idle_stretch(_candles(900), 400, 5)  # a quiet spell, not an outage: nothing left out
    assert len(build_dataset(short, _features(short), spec).train) == len(build_dataset(_candles(900), _features(_candles(900)), spec).train)


def test_a_constant_series_is_a_clear_error():
    candles = _candles(600)
    candles.iloc[:, :4] = 100.0
    with pytest.raises(ValueError, match=r"the close is 100.0 on every bar of the training part .* nothing to learn"):
        build_dataset(candles, _features(candles), DatasetSpec(horizons=(1, 7), lookback=20, n_features=4))


def test_tiny_evaluation_parts_are_refused_and_small_ones_flagged():
    spec = DatasetSpec(horizons=(1, 7, 30), lookback=20, n_features=4)
    with pytest.raises(ValueError, match=r"the validation part has \d+ forecast origin\(s\), fewer than 30"):
        build_dataset(_candles(260), _features(_candles(260)), spec)
    ds = build_dataset(_candles(700), _features(_candles(700)), spec)
    assert any(note.startswith(f"the test part has {len(ds.test)} forecast origins") for note in ds.notes)
    assert not build_dataset(_candles(700), _features(_candles(700)), DatasetSpec(horizons=(1, 7), lookback=20, n_features=4)).notes
