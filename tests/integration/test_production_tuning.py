"""`atb train production --tune` tunes every base model it trains (the default), trains each with
its study's choice, and reports and plots every study; `atb tune` runs one study on its own."""

import json

import pytest
from typer.testing import CliRunner

from atb.cli import app
from atb.registry import ModelRegistry

pytestmark = pytest.mark.slow


def test_every_base_model_is_tuned_and_trained_with_its_best_trial(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "small.yaml").write_text("variant: lightweight\n")
    result = CliRunner().invoke(app, [
        "train", "production", "--crypto", "BTC", "--base-models", "lstm,lightgbm", "--epochs", "1", "--seeds", "1", "--days", "800",
        "--tune", "--tune-trials", "2", "--tune-objective", "sharpe,rmse_ratio", "--tune-sampler", "random", "--max-drawdown", "0.9",
        "--no-ensemble", "--no-mlflow", "--config", "small.yaml",
    ])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "training_output").glob("BTCUSDT_*")
    report = json.loads((run / "training_report.json").read_text())
    assert set(report["tuning"]) == {"lstm", "lightgbm"}
    registry = ModelRegistry(tmp_path / "models")
    for name, study in report["tuning"].items():
        assert study["n_trials"] == 2 and study["objectives"] == ["sharpe", "rmse_ratio"] and study["sampler"] == "random"
        assert study["constraints"] == "max drawdown 90%" and study["pareto"]
        assert (run / study["plot"]).stat().st_size > 10_000
        trained = registry.get("BTCUSDT", name).metadata["training_params"]
        assert {k: trained["overrides"][k] for k in study["best_params"]} == study["best_params"]


def test_atb_tune_reports_and_plots_a_study_on_folds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fast.yaml").write_text("variant: lightweight\noverrides:\n  n_estimators: 20\n")
    result = CliRunner().invoke(app, [
        "tune", "BTCUSDT", "--model-type", "lightgbm", "--trials", "3", "--tune-objective", "direction_accuracy",
        "--tune-sampler", "grid", "--tune-cv", "2", "--days", "800", "--config", "fast.yaml",
    ])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "training_output").glob("tuning_BTCUSDT_lightgbm_*")
    study = json.loads((folder / "tuning.json").read_text())
    assert study["n_complete"] == 3 and study["cv_folds"] == 2 and study["sampler"] == "grid"
    assert 0.0 <= study["best_value"] <= 1.0 and study["best_scores"]["direction_accuracy"] == study["best_value"]
    assert (folder / "tuning.png").stat().st_size > 10_000
    assert "2 purged folds" in result.output and not (tmp_path / "models").exists()  # tuning stores no version
