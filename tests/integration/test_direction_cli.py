"""`atb train model --target direction` end to end on the bundled sample: probabilities of "up"
judged against the majority direction and the training base rate, saved predictions that
re-score to the report, `atb predict`, and the commands that refuse a direction target."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from png_check import png_ok
from typer.testing import CliRunner

from atb.cli import app
from atb.evaluation.predictions import brier_table, read_predictions
from atb.serve.service import ForecastService

pytestmark = pytest.mark.slow
runner = CliRunner()
HORIZONS = (1, 7, 30)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("direction")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        result = runner.invoke(app, ["train", "model", "--model-type", "lightgbm", "--variant", "lightweight", "--set", "n_estimators=60",
                                     "--target", "direction", "--no-mlflow"])
        assert result.exit_code == 0, result.output
        predicted = runner.invoke(app, ["predict", "--json"])
        assert predicted.exit_code == 0, predicted.output
    return root, root / "models" / "BTCUSDT" / "lightgbm" / "v0001", result.output, json.loads(predicted.stdout)


def test_report_judges_probabilities_against_majority_and_base_rate(trained):
    _, version, output, _ = trained
    report = json.loads((version / "training_report.json").read_text())
    assert report["config"]["target_kind"] == "direction" and report["model"]["params"]["task"] == "direction"
    assert "base rate" in output and "majority" in output
    for part in ("metrics", "validation"):
        per_h = report[part]["lightgbm"]
        assert sorted(int(h) for h in per_h) == list(HORIZONS)
        for row in per_h.values():
            assert {"accuracy", "precision", "recall", "f1", "roc_auc", "brier", "log_loss", "brier_skill", "accuracy_pvalue"} <= set(row)
            assert 0 <= row["brier"] <= 1 and row["majority"]["accuracy"] >= 0.5
            assert row["brier_skill"] == pytest.approx(1 - row["brier"] / row["base_rate"]["brier"])
    assert "total_return" in report["backtest"] and "gate" not in report
    assert not (version / "monitor.json").exists() and not (version / "gate.json").exists()
    plots = report["plots"]
    for name in ("calibration", "roc_curves", "training_summary", "feature_importance", "shap_summary"):
        assert png_ok(version / "plots" / f"{name}.png"), name
    assert plots["predictions_vs_actual"].startswith("not written")


def test_saved_probabilities_rescore_to_the_report(trained):
    _, version, _, _ = trained
    report = json.loads((version / "training_report.json").read_text())
    frame = read_predictions(version / "predictions.parquet")
    assert frame["probability_up"].between(0, 1).all()
    scores = brier_table(frame)
    for part, key in (("test", "metrics"), ("validation", "validation")):
        for h in HORIZONS:
            row = report[key]["lightgbm"][str(h)]
            assert scores.loc[(part, h), "brier"] == pytest.approx(row["brier"], rel=1e-12)
            assert scores.loc[(part, h), "base_rate_brier"] == pytest.approx(row["base_rate"]["brier"], rel=1e-12)
            assert scores.loc[(part, h), "accuracy"] == pytest.approx(row["accuracy"], rel=1e-12)
    train_rate = frame["base_rate"].groupby(frame["horizon"]).unique()
    assert all(len(rates) == 1 for rates in train_rate)  # one constant per horizon: the training share of "up"


def test_predict_gives_probabilities_and_the_service_refuses_the_version(trained):
    root, _, _, forecast = trained
    assert [row["horizon"] for row in forecast["horizons"]] == list(HORIZONS)
    assert all(0 <= row["probability_up"] <= 1 and "forecast" not in row for row in forecast["horizons"])
    assert pd.Timestamp(forecast["horizons"][0]["target_time"]) > pd.Timestamp(forecast["origin_time"])
    with pytest.raises(ValueError, match="direction probabilities"):
        ForecastService(root / "models", ["BTCUSDT"], engine="torch")


def test_models_compare_and_show_read_direction_versions(trained, monkeypatch):
    root, _, _, _ = trained
    monkeypatch.chdir(root)
    compared = runner.invoke(app, ["models", "compare", "BTCUSDT", "--dm"], env={"COLUMNS": "140"})
    assert compared.exit_code == 0, compared.output
    assert "direction versions (Brier skill" in compared.output and "left out of the DM matrix" in compared.output
    shown = runner.invoke(app, ["models", "show", "BTCUSDT", "lightgbm"])
    assert shown.exit_code == 0 and "base rate" in shown.output, shown.output


def test_direction_is_refused_where_it_does_not_apply(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = {
        ("train", "model", "--model-type", "arima", "--target", "direction"): "arima forecasts prices only",
        ("train", "model", "--model-type", "lstm", "--target", "direction", "--learning-curve"): "--learning-curve",
        ("tune", "--model-type", "lstm", "--config", "direction.yaml"): "atb tune combines and scores price forecasts",
        ("train", "production", "--config", "direction.yaml"): "atb train production combines",
    }
    (tmp_path / "direction.yaml").write_text(yaml.safe_dump({"target_kind": "direction"}))
    for args, message in cases.items():
        result = runner.invoke(app, list(args))
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert not (tmp_path / "models").exists()


def test_changing_the_test_part_leaves_the_fitted_direction_model_unchanged():
    from atb.config import TrainingConfig
    from atb.data import load_candles
    from atb.data.sources import Candles
    from atb.workflows.steps import prepare_data
    from atb.workflows.train_model import fit_model

    config = TrainingConfig.build(model_type="lightgbm", variant="lightweight", overrides={"n_estimators": 40}, target_kind="direction", mlflow=False)
    candles = load_candles()
    clean = prepare_data(config, candles)
    frame = candles.frame.copy()
    later = frame.index >= clean.dataset.test.origin_time[0]
    frame.loc[later, ["open", "high", "low", "close"]] = frame.loc[later, ["open", "high", "low", "close"]].to_numpy()[::-1]
    shuffled = prepare_data(config, Candles(frame=frame, report=candles.report, symbol=candles.symbol, source="changed"))
    assert not np.array_equal(shuffled.dataset.test.y, clean.dataset.test.y)
    probabilities = []
    for prepared in (clean, shuffled):
        model = fit_model(config, prepared.dataset, None, lambda row: None, lambda kind, payload: None)
        probabilities.append(model.predict(clean.dataset.val.X))
    np.testing.assert_array_equal(*probabilities)
