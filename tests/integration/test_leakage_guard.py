"""Train on data whose test part is replaced by noise: every training-side output (selection,
scaler, weights, the skill gate) is identical; a model fitted on data whose validation part
is replaced by noise forecasts the same."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from atb.config import TrainingConfig
from atb.data import load_candles
from atb.data.sources import Candles
from atb.models import create_model
from atb.models.trainer import FitSettings
from atb.workflows.assessment import fit_gate
from atb.workflows.steps import ignore_events, prepare_data
from atb.workflows.train_model import fit_model


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


@pytest.mark.parametrize("model_type,overrides", [("lstm", {}), ("lightgbm", {"n_estimators": 60})])
def test_a_fitted_model_never_reads_the_validation_part(model_type, overrides):
    """Early stopping watches a held-out tail of the training part: validation windows and targets
    replaced by the first training windows (where the loss falls with every epoch, so stopping
    on them would stop elsewhere) leave the fitted model's forecasts unchanged; only the gate reads them."""
    config = TrainingConfig.build(
        model_type=model_type, variant="lightweight", overrides=overrides, epochs=8, patience=2, seed=7, mlflow=False
    )
    dataset = prepare_data(config, load_candles()).dataset
    other = dataset.train.subset(slice(0, len(dataset.val)))
    forecasts = [
        fit_model(config, replace(dataset, val=val), None, lambda row: None, ignore_events).predict(dataset.test.X)
        for val in (dataset.val, other)
    ]
    np.testing.assert_array_equal(forecasts[0], forecasts[1])
