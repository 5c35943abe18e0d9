"""`atb train model` end to end on the bundled sample, then `atb predict` and the Python API."""

import json
import math

import pytest
from png_check import png_ok
from typer.testing import CliRunner

from atb.cli import app
from atb.evaluation.metrics import METRIC_KEYS

pytestmark = pytest.mark.slow
runner = CliRunner()
HORIZONS = (1, 7, 30)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        result = runner.invoke(app, ["train", "model", "BTCUSDT", "--model-type", "lstm", "--epochs", "2"])
        assert result.exit_code == 0, result.output
        predicted = runner.invoke(app, ["predict", "BTCUSDT", "--json"])
        assert predicted.exit_code == 0, predicted.output
    version = root / "models" / "BTCUSDT" / "lstm" / "v0001"
    return root, version, result.output, json.loads(predicted.stdout)


def test_version_directory_is_complete(trained):
    _, version, output, _ = trained
    for name in ("metadata.json", "transform.json", "features.json", "gate.json", "training_report.json", "model/params.json", "model/weights.safetensors"):
        assert (version / name).is_file(), name
    assert png_ok(version / "plots" / "shap_summary.png")  # integrated gradients for a network
    assert "Test metrics" in output and "naive" in output and "drift" in output
    assert "Validation skill" in output and "lstm_raw" in output


def test_report_has_every_protocol_metric_for_model_and_baselines(trained):
    _, version, _, _ = trained
    report = json.loads((version / "training_report.json").read_text())
    assert set(report["metrics"]) == set(report["validation"]) == {"lstm", "lstm_raw", "naive", "drift"}
    for per_h in [*report["metrics"].values(), *report["validation"].values()]:
        assert sorted(int(h) for h in per_h) == list(HORIZONS)
        for metrics in per_h.values():
            assert set(METRIC_KEYS) <= set(metrics)
            assert metrics["n"] > 300 and "rmse_vs_drift" in metrics
    naive = report["metrics"]["naive"]
    assert all(math.isclose(naive[str(h)]["rmse_ratio"], 1.0) for h in HORIZONS)
    assert all(math.isclose(report["metrics"]["drift"][str(h)]["rmse_vs_drift"], 1.0) for h in HORIZONS)
    gate = report["gate"]
    assert all(0.0 <= w <= 1.0 for w in gate["drift_weight"] + gate["model_weight"])
    assert len(report["history"]) == 2
    for key in ("config", "data", "features", "backtest", "timings", "environment", "seed", "regimes", "stability", "overfitting", "direction"):
        assert key in report
    assert sum(row["n"] for row in report["regimes"].values()) == report["metrics"]["lstm"]["1"]["n"]
    assert report["stability"]["1"]["min"] <= report["stability"]["1"]["median"] <= report["stability"]["1"]["max"]
    assert set(report["overfitting"]["train"]) == {"1", "7", "30"}
    assert report["direction"]["1"]["majority"]["accuracy"] == report["metrics"]["lstm"]["1"]["majority_accuracy"]
    assert report["data"]["sha256"] and len(report["features"]["selected"]) == 20


def test_applicable_plots_are_valid_images(trained):
    _, version, _, _ = trained
    report = json.loads((version / "training_report.json").read_text())
    written = [name for name, value in report["plots"].items() if value.endswith(".png")]
    assert set(written) >= {"loss_curves", "metrics_progression", "learning_rates", "feature_importance", "model_comparison",
                            "predictions_vs_actual", "residual_analysis", "training_summary"}
    for name in written:
        assert png_ok(version / "plots" / f"{name}.png"), name
    assert report["plots"]["attention_heatmap"].startswith("not written")
    assert not (version / "plots" / "attention_heatmap.png").exists()


def test_mlflow_run_matches_the_report(trained):
    from mlflow.tracking import MlflowClient

    root, version, _, _ = trained
    metadata = json.loads((version / "metadata.json").read_text())
    report = json.loads((version / "training_report.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'training_output' / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(metadata["mlflow_run_id"])
    logged = run.data.metrics
    for h in HORIZONS:
        for key in ("rmse", "rmse_ratio", "mase", "directional_accuracy"):
            expected = report["metrics"]["lstm"][str(h)][key]
            assert logged[f"test.lstm.h{h}.{key}"] == pytest.approx(expected, rel=1e-9)
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 2


def test_predict_returns_one_forecast_per_horizon_like_the_python_api(trained):
    root, version, _, forecast = trained
    assert [row["horizon"] for row in forecast["horizons"]] == list(HORIZONS)
    assert forecast["origin_time"].startswith("2025-08-25")
    from atb import Forecaster
    from atb.config import TrainingConfig

    api = Forecaster.load("BTCUSDT", registry_dir=root / "models")
    same = api.predict()
    assert [row["forecast"] for row in same["horizons"]] == pytest.approx([row["forecast"] for row in forecast["horizons"]], rel=1e-12)
    assert all(row["forecast"] > 0 for row in same["horizons"])
    assert TrainingConfig().dataset.horizons == HORIZONS


def test_models_commands(trained):
    root, _, _, _ = trained
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        listed = runner.invoke(app, ["models", "list"])
        assert listed.exit_code == 0 and "v0001" in listed.output
        shown = runner.invoke(app, ["models", "show", "BTCUSDT", "lstm", "v0001"])
        assert shown.exit_code == 0 and "rmse" in shown.output.lower()
        promoted = runner.invoke(app, ["models", "promote", "BTCUSDT", "lstm", "v0001", "production"])
        assert promoted.exit_code == 0, promoted.output
        compared = runner.invoke(app, ["models", "compare", "BTCUSDT"])
        assert compared.exit_code == 0, compared.output


def test_onnx_export_matches_the_stored_model(trained):
    import numpy as np

    from atb.data import load_candles
    from atb.models.onnx import OnnxForecaster
    from atb.serve import load_version

    root, _, _, _ = trained
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        exported = runner.invoke(app, ["models", "export", "BTCUSDT", "lstm", "v0001", "-o", "lstm.onnx"])
        assert exported.exit_code == 0, exported.output
        refused = runner.invoke(app, ["models", "export", "BTCUSDT", "nosuchtype"])
        assert refused.exit_code == 1 and "unknown model type" in refused.output
    predictor = load_version(root / "models", "BTCUSDT", model_type="lstm")
    window = predictor.transform.latest_window(predictor.features(load_candles()))
    np.testing.assert_allclose(OnnxForecaster(root / "lstm.onnx").predict(window), predictor.model.predict(window), atol=1e-5)


def test_onnx_engine_gives_the_same_forecast(trained):
    root, _, _, forecast = trained
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        fast = runner.invoke(app, ["predict", "BTCUSDT", "--json", "--engine", "onnx"])
    assert fast.exit_code == 0, fast.output
    rows = json.loads(fast.stdout)["horizons"]
    assert [r["forecast"] for r in rows] == pytest.approx([r["forecast"] for r in forecast["horizons"]], rel=1e-6)


def test_saved_predictions_reproduce_the_report_and_export(trained):
    import pandas as pd

    from atb.data import load_candles
    from atb.evaluation.predictions import read_predictions, rescore

    root, version, _, _ = trained
    report = json.loads((version / "training_report.json").read_text())
    frame = read_predictions(version / "predictions.parquet")
    closes = load_candles().frame["close"]
    first, last = (closes.index.get_loc(pd.Timestamp(report["data"]["splits"]["train"][k])) for k in ("first", "last"))
    training_close = closes.iloc[first - report["config"]["lookback"] + 1 : last + 1].to_numpy()
    for part, metrics in (("test", report["metrics"]), ("validation", report["validation"])):
        rescored = rescore(frame, part, training_close)
        for column, name in (("forecast", "lstm"), ("raw", "lstm_raw"), ("naive", "naive"), ("drift", "drift")):
            for h in HORIZONS:
                saved = {k: v for k, v in metrics[name][str(h)].items() if k != "rmse_vs_drift"}
                again = rescored[column][h]
                assert set(again) == set(saved), (part, name, h)
                for key, value in saved.items():  # exactly: same numbers, same arithmetic (NaN where undefined in both)
                    assert again[key] == value or (math.isnan(value) and math.isnan(again[key])), (part, name, h, key)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        exported = runner.invoke(app, ["models", "predictions", "BTCUSDT", "lstm", "-o", "lstm.csv"])
        assert exported.exit_code == 0, exported.output
        csv = pd.read_csv(root / "lstm.csv")
        origins = report["data"]["splits"]["val"]["origins"] + report["data"]["splits"]["test"]["origins"]
        assert len(csv) == len(frame) == 3 * origins
        assert f"{origins} origins x 3 horizons) written to lstm.csv" in exported.output
        missing = runner.invoke(app, ["models", "predictions", "BTCUSDT", "lstm", "-o", "lstm.txt"])
        assert missing.exit_code == 1 and "give a .csv or .parquet file" in missing.output
