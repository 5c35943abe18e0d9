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
    config = TrainingConfig.build(model_type="lightgbm", registry_dir=root / "models", output_dir=root / "out", mlflow=False, plots=False)
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


SHIFT_AT = 1200  # inside the training years: the model knows the bars before it


def shifted_frame() -> pd.DataFrame:
    """The bundled candles with five times the volatility from bar SHIFT_AT on."""
    frame = load_candles().frame.copy()
    returns = np.log(frame["close"]).diff().fillna(0.0).to_numpy()
    returns[SHIFT_AT:] *= 5.0
    close = float(frame["close"].iloc[0]) * np.exp(np.cumsum(returns))
    ratio = close / frame["close"].to_numpy()
    return frame.assign(open=frame["open"] * ratio, high=frame["high"] * ratio, low=frame["low"] * ratio, close=close)


def test_a_volatility_shift_raises_an_alert_within_60_bars(sample_version, tmp_path):
    root, _ = sample_version
    shift_at = SHIFT_AT
    shifted_candles = Candles(frame=shifted_frame(), report=load_candles().report, symbol="BTCUSDT", source="shifted")
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


def test_an_alert_reaches_the_webhook_and_the_command_and_retrains_a_challenger(sample_version, tmp_path, monkeypatch):
    import http.server
    import threading

    root, _ = sample_version
    monkeypatch.chdir(tmp_path)
    shifted_frame().iloc[: SHIFT_AT + 60].to_csv(tmp_path / "shifted.csv")
    received = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    registry = ModelRegistry(root / "models")
    registry.promote("BTCUSDT", "lightgbm", "v0001", "production")
    stages_before = (root / "models" / "BTCUSDT" / "stages.json").read_text()
    before = registry.list_versions("BTCUSDT")
    common = ["monitor", "--model-type", "lightgbm", "--registry", str(root / "models"), "--data", "shifted.csv", "--window", "30"]
    dry = runner.invoke(app, [*common, "--retrain", "--dry-run", "-o", "dry"])
    assert dry.exit_code == 2 and "dry run: would train lightgbm" in dry.output
    assert registry.list_versions("BTCUSDT") == before
    result = runner.invoke(app, [*common, "-o", "alert", "--alert-webhook", f"http://127.0.0.1:{server.server_port}/hook",
                                 "--alert-command", f"cat > {tmp_path / 'command.json'}", "--retrain"])
    server.shutdown()
    assert result.exit_code == 2, result.output
    assert received and received[0]["status"] == "alert" and received[0]["version"] == "BTCUSDT/lightgbm/v0001"
    assert json.loads((tmp_path / "command.json").read_text())["status"] == "alert"
    assert "BTCUSDT/lightgbm/v0002 trained and registered as a shadow challenger" in result.output
    assert registry.get("BTCUSDT", "lightgbm", "production").version == "v0001"  # never replaced
    assert json.loads((root / "models" / "BTCUSDT" / "stages.json").read_text())["production"] == json.loads(stages_before)["production"]
    assert registry.get("BTCUSDT", "lightgbm", "staging").version == "v0002"
    assert registry.read_rollout("BTCUSDT")["challenger"] == "BTCUSDT/lightgbm/v0002"


def test_the_server_monitors_on_request_and_exports_gauges(sample_version):
    from serving import Server

    from atb.serve.service import ForecastService

    root, _ = sample_version
    running = Server(ForecastService(root / "models", engine="torch"), poll_seconds=None)
    try:
        status, report = running.request("GET", "/v1/models/BTCUSDT/monitor?model_type=lightgbm&window=90")
        assert status == 200, report
        assert report["status"] in ("ok", "warning", "alert") and report["version"].startswith("BTCUSDT/lightgbm/")
        metrics = running.request("GET", "/metrics")[1]
        assert "atb_monitor_status{" in metrics and "atb_monitor_realised_rmse_ratio{" in metrics
    finally:
        running.stop()
