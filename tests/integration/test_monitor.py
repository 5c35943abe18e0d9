"""`atb monitor`: quiet on the model's own ground, an alert soon after a volatility shift,
and the false-alert rate over 50 unshifted windows of the bundled sample."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from atb.cli import app
from atb.config import TrainingConfig
from atb.data import Candles, load_candles
from atb.registry import ModelRegistry
from atb.serve.monitor import monitor
from atb.workflows.train_model import train_model

pytestmark = pytest.mark.slow
runner = CliRunner()


def cut(candles: Candles, end: int) -> Candles:
    return Candles(frame=candles.frame.iloc[:end], report=candles.report, symbol=candles.symbol, source=candles.source)


@pytest.fixture(scope="module")
def sample_version(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor")
    config = TrainingConfig.build(model_type="lightgbm", registry_dir=root / "models", output_dir=root / "out", mlflow=False)
    result = train_model(config)
    return root, result


def test_the_model_s_own_training_window_is_ok_and_50_later_windows_rarely_alert(sample_version):
    root, result = sample_version
    registry, candles = ModelRegistry(root / "models"), load_candles()
    train_end = candles.frame.index.get_loc(pd.Timestamp(result.report.data.splits["train"]["last"]))
    assert monitor(registry, "BTCUSDT", cut(candles, train_end), model_type="lightgbm")["status"] == "ok"
    ends = np.linspace(train_end + 90, len(candles.frame), 50).astype(int)
    statuses = [monitor(registry, "BTCUSDT", cut(candles, end), model_type="lightgbm")["status"] for end in ends]
    alerts = statuses.count("alert") / len(statuses)
    print(f"50 windows after the training part: {statuses.count('ok')} ok, {statuses.count('warning')} warning, {statuses.count('alert')} alert")
    assert alerts <= 0.10


def test_a_volatility_shift_raises_an_alert_within_60_bars(sample_version, tmp_path):
    root, _ = sample_version
    candles = load_candles()
    frame = candles.frame.copy()
    shift_at = 1200  # inside the training years: the model knows the bars before it
    returns = np.log(frame["close"]).diff().fillna(0.0).to_numpy()
    returns[shift_at:] *= 5.0  # five times the volatility from here on
    close = float(frame["close"].iloc[0]) * np.exp(np.cumsum(returns))
    ratio = close / frame["close"].to_numpy()
    shifted = frame.assign(open=frame["open"] * ratio, high=frame["high"] * ratio, low=frame["low"] * ratio, close=close)
    shifted_candles = Candles(frame=shifted, report=candles.report, symbol="BTCUSDT", source="shifted")
    registry = ModelRegistry(root / "models")
    first_alert = next(
        (k for k in range(10, 121, 10) if monitor(registry, "BTCUSDT", cut(shifted_candles, shift_at + k), window=30, model_type="lightgbm")["status"] == "alert"),
        None,
    )
    assert first_alert is not None and first_alert <= 60, first_alert


def test_the_cli_exit_code_follows_the_status(sample_version, tmp_path, monkeypatch):
    root, result = sample_version
    monkeypatch.chdir(tmp_path)
    candles = load_candles().frame
    train_end = pd.Timestamp(result.report.data.splits["train"]["last"])
    candles.loc[:train_end].to_csv(tmp_path / "training_years.csv")
    ok = runner.invoke(app, ["monitor", "--model-type", "lightgbm", "--registry", str(root / "models"), "--data", "training_years.csv", "-o", "ok"])
    assert ok.exit_code == 0, ok.output
    report = json.loads((tmp_path / "ok" / "monitor.json").read_text())
    assert report["status"] == "ok" and (tmp_path / "ok" / "monitor.png").stat().st_size > 5000
    later = runner.invoke(app, ["monitor", "--model-type", "lightgbm", "--registry", str(root / "models"), "-o", "later"])
    assert later.exit_code in (1, 2) and "inputs drifted" in later.output, later.output  # mid-2025: calmer than 2018-23
