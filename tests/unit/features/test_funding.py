"""Funding rates: reading the file, alignment strictly before each bar's close, no look-ahead."""

import numpy as np
import pandas as pd
import pytest

from atb.features import compute_features, feature_categories, funding_features, load_funding

DAY = pd.Timedelta(days=1)
TWO_HOURS = pd.Timedelta(hours=2)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def events(*pairs: tuple[str, float]) -> pd.Series:
    return pd.Series([rate for _, rate in pairs], index=pd.DatetimeIndex([utc(t) for t, _ in pairs]))


def daily_bars(start: str, periods: int) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=periods, freq="1D", tz="UTC", name="timestamp")


# --- alignment -------------------------------------------------------------------------------------


def test_event_exactly_at_the_close_is_not_used():
    funding = events(("2024-01-01 08:00", 0.1), ("2024-01-01 16:00", 0.2), ("2024-01-02 00:00", 0.3))
    features = funding_features(funding, daily_bars("2024-01-01", 2), DAY)
    assert features["funding_rate"].tolist() == [0.2, 0.3]  # bar 1 closes 2024-01-02 00:00


def test_event_one_millisecond_before_the_close_is_used():
    funding = events(("2024-01-01 16:00", 0.2), ("2024-01-01 23:59:59.999", 0.3))
    features = funding_features(funding, daily_bars("2024-01-01", 1), DAY)
    assert features["funding_rate"].iloc[0] == 0.3


def test_off_mark_timestamps_wait_for_the_next_bar():
    funding = events(("2024-01-01 08:00:00.003", 0.1), ("2024-01-01 16:00:00.010", 0.2))
    bars = pd.date_range("2024-01-01 12:00", periods=3, freq="2h", tz="UTC")  # close 14:00, 16:00, 18:00
    features = funding_features(funding, bars, TWO_HOURS)
    assert features["funding_rate"].tolist() == [0.1, 0.1, 0.2]


def test_bars_before_the_first_event_or_long_after_the_last_are_nan():
    funding = events(("2024-01-02 08:00", 0.1))
    bars = daily_bars("2024-01-01", 4)  # closes: Jan 2, 3, 4, 5 (00:00)
    features = funding_features(funding, bars, DAY, max_age=pd.Timedelta(hours=24))
    assert features["funding_rate"].isna().tolist() == [True, False, True, True]
    assert features.isna().all(axis=1).tolist() == [True, False, True, True]


def test_rolling_statistics_over_the_events_before_the_close():
    times = pd.date_range("2024-01-01", periods=30, freq="8h", tz="UTC")
    rates = np.linspace(-0.001, 0.002, 30)
    funding = pd.Series(rates, index=times)
    bar = pd.DatetimeIndex([utc("2024-01-08 00:00")])  # closes Jan 9 00:00: events 0..23 are before it
    row = funding_features(funding, bar, DAY).iloc[0]
    assert row["funding_rate"] == rates[23]
    assert row["funding_mean_3"] == pytest.approx(rates[21:24].mean())
    assert row["funding_mean_21"] == pytest.approx(rates[3:24].mean())
    assert row["funding_positive_share_21"] == pytest.approx(np.mean(rates[3:24] > 0))
    expected_z = (rates[23] - rates[:24].mean()) / rates[:24].std()
    assert row["funding_zscore_90"] == pytest.approx(expected_z)


def test_constant_funding_has_zero_zscore():
    funding = pd.Series(1e-4, index=pd.date_range("2024-01-01", periods=50, freq="8h", tz="UTC"))
    features = funding_features(funding, daily_bars("2024-01-01", 15), DAY)
    assert (features["funding_zscore_90"] == 0.0).all()


def test_changing_future_events_changes_nothing_earlier():
    rng = np.random.default_rng(0)
    jitter = pd.to_timedelta(rng.integers(-5, 15, 600), unit="ms")
    times = pd.date_range("2024-01-01", periods=600, freq="8h", tz="UTC") + jitter
    funding = pd.Series(rng.normal(1e-4, 2e-4, 600), index=times)
    bars = pd.date_range("2024-01-01", periods=2400, freq="2h", tz="UTC")
    cut = times[400]
    future_changed = funding.where(funding.index < cut, rng.normal(0.05, 0.1, 600))
    before = funding_features(funding, bars, TWO_HOURS)
    after = funding_features(future_changed, bars, TWO_HOURS)
    known = bars + TWO_HOURS <= cut
    pd.testing.assert_frame_equal(after[known], before[known], check_exact=True)
    assert not np.allclose(after[~known].dropna(), before[~known].dropna())


def test_compute_features_appends_exogenous_funding_columns():
    rng = np.random.default_rng(1)
    index = daily_bars("2024-01-01", 260)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, 260)))
    ohlcv = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 100.0}, index=index
    )
    funding = pd.Series(
        rng.normal(1e-4, 1e-4, 780), index=pd.date_range("2024-01-01", periods=780, freq="8h", tz="UTC")
    )
    with_funding = compute_features(ohlcv, funding=funding)
    without = compute_features(ohlcv)
    added = [c for c in with_funding.columns if c not in without.columns]
    assert added and all(c.startswith("funding_") for c in added)
    assert set(feature_categories(added).values()) == {"exogenous"}
    pd.testing.assert_frame_equal(with_funding[without.columns], without)
    assert with_funding[added].iloc[0].notna().all()  # first bar closes after the 00:00 and 08:00 events


@pytest.mark.parametrize(
    ("funding", "error", "message"),
    [
        (pd.Series([0.1], index=pd.DatetimeIndex(["2024-01-01"])), ValueError, "timezone-aware"),
        (pd.Series([np.nan], index=pd.DatetimeIndex([utc("2024-01-01")])), ValueError, "NaN or infinite"),
        ([0.1], TypeError, "pandas Series"),
    ],
)
def test_bad_funding_is_a_clear_error(funding, error, message):
    with pytest.raises(error, match=message):
        funding_features(funding, daily_bars("2024-01-01", 3), DAY)


# --- reading the file ------------------------------------------------------------------------------


def test_load_funding_parses_milliseconds_sorts_and_takes_naive_times_as_utc(tmp_path):
    path = tmp_path / "funding.csv"
    path.write_text(
        "timestamp,funding_rate\n"
        "2019-09-10 16:00:00.010,0.0002\n"
        "2019-09-10 08:00:00.000,0.0001\n"
        "2019-09-11 00:00:00,-0.00005\n"
    )
    funding = load_funding(path)
    assert funding.name == "funding_rate" and funding.dtype == np.float64
    assert str(funding.index.tz) == "UTC" and funding.index.is_monotonic_increasing
    assert funding.index[1] == utc("2019-09-10 16:00:00.010")
    assert funding.tolist() == [0.0001, 0.0002, -0.00005]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("2019-09-10 08:00,0.1\nnot a time,0.2\n", r"timestamp 'not a time' at row 2 is not a date/time"),
        ("2019-09-10 08:00,0.1\n2019-09-10 16:00,\n", r"funding_rate '' at row 2 is not a finite number"),
        ("2019-09-10 08:00,0.1\n2019-09-10 08:00,0.2\n", r"timestamp '2019-09-10 08:00' at row 2 is a duplicate"),
    ],
)
def test_load_funding_names_file_and_row_of_a_bad_value(tmp_path, body, message):
    path = tmp_path / "funding.csv"
    path.write_text("timestamp,funding_rate\n" + body)
    with pytest.raises(ValueError, match=f"funding file .*funding.csv: {message}"):
        load_funding(path)


def test_load_funding_missing_file_or_column(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_funding(tmp_path / "absent.csv")
    path = tmp_path / "funding.csv"
    path.write_text("time,rate\n2019-09-10 08:00,0.1\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['timestamp', 'funding_rate'\]"):
        load_funding(path)
