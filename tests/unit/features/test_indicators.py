"""Feature library: causality of every column, coverage and quality on BTCUSDT daily, hand-checked values."""

from importlib import resources

import numpy as np
import pandas as pd
import pytest

from atb.features import (
    FEATURE_CATEGORIES,
    OHLCV_CATEGORIES,
    WARMUP_BARS,
    category_counts,
    compute_features,
    feature_categories,
    indicators,
)


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    path = resources.files("atb.data") / "samples" / "BTCUSDT_1d.csv"
    frame = pd.read_csv(path, parse_dates=["timestamp"], index_col="timestamp")
    frame.index = frame.index.tz_localize("UTC")
    return frame


@pytest.fixture(scope="module")
def daily_features(daily) -> pd.DataFrame:
    return compute_features(daily)


def make_ohlcv(close, high=None, low=None, volume=None, freq="1D") -> pd.DataFrame:
    """Candles from closes; open = previous close, high/low default to +-1% of the bar's extremes."""
    close = np.asarray(close, dtype=float)
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) * 1.01 if high is None else np.asarray(high, dtype=float)
    low = np.minimum(open_, close) * 0.99 if low is None else np.asarray(low, dtype=float)
    volume = np.full(len(close), 100.0) if volume is None else np.asarray(volume, dtype=float)
    index = pd.date_range("2024-01-01", periods=len(close), freq=freq, tz="UTC", name="timestamp")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index)


def random_walk(n: int, seed: int, freq: str = "1D") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    frame = make_ohlcv(close, freq=freq)
    frame["open"] *= np.exp(rng.normal(0.0, 0.001, n))
    frame["high"] = np.maximum(frame["high"], frame["open"])
    frame["low"] = np.minimum(frame["low"], frame["open"])
    frame["high"] *= np.exp(np.abs(rng.normal(0.0, 0.01, n)))
    frame["low"] *= np.exp(-np.abs(rng.normal(0.0, 0.01, n)))
    frame["volume"] = rng.lognormal(5.0, 1.0, n)
    return frame


def perturb_tail(frame: pd.DataFrame, start: int, seed: int) -> pd.DataFrame:
    """Replace every bar from position `start` with wild but valid candles (price jumps, huge or zero volume)."""
    rng = np.random.default_rng(seed)
    changed = frame.copy()
    n = len(frame) - start
    level = np.exp(rng.normal(0.0, 1.0, n))
    for column in ("open", "close"):
        changed.iloc[start:, changed.columns.get_loc(column)] *= level * np.exp(rng.normal(0.0, 0.2, n))
    body_high = changed[["open", "close"]].iloc[start:].max(axis=1).to_numpy()
    body_low = changed[["open", "close"]].iloc[start:].min(axis=1).to_numpy()
    changed.iloc[start:, changed.columns.get_loc("high")] = body_high * np.exp(np.abs(rng.normal(0.0, 0.3, n)))
    changed.iloc[start:, changed.columns.get_loc("low")] = body_low * np.exp(-np.abs(rng.normal(0.0, 0.3, n)))
    volume = frame["volume"].to_numpy()[start:] * 10.0 ** rng.uniform(-3.0, 5.0, n)
    volume[rng.random(n) < 0.2] = 0.0
    changed.iloc[start:, changed.columns.get_loc("volume")] = volume
    return changed


def assert_causal(compute, frame: pd.DataFrame, t: int, extra: int, seed: int = 0) -> None:
    """Features of bars < t must not change when bars t .. t+extra-1 are appended and scrambled.

    Compared exactly: pandas rolling and `adjust=False` EWM kernels run left to
    right, so a value at bar t is the same floating-point computation whatever
    follows it.
    """
    truncated = compute(frame.iloc[:t])
    extended = compute(perturb_tail(frame.iloc[: t + extra], t, seed)).iloc[:t]
    assert list(truncated.columns) == list(extended.columns)
    for column in truncated.columns:
        np.testing.assert_array_equal(
            extended[column].to_numpy(), truncated[column].to_numpy(), err_msg=f"{column} looks ahead"
        )


# --- causality -----------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [260, 1500, 2800])
def test_no_feature_changes_when_future_bars_are_appended_and_scrambled(daily, t):
    assert_causal(compute_features, daily, t=t, extra=120, seed=t)


def test_intraday_features_are_causal_too():
    assert_causal(compute_features, random_walk(700, seed=3, freq="2h"), t=450, extra=60)


def test_scrambled_tail_really_changes_the_features(daily):
    """Guards the leakage test itself: the perturbation must reach features at and after t."""
    t = 1500
    original = compute_features(daily.iloc[: t + 50]).iloc[t:]
    scrambled = compute_features(perturb_tail(daily.iloc[: t + 50], t, seed=1)).iloc[t:]
    unchanged = {c for c in original.columns if np.allclose(original[c], scrambled[c], equal_nan=True)}
    calendar = {c for c in original.columns if c.startswith("time_")}
    flags = {c for c in original.columns if set(original[c].dropna().unique()) <= {0.0, 1.0}}
    assert calendar <= unchanged
    assert unchanged - calendar <= flags  # a 0/1 flag may well keep its value for 50 bars


def test_leakage_check_catches_a_feature_that_peeks_one_bar_ahead(daily):
    def leaky(frame):
        features = compute_features(frame)
        features["price_next_return"] = np.log(frame["close"]).diff().shift(-1)
        return features

    with pytest.raises(AssertionError, match="price_next_return looks ahead"):
        assert_causal(leaky, daily, t=1000, extra=10)


# --- coverage and quality on BTCUSDT daily ----------------------------------------------------------


def test_at_least_150_float_features_on_the_same_index(daily, daily_features):
    assert daily_features.shape[1] >= 150
    assert daily_features.index.equals(daily.index)
    assert daily_features.columns.is_unique
    assert set(daily_features.dtypes) == {np.dtype("float64")}


def test_after_warm_up_no_column_is_nan_infinite_or_constant(daily_features):
    after = daily_features.iloc[WARMUP_BARS:]
    assert not after.columns[after.isna().any()].tolist()
    assert not after.columns[np.isinf(after.to_numpy()).any(axis=0)].tolist()
    assert not after.columns[after.nunique() <= 1].tolist()


def test_warm_up_is_tight(daily_features):
    """The last warm-up row still holds a NaN: WARMUP_BARS is not padded."""
    assert daily_features.iloc[WARMUP_BARS - 1].isna().any()


def test_every_category_is_present_and_counts_add_up(daily_features):
    counts = category_counts(daily_features.columns)
    assert tuple(counts) == FEATURE_CATEGORIES
    assert all(counts[category] > 0 for category in OHLCV_CATEGORIES)
    assert counts["exogenous"] == 0
    assert sum(counts.values()) == daily_features.shape[1]
    assert set(feature_categories(daily_features.columns).values()) == set(OHLCV_CATEGORIES)


def test_category_modules_cover_exactly_the_ohlcv_categories():
    assert tuple(indicators._CATEGORY_MODULES) == OHLCV_CATEGORIES


def test_unknown_prefix_is_a_clear_error():
    with pytest.raises(ValueError, match="'close' has no known category prefix"):
        feature_categories(["mom_rsi_14", "close"])


def test_features_are_scale_free(daily, daily_features):
    """Prices x1000 and volume x1e-3 give the same features: no raw levels leak in."""
    rescaled = daily.copy()
    rescaled[["open", "high", "low", "close"]] *= 1000.0
    rescaled["volume"] *= 1e-3
    again = compute_features(rescaled).iloc[WARMUP_BARS:]
    expected = daily_features.iloc[WARMUP_BARS:]
    for column in expected.columns:
        np.testing.assert_allclose(again[column], expected[column], rtol=1e-6, atol=1e-9, err_msg=column)


def test_hour_of_day_only_for_intraday_bars(daily_features):
    intraday = compute_features(random_walk(1300, seed=5, freq="2h"))  # 108 days: crosses a quarter
    assert {"time_hour_sin", "time_hour_cos"} <= set(intraday.columns)
    assert not any(c.startswith("time_hour") for c in daily_features.columns)
    after = intraday.iloc[WARMUP_BARS:]
    assert not after.columns[after.nunique() <= 1].tolist()
    assert not after.isna().any().any()


def test_weekly_bars_drop_day_of_week():
    weekly = compute_features(random_walk(300, seed=6, freq="7D"))
    assert not any(c.startswith("time_day_of_week") or c == "time_is_weekend" for c in weekly.columns)
    assert "time_month_sin" in weekly.columns


def test_zero_volume_bars_stay_finite():
    frame = random_walk(400, seed=7)
    frame.iloc[250:280, frame.columns.get_loc("volume")] = 0.0
    frame.iloc[260:270, frame.columns.get_loc("high")] = frame["close"].iloc[260:270]
    frame.iloc[260:270, frame.columns.get_loc("low")] = frame["close"].iloc[260:270]
    frame.iloc[260:270, frame.columns.get_loc("open")] = frame["close"].iloc[260:270]
    features = compute_features(frame)
    assert np.isfinite(features.iloc[WARMUP_BARS:].to_numpy()).all()
    assert features["volume_ratio_sma_20"].iloc[269] == 1.0  # 20 bars without volume: neutral ratio
    assert features["price_close_position"].iloc[265] == 0.5  # empty range: middle


def test_short_history_gives_nan_columns_not_errors():
    features = compute_features(random_walk(40, seed=8))
    assert features["ma_sma_200_ratio"].isna().all()
    assert features["price_logret_1"].notna().iloc[1:].all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="volume"), r"missing column\(s\) \['volume'\]"),
        (lambda f: f.tz_localize(None), "timezone-aware"),
        (lambda f: f.iloc[::-1], "sorted and unique"),
        (lambda f: f.assign(close=f["close"].where(f.index != f.index[5])), "NaN or infinite values at 2024-01-06"),
        (lambda f: f.assign(low=f["low"].where(f.index != f.index[3], 0.0)), "non-positive price at 2024-01-04"),
        (lambda f: f.assign(volume=-f["volume"]), "negative volume at 2024-01-01"),
    ],
)
def test_bad_input_is_a_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        compute_features(change(random_walk(30, seed=9)))


# --- values checked by hand -------------------------------------------------------------------------


def test_sma_ratio_and_log_return_by_hand():
    features = compute_features(make_ohlcv(np.arange(1.0, 31.0)))
    assert features["ma_sma_5_ratio"].iloc[3] != features["ma_sma_5_ratio"].iloc[3]  # NaN before 5 bars
    assert features["ma_sma_5_ratio"].iloc[4] == pytest.approx(5.0 / 3.0 - 1.0)  # mean(1..5) = 3
    assert features["ma_sma_10_ratio"].iloc[29] == pytest.approx(30.0 / 25.5 - 1.0)  # mean(21..30)
    assert features["price_logret_1"].iloc[9] == pytest.approx(np.log(10.0 / 9.0))
    assert features["price_ret_7"].iloc[14] == pytest.approx(15.0 / 8.0 - 1.0)


def wilder_rsi_reference(close: np.ndarray, window: int) -> np.ndarray:
    """Loop form of Wilder's RSI: averages seeded with the first change, alpha = 1/window."""
    out = np.full(len(close), np.nan)
    average_gain = average_loss = None
    for i in range(1, len(close)):
        change = close[i] - close[i - 1]
        gain, loss = max(change, 0.0), max(-change, 0.0)
        if average_gain is None:
            average_gain, average_loss = gain, loss
        else:
            average_gain += (gain - average_gain) / window
            average_loss += (loss - average_loss) / window
        if i >= window:
            out[i] = 100.0 * average_gain / (average_gain + average_loss)
    return out


def test_rsi_matches_the_loop_definition():
    close = np.array([44.0, 44.3, 44.1, 44.2, 43.6, 44.3, 44.8, 45.1, 45.4, 45.8, 46.1, 45.9, 46.2, 45.6, 46.3, 46.3,
                      46.0, 46.4, 46.2, 45.6, 46.2, 46.2, 46.0, 46.6, 46.8])  # fmt: skip
    features = compute_features(make_ohlcv(close))
    for window in (7, 14, 21):
        np.testing.assert_allclose(features[f"mom_rsi_{window}"], wilder_rsi_reference(close, window), rtol=1e-12)


def test_rsi_extremes():
    rising = compute_features(make_ohlcv(np.linspace(10.0, 20.0, 30)))
    falling = compute_features(make_ohlcv(np.linspace(20.0, 10.0, 30)))
    flat = compute_features(make_ohlcv(np.full(30, 10.0)))
    np.testing.assert_allclose(rising["mom_rsi_14"].iloc[14:], 100.0, rtol=1e-12)
    np.testing.assert_allclose(falling["mom_rsi_14"].iloc[14:], 0.0, atol=1e-12)
    np.testing.assert_array_equal(flat["mom_rsi_14"].iloc[14:], 50.0)


def test_williams_r_and_stochastic_by_hand():
    close = np.array([10.0, 11, 12, 13, 12, 11, 12, 13, 14, 13, 12, 13, 14, 15, 14])
    high = close + 1.0
    low = close - 1.0
    features = compute_features(make_ohlcv(close, high=high, low=low))
    # last 10 bars (5..14): highest high 16, lowest low 10, close 14
    assert features["mom_williams_r_10"].iloc[14] == pytest.approx(-100.0 * (16.0 - 14.0) / (16.0 - 10.0))
    # last 14 bars (1..14): highest high 16, lowest low 10
    assert features["mom_stoch_k_14"].iloc[14] == pytest.approx(100.0 * (14.0 - 10.0) / (16.0 - 10.0))
    assert features["price_close_position"].iloc[14] == pytest.approx(0.5)


def test_linear_log_price_has_known_trend_slope_and_perfect_fit():
    features = compute_features(make_ohlcv(100.0 * np.exp(0.01 * np.arange(80))))
    assert features["stat_trend_slope_20"].iloc[60] == pytest.approx(0.01, rel=1e-6)
    assert features["stat_trend_r2_50"].iloc[70] == pytest.approx(1.0, rel=1e-6)


def test_rolling_autocorrelation_matches_numpy():
    frame = random_walk(200, seed=10)
    features = compute_features(frame)
    returns = np.diff(np.log(frame["close"].to_numpy()))  # returns[i] is the return of bar i + 1
    t = 150
    window = returns[t - 30 : t]  # the 30 returns ending at bar t
    lagged = returns[t - 32 : t - 2]
    expected = np.corrcoef(window, lagged)[0, 1]
    assert features["stat_return_autocorr_2_30"].iloc[t] == pytest.approx(expected, rel=1e-9)


def test_aroon_counts_bars_since_the_high():
    close = np.concatenate([np.linspace(10.0, 20.0, 30), np.linspace(19.0, 15.0, 5)])
    features = compute_features(make_ohlcv(close))
    # highest high at bar 30 (open = 20 -> high 20.2), four bars before bar 34
    assert features["mom_aroon_up_25"].iloc[34] == pytest.approx(100.0 * (25 - 4) / 25)


def test_calendar_cycles_on_a_known_day(daily_features):
    monday = pd.Timestamp("2024-01-01", tz="UTC")
    row = daily_features.loc[monday]
    assert row["time_day_of_week_sin"] == pytest.approx(0.0) and row["time_day_of_week_cos"] == pytest.approx(1.0)
    assert row["time_month_cos"] == pytest.approx(1.0) and row["time_is_weekend"] == 0.0
