"""`atb features`, `atb regimes` and `atb list-models` on the bundled sample."""

import pandas as pd
from typer.testing import CliRunner

from atb.cli import app

runner = CliRunner()


def test_features_prints_counts_and_writes_parquet(workdir):
    result = runner.invoke(app, ["features", "BTCUSDT", "-o", "f.parquet"])
    assert result.exit_code == 0, result.output
    matrix = pd.read_parquet(workdir / "f.parquet")
    assert matrix.shape[1] >= 150 and len(matrix) > 2900
    for category in ("price", "moving_average", "momentum", "volatility", "volume", "statistical", "time", "regime"):
        assert category in result.output
    assert f"{matrix.shape[1]} features" in result.output


def test_regimes_prints_shares_per_split(workdir):
    result = runner.invoke(app, ["regimes", "BTCUSDT"])
    assert result.exit_code == 0, result.output
    for word in ("train", "val", "test", "trending", "mean_reverting", "volatile", "ranging", "%"):
        assert word in result.output


def test_list_models(workdir):
    result = runner.invoke(app, ["list-models"])
    assert result.exit_code == 0
    for name in ("lstm", "cnn_lstm", "attention_lstm", "enhanced_lstm", "tcn", "tcn_attention", "transformer", "lightgbm", "naive", "drift"):
        assert name in result.output
