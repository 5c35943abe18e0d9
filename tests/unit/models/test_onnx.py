"""ONNX export: every exportable model type gives the same forecasts through ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from atb.models import AVAILABLE_MODELS, CapabilityError, ModelFileError, create_model, model_class
from atb.models.onnx import OnnxForecaster, export_onnx, onnx_bytes
from atb.models.trainer import FitSettings
from atb.windows import Windows

LOOKBACK, N_FEATURES, HORIZONS = 12, 4, (1, 7, 30)
EXPORTABLE = [t for t in AVAILABLE_MODELS if model_class(t).onnx_exportable]


def make_split(n: int, seed: int) -> Windows:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, LOOKBACK, N_FEATURES)).astype(np.float32)
    y = (0.01 * X[:, -1, :1] * np.sqrt(HORIZONS) + rng.normal(scale=0.01, size=(n, 3))).astype(np.float32)
    return Windows(X, y)


TRAIN, VAL = make_split(64, 0), make_split(40, 1)


def test_every_neural_type_is_exportable():
    assert {t for t in AVAILABLE_MODELS if model_class(t).is_neural} <= set(EXPORTABLE)


@pytest.mark.parametrize("model_type", EXPORTABLE)
def test_onnx_forecasts_equal_torch_forecasts(model_type, tmp_path):
    model = create_model(model_type, (LOOKBACK, N_FEATURES), HORIZONS, "lightweight")
    model.fit(TRAIN, VAL, FitSettings(epochs=1, device="cpu"))
    path = export_onnx(model, tmp_path / "model.onnx")
    assert path.is_file() and not list(tmp_path.glob(".*.tmp"))
    forecaster = OnnxForecaster(path)
    assert (forecaster.model_type, forecaster.horizons, forecaster.input_shape) == (
        model_type, HORIZONS, (LOOKBACK, N_FEATURES)
    )
    for X in (VAL.X, VAL.X[:1]):  # the batch axis is free
        onnx_forecast = forecaster.predict(X)
        assert onnx_forecast.shape == (len(X), len(HORIZONS)) and onnx_forecast.dtype == np.float64
        np.testing.assert_allclose(onnx_forecast, model.predict(X), rtol=0, atol=1e-4)


def test_forecaster_runs_the_model_bytes_like_the_file(tmp_path):
    model = create_model("lstm", (LOOKBACK, N_FEATURES), HORIZONS, "lightweight")
    model.fit(TRAIN, VAL, FitSettings(epochs=1, device="cpu"))
    in_memory = OnnxForecaster(onnx_bytes(model))
    assert (in_memory.model_type, in_memory.horizons, in_memory.input_shape) == ("lstm", HORIZONS, (LOOKBACK, N_FEATURES))
    np.testing.assert_array_equal(in_memory.predict(VAL.X), OnnxForecaster(export_onnx(model, tmp_path / "m.onnx")).predict(VAL.X))
    with pytest.raises(ModelFileError, match="ONNX model bytes is not a loadable ONNX model"):
        OnnxForecaster(b"\x00garbage")


def test_non_exportable_and_unfitted_models_are_refused(tmp_path):
    lightgbm = create_model("lightgbm", (LOOKBACK, N_FEATURES), HORIZONS)
    with pytest.raises(CapabilityError, match="onnx_exportable"):
        export_onnx(lightgbm, tmp_path / "m.onnx")
    with pytest.raises(CapabilityError, match="onnx_exportable"):
        onnx_bytes(lightgbm)
    with pytest.raises(Exception, match="not fitted"):
        export_onnx(create_model("lstm", (LOOKBACK, N_FEATURES), HORIZONS), tmp_path / "m.onnx")


def test_forecaster_refuses_missing_corrupt_files_and_wrong_shapes(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        OnnxForecaster(tmp_path / "absent.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(ModelFileError, match="not a loadable ONNX model"):
        OnnxForecaster(tmp_path / "bad.onnx")
    model = create_model("tcn", (LOOKBACK, N_FEATURES), HORIZONS, "lightweight")
    model.fit(TRAIN, VAL, FitSettings(epochs=1, device="cpu"))
    forecaster = OnnxForecaster(export_onnx(model, tmp_path / "tcn.onnx"))
    with pytest.raises(ValueError, match="windows must have shape"):
        forecaster.predict(VAL.X[:, :5])
