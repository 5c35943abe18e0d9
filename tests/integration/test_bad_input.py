"""Bad input: one clear error line, exit code 1, nothing half-written in the registry."""

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from atb.cli import app

runner = CliRunner()


def _train(*args):
    return runner.invoke(app, ["train", "model", *args, "--epochs", "1", "--no-mlflow"])


def _registry_empty(root):
    models = root / "models"
    return not models.exists() or not any(p.name.startswith("v") for p in models.rglob("v*"))


def test_unknown_symbol(workdir):
    result = _train("DOGEUSDT", "--model-type", "naive")
    assert result.exit_code == 1
    assert "no bundled sample for symbol 'DOGEUSDT'" in result.output
    assert _registry_empty(workdir)


def test_missing_file(workdir):
    result = _train("BTCUSDT", "--data", "nowhere.csv", "--model-type", "naive")
    assert result.exit_code == 1 and "nowhere.csv does not exist" in result.output
    assert _registry_empty(workdir)


def test_too_few_rows(workdir):
    index = pd.date_range("2024-01-01", periods=120, freq="1D", tz="UTC")
    close = 100 + np.arange(120.0)
    frame = pd.DataFrame({"timestamp": index, "open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0})
    frame.to_csv(workdir / "short.csv", index=False)
    result = _train("BTCUSDT", "--data", "short.csv", "--model-type", "naive")
    assert result.exit_code == 1
    assert "short.csv: 119 bars, fewer than the 694 this run needs" in result.output and "--days 694" in result.output
    assert _registry_empty(workdir)


def test_unknown_model_type(workdir):
    result = _train("BTCUSDT", "--model-type", "prophet")
    assert result.exit_code == 1
    assert "prophet" in result.output and "lstm" in result.output
    assert _registry_empty(workdir)
