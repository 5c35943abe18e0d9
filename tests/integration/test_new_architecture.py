"""'One network file + one registry entry' taken literally: a throwaway architecture,
registered with one line and no other edit, is trained and stored, tuned, exported
to ONNX and ensembled by the production workflow, then served."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from atb.config import TrainingConfig
from atb.data import load_candles
from atb.models import AVAILABLE_MODELS
from atb.models.factory import MODEL_CLASSES, tunable_models
from atb.models.neural import neural_model_class
from atb.models.onnx import OnnxForecaster, onnx_bytes
from atb.models.trainer import FitSettings
from atb.serve import load_version
from atb.serve.ensemble import EnsemblePredictor
from atb.workflows.production import train_production
from atb.workflows.train_model import train_model
from atb.workflows.tuning import tune_model


class TinyGRUNetwork(nn.Module):
    """`[batch, lookback, n_features]` -> one GRU layer -> last step -> dropout -> `[batch, n_horizons]`."""

    description = "A one-layer GRU (a throwaway architecture of this test)."
    variants = {"default": {"hidden_units": 8, "dropout": 0.1}}
    ensemble_family = "recurrent"

    @staticmethod
    def search_space(trial: Any) -> dict[str, Any]:
        return {"hidden_units": trial.suggest_categorical("hidden_units", [4, 8]), "dropout": trial.suggest_float("dropout", 0.0, 0.3)}

    def __init__(self, n_features: int, lookback: int, n_horizons: int, *, hidden_units: int = 8, dropout: float = 0.1):
        super().__init__()
        self.gru = nn.GRU(n_features, hidden_units, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_units, n_horizons)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.gru(x)[0][:, -1]))


@pytest.fixture
def tiny_gru(monkeypatch):
    """The one registry entry."""
    monkeypatch.setitem(MODEL_CLASSES, "tiny_gru", neural_model_class("tiny_gru", TinyGRUNetwork))


@pytest.mark.slow
def test_a_registered_network_is_trained_tuned_exported_and_ensembled(tiny_gru, tmp_path):
    assert "tiny_gru" in AVAILABLE_MODELS and "tiny_gru" in tunable_models()
    config = TrainingConfig.build(
        model_type="tiny_gru", epochs=2, n_features=8, mlflow=False, plots=False, device="cpu",
        registry_dir=tmp_path / "models", output_dir=tmp_path / "out",
    )

    trained = train_model(config)
    assert trained.version.ref == "BTCUSDT/tiny_gru/v0001"
    assert set(trained.metrics) == {"tiny_gru", "tiny_gru_raw", "naive", "drift"}

    tuned = tune_model("tiny_gru", trained.dataset, FitSettings(epochs=1, device="cpu"), n_trials=2, directory=tmp_path)
    assert tuned.n_complete == 2 and set(tuned.best_params) == {"hidden_units", "dropout"}

    window = trained.dataset.test.X[:5]
    exported = OnnxForecaster(onnx_bytes(trained.model)).predict(window)
    np.testing.assert_allclose(exported, trained.model.predict(window), atol=1e-5)

    (result,) = train_production(config.replace(base_models=("tiny_gru", "drift"), mc_samples=3), ["BTCUSDT"])
    assert result.error is None and result.ensemble_version.ref == "BTCUSDT/ensemble/v0001"
    assert {"tiny_gru", "drift", "ensemble_regime", "ensemble_stacking"} <= set(result.metrics)
    served = load_version(tmp_path / "models", "BTCUSDT")
    assert isinstance(served, EnsemblePredictor) and set(served.bases) == {"tiny_gru", "drift"}
    forecast = served.forecast(load_candles())
    assert [row["horizon"] for row in forecast["horizons"]] == [1, 7, 30]
    assert all(np.isfinite(row["forecast"]) and row["lower_95"] < row["upper_95"] for row in forecast["horizons"])
