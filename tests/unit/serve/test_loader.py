"""The one loader: single models and ensembles from the registry, every file verified first."""

import shutil
from pathlib import Path

import pytest
from fixture_registry import copy_registry

from atb.registry import RegistryError
from atb.serve import Predictor, load_version
from atb.serve.ensemble import EnsemblePredictor


@pytest.fixture
def registry(tmp_path) -> Path:
    return copy_registry(tmp_path)


def test_dispatches_on_the_kind_of_version(registry):
    ensemble = load_version(registry, "BTCUSDT")
    assert isinstance(ensemble, EnsemblePredictor) and ensemble.name == "BTCUSDT/ensemble/v0001"
    assert {name: base.name for name, base in ensemble.bases.items()} == {
        "lstm": "BTCUSDT/lstm/v0001", "lightgbm": "BTCUSDT/lightgbm/v0001"
    }
    single = load_version(registry, "BTCUSDT", model_type="lstm", ref="v0001")
    assert isinstance(single, Predictor) and single.model.model_type == "lstm"
    with pytest.raises(ValueError, match="is an ensemble; engine 'onnx' serves single neural models only"):
        load_version(registry, "BTCUSDT", engine="onnx")


def test_an_ensemble_refuses_a_tampered_base_naming_the_file(registry):
    weights = registry / "BTCUSDT" / "lstm" / "v0001" / "model" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = b"\x00" * 8
    weights.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=r"BTCUSDT/lstm/v0001 .* failed verification: model/weights.safetensors: corrupt"):
        load_version(registry, "BTCUSDT")


def test_an_ensemble_refuses_a_missing_base(registry):
    shutil.rmtree(registry / "BTCUSDT" / "lightgbm" / "v0001")
    with pytest.raises(RegistryError, match=r"BTCUSDT: no version 'v0001' of lightgbm"):
        load_version(registry, "BTCUSDT")


def test_an_ensemble_stored_before_the_other_combiners_is_served_with_stacking_only(registry):
    from atb.serve.service import ForecastService

    for combiner in ("regime", "online"):
        with pytest.raises(ValueError, match=f"stored before the {combiner} combiner was kept with it"):
            ForecastService(registry, ["BTCUSDT"], engine="torch", combiner=combiner)
    with pytest.raises(ValueError, match="combiner 'median' is not one of"):
        ForecastService(registry, ["BTCUSDT"], combiner="median")
    (forecast,) = ForecastService(registry, ["BTCUSDT"], engine="torch").forecast("BTCUSDT")
    assert forecast["combiner"] == "stacking" and "weights" not in forecast
