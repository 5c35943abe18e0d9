"""`atb models compare`: one compact row per version across model types, everything with --json."""

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from atb.cli import app

FIXTURE = Path(__file__).parents[1] / "fixtures" / "registry_024bb27"


def test_three_types_fit_in_120_columns_with_every_figure(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(FIXTURE, tmp_path / "models")
    shown = CliRunner().invoke(app, ["models", "compare", "BTCUSDT"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 120
    rows = {line.split("│")[1].strip(): line for line in lines if line.startswith("│")}
    assert set(rows) == {"ensemble", "lightgbm", "lstm"}
    assert "0.999" in rows["ensemble"] and "0.971" in rows["lightgbm"] and "1.088" in rows["lstm"]  # h=1 / h=30 test RMSE/naive
    assert "0.53" in rows["lstm"]  # the lstm's h=1 DM p-value
    as_json = json.loads(CliRunner().invoke(app, ["models", "compare", "BTCUSDT", "--json"]).output)
    assert [r["model_type"] for r in as_json] == ["ensemble", "lightgbm", "lstm"]
    assert as_json[2]["lstm.h30.rmse_ratio"] > 1.0 and as_json[1]["variant"] == "lightweight" and as_json[0]["variant"] == "stacking"


def test_the_dm_matrix_leaves_out_versions_without_saved_predictions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(FIXTURE, tmp_path / "models")
    shown = CliRunner().invoke(app, ["models", "compare", "BTCUSDT", "--dm"])
    assert shown.exit_code == 0, shown.output
    assert "BTCUSDT/lstm/v0001: no saved predictions" in shown.output and "no DM matrix" in shown.output
