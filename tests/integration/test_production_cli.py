"""`atb train production` on the bundled sample, then `atb predict` through the ensemble."""

import json
import math

import numpy as np
import pytest
from png_check import png_ok
from typer.testing import CliRunner

from atb.cli import app
from atb.data import load_candles
from atb.ensemble.combiners import OnlineWeights, RegimeWeights
from atb.ensemble.regime import RegimeDetector
from atb.ensemble.spec import EnsembleSpec
from atb.registry import ModelRegistry
from atb.serve.ensemble import realised_base_errors
from atb.serve.forecast_log import ForecastLog
from atb.serve.service import ForecastService

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
            app, ["train", "production", "--crypto", "BTC", "--days", "1200", "--epochs", "2", "--seeds", "1", "--mc-samples", "5",
                  "--config", "lightweight.yaml"]
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


def test_served_combiners_regime_and_online(production, tmp_path):
    """`--combiner regime` tilts the fixed weights by the origin's regime; `--combiner online`
    starts from the validation state and learns from the realised errors of logged forecasts."""
    root, _, _, _ = production
    registry = ModelRegistry(root / "models")
    version = registry.resolve_for_serving("BTCUSDT")
    spec = EnsembleSpec.load(version.path / "ensemble.json")
    candles = load_candles()
    origins = [t.isoformat() for t in candles.frame.index[-60:]]

    regime = ForecastService(root / "models", ["BTCUSDT"], engine="torch", combiner="regime")
    (forecast,) = regime.forecast("BTCUSDT", origin_times=origins[-1:])
    label = RegimeDetector.from_dict(spec.regime["detector"]).transform(candles.frame["close"]).iloc[-1]
    names = list(spec.bases)
    expected = RegimeWeights(spec.regime["families"], spec.fixed_weights, spec.regime["tilt"]).weights_in(label, names)
    assert forecast["combiner"] == "regime" and forecast["regime"] == label
    for j, row in enumerate(forecast["horizons"]):
        combined = sum(expected[name] * forecast["bases"][name][j] for name in names)
        assert math.log(row["forecast"] / forecast["origin_close"]) == pytest.approx(combined, rel=1e-9)
        assert "conformal_lower_80" not in row and "lower_80" in row

    log = ForecastLog(f"sqlite:///{tmp_path / 'log.db'}")
    online = ForecastService(root / "models", ["BTCUSDT"], engine="torch", combiner="online", log=log)
    answers = [online.forecast("BTCUSDT", origin_times=[origin])[0] for origin in origins]  # one request per bar, as a live service
    first, last = answers[0]["weights"], answers[-1]["weights"]
    rows = log.rows("BTCUSDT", version.ref)
    assert len(rows) == len(origins) and all(row["bases"] for row in rows)
    realised = realised_base_errors(rows, candles.frame["close"], names, spec.horizons, candles.bar_duration, candles.frame.index[-1])
    assert [len(errors) for errors in realised] == [60 - h for h in spec.horizons if h < 60] + [0] * sum(h >= 60 for h in spec.horizons)
    by_hand = OnlineWeights.from_state_dict(spec.online).weights_after(realised)
    np.testing.assert_allclose([last[name] for name in names], by_hand, rtol=1e-9)
    without_log = OnlineWeights.from_state_dict(spec.online).weights_after([errors[:0] for errors in realised])
    np.testing.assert_allclose([first[name] for name in names], without_log, rtol=1e-9)  # nothing realised yet but validation's
    assert not np.array_equal(by_hand, without_log)  # the logged errors moved them (little here: the gated bases nearly agree)

    stacking = ForecastService(root / "models", ["BTCUSDT"], engine="torch")
    (default,) = stacking.forecast("BTCUSDT", origin_times=origins[-1:])
    assert default["combiner"] == "stacking" and "conformal_lower_80" in default["horizons"][0]
