"""Model inputs are scale-free: prices x 10 and volumes x 1,000 leave every default input unchanged."""

import numpy as np

from atb.config import TrainingConfig
from atb.data import load_candles
from atb.data.sources import Candles
from atb.workflows.steps import prepare_data


def test_prices_times_ten_and_volumes_times_a_thousand_change_no_model_input():
    config = TrainingConfig()
    candles = load_candles()
    frame = candles.frame.copy()
    frame[["open", "high", "low", "close"]] *= 10.0
    frame["volume"] *= 1000.0
    scaled = Candles(frame=frame, report=candles.report, symbol=candles.symbol, source="scaled")

    base, other = prepare_data(config, candles), prepare_data(config, scaled)
    assert other.features.columns.equals(base.features.columns) and base.features.shape[1] > 150
    np.testing.assert_allclose(other.features.to_numpy(), base.features.to_numpy(), rtol=1e-9, atol=1e-9)
    assert other.dataset.transform.feature_names == base.dataset.transform.feature_names
    for part in ("train", "val", "test"):
        np.testing.assert_allclose(getattr(other.dataset, part).X, getattr(base.dataset, part).X, rtol=0, atol=1e-5)
        np.testing.assert_allclose(getattr(other.dataset, part).y, getattr(base.dataset, part).y, rtol=0, atol=1e-7)
