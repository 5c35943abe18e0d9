"""`atb benchmark`: the leaderboard over models x series x seeds (x folds), gated and raw, with speed."""

import json

import pytest
from typer.testing import CliRunner

from atb.cli import app
from atb.config import TrainingConfig
from atb.data import sample_path
from atb.evaluation.leaderboard import MEAN_OVER_SERIES
from atb.evaluation.predictions import read_predictions, rmse_ratio_table
from atb.workflows.benchmark import Series, run_benchmark, write_outputs

runner = CliRunner()


@pytest.mark.slow
def test_runs_summary_speed_and_outputs(tmp_path):
    config = TrainingConfig.build(epochs=1, variant="lightweight", mlflow=False, device="cpu")
    result = run_benchmark(config, [Series("BTCUSDT")], ["lstm", "naive", "drift"], [42, 43], folds=2)
    assert len(result["runs"]) == 3 * 2 * 3  # models x seeds x (holdout + 2 folds)
    holdout = result["summary"]["holdout"]["BTCUSDT"]
    assert holdout["naive"]["horizons"][30]["rmse_ratio"] == {"mean": 1.0, "std": 0.0}
    lstm = holdout["lstm"]
    assert lstm["n"] == 2 and lstm["horizons"][1]["rmse_ratio_raw"]["std"] > 0  # the seeds differ
    assert all(0.0 <= lstm["horizons"][h]["gate_k"]["mean"] <= 1.0 for h in (1, 7, 30))
    assert holdout["drift"]["horizons"][1]["gate_k"]["mean"] is None  # the references are not gated
    assert result["summary"]["walk_forward"]["BTCUSDT"]["lstm"]["n"] == 4  # 2 folds x 2 seeds
    assert set(result["speed"]) == {"lstm", "naive", "drift"} and "onnx" in result["speed"]["lstm"]
    assert result["speed"]["lstm"]["parameters"] > 0 and result["speed"]["lstm"]["weights_bytes"] > 0

    paths = write_outputs(result, tmp_path)
    assert json.loads(paths["json"].read_text())["series"] == ["BTCUSDT"]
    saved = read_predictions(paths["predictions"])
    for run in result["runs"]:  # every figure re-scores from the saved forecasts
        rows = saved[(saved["split"] == run["split"]) & (saved["model"] == run["model"]) & (saved["seed"] == run["seed"])]
        ratios = rmse_ratio_table(rows)
        for h, figures in run["horizons"].items():
            assert ratios.loc[("test", h), "forecast"] == pytest.approx(figures["rmse_ratio"], rel=1e-9)
            assert ratios.loc[("test", h), "raw"] == pytest.approx(figures["rmse_ratio_raw"], rel=1e-9)
            assert ratios.loc[("validation", h), "forecast"] == pytest.approx(figures["val_rmse_ratio"], rel=1e-9)
    assert "## holdout: BTCUSDT" in paths["markdown"].read_text() and paths["chart"].stat().st_size > 5000


def test_command_over_two_files(tmp_path):
    first, second = tmp_path / "BTCUSDT_1d.csv", tmp_path / "COPY_1d.csv"
    for path in (first, second):
        path.write_bytes(sample_path("BTCUSDT").read_bytes())
    result = runner.invoke(
        app, ["benchmark", str(first), str(second), "--models", "naive,drift", "--seeds", "1", "--no-latency", "-o", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert saved["series"] == ["BTCUSDT", "COPY"] and set(saved["summary"]["holdout"]) == {"BTCUSDT", "COPY", MEAN_OVER_SERIES}
    assert "drift" in result.output
