"""Versions written by earlier code load and forecast exactly as they did (tests/fixtures/registry_024bb27)."""

import json
import shutil
from pathlib import Path

import pytest

from atb import Forecaster
from atb.data import load_candles
from atb.registry import ModelRegistry
from atb.serve import load_version
from atb.serve.ensemble import EnsemblePredictor

FIXTURE = Path(__file__).parents[1] / "fixtures" / "registry_024bb27"
EXPECTED = json.loads((FIXTURE / "forecasts.json").read_text())


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("old") / "models"
    shutil.copytree(FIXTURE, root)
    return root


@pytest.mark.parametrize("model_type", [None, "lstm", "lightgbm"], ids=["ensemble", "lstm", "lightgbm"])
def test_an_old_version_forecasts_what_it_forecast_then(registry, model_type):
    expected = EXPECTED[model_type or "ensemble"]
    predictor = load_version(registry, "BTCUSDT", model_type=model_type)
    assert isinstance(predictor, EnsemblePredictor) == (model_type is None)
    forecast = predictor.forecast(load_candles())
    assert forecast["model"] == expected["model"] and forecast["origin_time"] == expected["origin_time"]
    assert len(forecast["horizons"]) == len(expected["horizons"]) == 3
    for row, old in zip(forecast["horizons"], expected["horizons"]):
        assert row.keys() == old.keys()
        for key, value in old.items():
            assert row[key] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), key


def test_old_versions_verify_and_their_reports_load(registry):
    versions = ModelRegistry(registry).list_versions("BTCUSDT")
    assert [v.ref for v in versions] == ["BTCUSDT/ensemble/v0001", "BTCUSDT/lightgbm/v0001", "BTCUSDT/lstm/v0001"]
    for version in versions:
        ModelRegistry(registry).verify(version)
    loaded = Forecaster.load_model(registry / "BTCUSDT" / "lstm" / "v0001")
    assert loaded.report.model.model_type == "lstm" and len(loaded.report.history) == 1
    assert set(loaded.report.metrics) == {"lstm", "naive", "drift"}
    scores = loaded.evaluate()  # on the origins the version never saw, not the whole history
    assert all(row["n"] == loaded.report.data.splits["test"]["origins"] for row in scores.values())
