"""A two-hourly history with exchange outages (long gaps and a zero-volume flat stretch, as in
the early Bitstamp years) trains end to end; the outages are reported and kept out."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from atb.cli import app
from atb.data import load_candles

pytestmark = pytest.mark.slow


def outage_history(path):
    """The bundled candles relabelled as 2h bars, with a 300-bar and a 25-bar gap and 40 bars without trades."""
    frame = load_candles().frame.copy()
    frame.index = pd.date_range("2013-01-01", periods=len(frame), freq="2h", tz="UTC", name="timestamp")
    flat = slice(900, 940)
    frame.iloc[flat, :4] = frame["close"].iloc[899]
    frame.iloc[flat, 4] = 0.0
    frame = frame.drop(frame.index[1500:1800]).drop(frame.index[2200:2225])
    frame.to_csv(path)


def test_a_history_with_outages_trains_and_reports_them(workdir):
    outage_history(workdir / "BTCUSD_2h.csv")
    result = CliRunner().invoke(
        app, ["train", "model", "BTCUSD", "--data", "BTCUSD_2h.csv", "--model-type", "lstm", "--variant", "lightweight", "--epochs", "2", "--no-mlflow", "--no-plots"]
    )
    assert result.exit_code == 0, result.output
    assert "2 gap(s), 325 missing bar(s)" in result.output
    assert "365 bar(s) in stretches of more than 5 bars without trades" in result.output
    report = json.loads(next(workdir.glob("models/BTCUSD/lstm/v0001/training_report.json")).read_text())
    assert report["data"]["bar_duration"] == "0 days 02:00:00"
    assert any("without trades" in note for note in report["data"]["notes"])
    assert all(np.isfinite(report["metrics"]["lstm"][h]["rmse_ratio"]) for h in ("1", "7", "30"))
    assert report["plots"] == {} and not list(workdir.glob("models/**/*.png"))  # --no-plots
    assert "Plots: 0 PNGs" in result.output
