"""Model-vs-model Diebold-Mariano p-values, from arrays and from saved predictions."""

import numpy as np
import pandas as pd
import pytest

from atb.evaluation.comparison import pairwise_dm, saved_forecast_errors
from atb.evaluation.predictions import COLUMNS, write_predictions

RNG = np.random.default_rng(0)


def test_the_more_accurate_row_gets_a_small_p_and_the_pair_sums_to_one():
    n = 300
    errors = {"sharp": RNG.normal(0, 1.0, n), "blunt": RNG.normal(0, 1.6, n), "twin": None}
    errors["twin"] = errors["sharp"] * 1.0001
    matrix = pairwise_dm(errors, horizon=1)
    assert matrix.loc["sharp", "blunt"] < 0.01 and matrix.loc["blunt", "sharp"] > 0.99
    assert matrix.loc["sharp", "blunt"] + matrix.loc["blunt", "sharp"] == pytest.approx(1.0)
    assert np.isnan(matrix.loc["sharp", "sharp"])


def saved(tmp_path, name: str, origins: pd.DatetimeIndex, seed: int, realised_shift: float = 0.0) -> str:
    """A predictions file whose realised prices are drawn from `seed` (the same seed: the same prices)."""
    rng, rows = np.random.default_rng(seed), []
    for t in origins:
        for h in (1, 7):
            realised = 100 + rng.normal() + realised_shift
            rows.append({"part": "test", "origin_time": t, "horizon": h, "origin_close": 100.0, "realised": realised,
                         "forecast": realised + 0.1, "raw": realised, "naive": 100.0, "drift": 100.5})
    path = tmp_path / f"{name}.parquet"
    write_predictions(pd.DataFrame(rows, columns=list(COLUMNS)), path)
    return str(path)


def test_saved_predictions_are_compared_on_the_origins_they_share(tmp_path):
    times = pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC")
    a, b = saved(tmp_path, "a", times[:100], seed=1), saved(tmp_path, "b", times[:100], seed=1)
    errors, origins = saved_forecast_errors({"lstm/v0001": a, "tcn/v0001": b})
    assert origins == 100 and set(errors) == {1, 7} and set(errors[1]) == {"lstm/v0001", "tcn/v0001", "naive"}
    other_prices = saved(tmp_path, "c", times[:100], seed=5, realised_shift=50.0)
    with pytest.raises(ValueError, match="tcn/v0002 was scored on other prices at the same origins"):
        saved_forecast_errors({"lstm/v0001": a, "tcn/v0002": other_prices})
    disjoint = saved(tmp_path, "d", times[100:], seed=1)
    with pytest.raises(ValueError, match="share no test origin"):
        saved_forecast_errors({"lstm/v0001": a, "x/v0001": disjoint})
