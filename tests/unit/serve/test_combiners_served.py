"""The realised errors an online-weighted ensemble learns from: only logged forecasts whose
target bar has closed by the origin being forecast, each origin once, in the order known."""

import numpy as np
import pandas as pd

from atb.serve.ensemble import realised_base_errors

BAR = pd.Timedelta(days=1)
INDEX = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")
CLOSE = pd.Series(100.0 * 1.01 ** np.arange(10), index=INDEX)


def _row(origin: int, a: list[float], b: list[float]) -> dict:
    return {"origin_time": INDEX[origin].isoformat(), "origin_close": float(CLOSE.iloc[origin]), "bases": {"a": a, "b": b}}


def test_only_targets_closed_by_the_origin_count_once_each_in_the_order_known():
    rows = [
        _row(3, [0.0, 0.05], [0.01, 0.0]),
        _row(1, [0.02, 0.0], [0.0, 0.03]),
        _row(3, [9.0, 9.0], [9.0, 9.0]),  # the same origin logged again (a shadow arm): counted once
        {**_row(2, [0.0, 0.0], [0.0, 0.0]), "bases": None},  # a single model's row: no bases
    ]
    realised = realised_base_errors(rows, CLOSE, ["a", "b"], (1, 3), BAR, INDEX[4])
    step = np.log(1.01)
    # h=1: origin 1 (target bar 2) then origin 3 (target bar 4, closed by bar 4); h=3: origin 1 only (bar 4; origin 3's is bar 6)
    np.testing.assert_allclose(realised[0], [[(0.02 - step) ** 2, step**2], [step**2, (0.01 - step) ** 2]])
    np.testing.assert_allclose(realised[1], [[(0.0 - 3 * step) ** 2, (0.03 - 3 * step) ** 2]])
    later = realised_base_errors(rows, CLOSE, ["a", "b"], (1, 3), BAR, INDEX[3])
    assert len(later[0]) == 1 and len(later[1]) == 0  # at bar 3 neither bar 4 target is known yet
