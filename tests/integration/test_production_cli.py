"""`atb train production` on the bundled sample, then `atb predict` through the ensemble."""

import json
import math

import pytest
from conftest import png_ok
from typer.testing import CliRunner

from atb.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()
TEN_PLOTS = (
    "loss_curves", "metrics_progression", "learning_rates", "attention_heatmap", "feature_importance",
    "model_comparison", "predictions_vs_actual", "residual_analysis", "ensemble_weights", "training_summary",
    "base_training", "base_forecasts",
)


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    root = tmp_path_factory.mktemp("production")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        (root / "lightweight.yaml").write_text("variant: lightweight\n")  # the assertions hold for any variant
        result = runner.invoke(
            app, ["train", "production", "--crypto", "BTC", "--epochs", "2", "--mc-samples", "5", "--config", "lightweight.yaml"]
        )
        assert result.exit_code == 0, result.output
        predicted = runner.invoke(app, ["predict", "BTCUSDT", "--json"])
        assert predicted.exit_code == 0, predicted.output
        table = runner.invoke(app, ["predict", "BTCUSDT"])
    return root, result.output, json.loads(predicted.stdout), table.output


def test_ten_plots_and_report(production):
    root, output, _, _ = production
    (run_dir,) = (root / "training_output").glob("BTCUSDT_*")
    for name in TEN_PLOTS:
        assert png_ok(run_dir / f"{name}.png"), name
    report = json.loads((run_dir / "training_report.json").read_text())
    methods = {"ensemble_fixed", "ensemble_regime", "ensemble_stacking", "ensemble_stacking_raw", "ensemble_online"}
    assert methods | {"enhanced_lstm", "transformer", "lightgbm", "naive", "drift"} == set(report["metrics"])
    assert {"enhanced_lstm", "transformer", "lightgbm", "ensemble_stacking", "ensemble_stacking_raw", "naive", "drift"} == set(report["validation"])
    assert set(report["regimes"]) == {"train", "val", "test"}
    for h in ("1", "7", "30"):  # model against model: p(row beats column) and p(column beats row) sum to 1 where defined
        matrix = report["model_vs_model"][h]
        assert {"enhanced_lstm", "lightgbm", "ensemble_stacking"} <= set(matrix)
        pair = matrix["lightgbm"]["ensemble_stacking"], matrix["ensemble_stacking"]["lightgbm"]
        assert math.isnan(pair[0]) or pair[0] + pair[1] == pytest.approx(1.0) or pair == (1.0, 1.0)
    for level in ("0.8", "0.95"):
        assert 0.0 <= report["uncertainty"]["conformal"][level]["coverage"][0] <= 1.0
    assert "ensemble_stacking" in output


def test_ensemble_version_references_its_bases(production):
    root, _, _, _ = production
    metadata = json.loads((root / "models" / "BTCUSDT" / "ensemble" / "v0001" / "metadata.json").read_text())
    assert metadata["kind"] == "ensemble"
    spec = json.loads((root / "models" / "BTCUSDT" / "ensemble" / "v0001" / "ensemble.json").read_text())
    assert len(spec["gate"]["model_weight"]) == 3 and "pvalue" in spec["gate"]["evidence"]
    for ref in metadata["bases"].values():
        assert (root / "models" / ref / "metadata.json").is_file()


def test_predict_uses_the_ensemble_with_intervals(production):
    _, _, forecast, table = production
    assert forecast["model"].startswith("BTCUSDT/ensemble/")
    for row in forecast["horizons"]:
        assert row["lower_95"] <= row["lower_80"] <= row["upper_80"] <= row["upper_95"]
        assert row["conformal_lower_95"] < row["forecast"] < row["conformal_upper_95"]
    assert "conformal" in table and "mixture" in table and "calibrated" in table
