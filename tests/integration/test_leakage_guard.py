"""Train on data whose test part is replaced by noise: every training-side output (selection,
scaler, weights, the skill gate) is identical."""

import numpy as np
import torch

from atb.config import TrainingConfig
from atb.data import load_candles
from atb.data.sources import Candles
from atb.models import create_model
from atb.models.trainer import FitSettings
from atb.workflows.assessment import fit_gate
from atb.workflows.steps import prepare_data


def _noisy_test_part(candles: Candles, start) -> Candles:
    frame = candles.frame.copy()
    later = frame.index >= start
    rng = np.random.default_rng(123)
    noise = frame.loc[later, "close"].to_numpy() * rng.uniform(0.3, 3.0, later.sum())
    frame.loc[later, "close"] = noise
    frame.loc[later, "open"] = noise
    frame.loc[later, "high"] = noise * 1.05
    frame.loc[later, "low"] = noise * 0.95
    frame.loc[later, "volume"] = rng.uniform(1, 1e6, later.sum())
    return Candles(frame=frame, report=candles.report, symbol=candles.symbol, source="noisy")


def test_training_side_outputs_ignore_the_test_part():
    config = TrainingConfig.build(model_type="lstm", variant="lightweight", epochs=1, seed=7, mlflow=False)
    candles = load_candles()
    clean = prepare_data(config, candles)
    noisy = prepare_data(config, _noisy_test_part(candles, clean.dataset.test.origin_time[0]))

    assert noisy.dataset.transform.feature_names == clean.dataset.transform.feature_names
    np.testing.assert_array_equal(noisy.dataset.transform.center, clean.dataset.transform.center)
    np.testing.assert_array_equal(noisy.dataset.transform.scale, clean.dataset.transform.scale)
    assert not np.array_equal(noisy.dataset.test.y, clean.dataset.test.y)  # the test part did change

    weights, gates = [], []
    for prepared in (clean, noisy):
        dataset = prepared.dataset
        model = create_model("lstm", dataset.input_shape, horizons=config.dataset.horizons, variant="lightweight")
        model.fit(dataset.train, dataset.val, FitSettings.from_spec(config.fit))
        weights.append({k: v.clone() for k, v in model.network_.state_dict().items()})
        gates.append(fit_gate(model.predict(dataset.val.X), dataset))
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name
    for part in ("drift", "drift_weight", "model_weight"):
        np.testing.assert_array_equal(getattr(gates[0], part), getattr(gates[1], part))
