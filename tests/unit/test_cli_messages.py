"""What the CLI says: data findings in every training command, short confirmations, interval
columns that say which interval is calibrated and how it covered."""

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atb.cli import app, interval_label

runner = CliRunner()
FIXTURE = Path(__file__).parents[1] / "fixtures" / "registry_024bb27"


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copytree(FIXTURE, tmp_path / "models")
    return tmp_path


def test_a_folder_given_as_data_is_named_as_such(tmp_path):
    (tmp_path / "candles").mkdir()
    result = runner.invoke(app, ["features", "--data", "candles"])
    assert result.exit_code == 1 and "data file candles is a folder; give a CSV or Parquet file" in result.output


def test_rollback_says_which_version_in_one_line():
    for version in ("v0001",):
        assert runner.invoke(app, ["models", "promote", "BTCUSDT", "lstm", version, "staging"]).exit_code == 0
    assert runner.invoke(app, ["models", "promote", "BTCUSDT", "lightgbm", "v0001", "staging"]).exit_code == 0
    result = runner.invoke(app, ["models", "rollback", "BTCUSDT", "--stage", "staging"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "BTCUSDT staging rolled back to BTCUSDT/lstm/v0001"


def test_interval_columns_say_which_is_calibrated_and_its_test_coverage():
    assert interval_label("95% conformal, calibrated", [0.954, 0.965, 0.975]) == "95% conformal, calibrated (test coverage 95%-98%)"
    assert interval_label("95% MC mixture, not calibrated", [0.8, 0.8]) == "95% MC mixture, not calibrated (test coverage 80%)"
    result = runner.invoke(app, ["predict", "BTCUSDT", "--json"])
    assert result.exit_code == 0, result.output
    coverage = json.loads(result.stdout)["interval_coverage"]
    assert set(coverage) == {"conformal_80", "conformal_95", "mixture_80", "mixture_95"}
    assert coverage["conformal_95"] == pytest.approx([0.9544303797468354, 0.9645569620253165, 0.9746835443037974])
