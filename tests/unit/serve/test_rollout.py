"""Rollout commands and the champion-vs-challenger report on logged forecasts."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from atb.cli import app
from atb.data import load_candles
from atb.evaluation.rollout import rollout_report
from atb.registry import ModelRegistry, rollout_record
from atb.serve.forecast_log import ForecastLog
from atb.serve.rollout import answering_arm, key_fraction
from atb.serve.service import ForecastService

FIXTURE = Path(__file__).parents[2] / "fixtures" / "registry_024bb27"
runner = CliRunner()


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(FIXTURE, tmp_path / "models")
    return tmp_path / "models"


def test_the_arm_is_fixed_by_the_key_and_the_share():
    rollout = rollout_record("BTCUSDT/lstm/v0001", "canary", 0.3)
    arms = [answering_arm(rollout, "BTCUSDT", f"k{i}") for i in range(5000)]
    assert arms == [answering_arm(rollout, "BTCUSDT", f"k{i}") for i in range(5000)]
    assert abs(arms.count("challenger") / 5000 - 0.3) < 0.03
    assert answering_arm(rollout_record("BTCUSDT/lstm/v0001", "shadow", 1.0), "BTCUSDT", "k") == "champion"
    assert 0 <= key_fraction("BTCUSDT", "x") < 1
    with pytest.raises(ValueError, match="--share 0 must be in"):
        rollout_record("BTCUSDT/lstm/v0001", "canary", 0)


def test_rollout_start_stop_and_promote_from_the_cli(registry):
    result = runner.invoke(app, ["models", "rollout", "BTCUSDT", "--challenger", "lstm/v0001", "--mode", "canary", "--share", "0.2"])
    assert result.exit_code == 0, result.output
    assert ModelRegistry(registry).read_rollout("BTCUSDT")["share"] == 0.2
    assert runner.invoke(app, ["models", "rollout", "BTCUSDT", "--stop"]).exit_code == 0
    assert ModelRegistry(registry).read_rollout("BTCUSDT") is None
    assert ModelRegistry(registry).resolve_for_serving("BTCUSDT").ref == "BTCUSDT/ensemble/v0001"  # rollback: the champion stays
    runner.invoke(app, ["models", "rollout", "BTCUSDT", "--challenger", "lstm/v0001"])
    assert runner.invoke(app, ["models", "rollout", "BTCUSDT", "--promote"]).exit_code == 0
    assert ModelRegistry(registry).resolve_for_serving("BTCUSDT").ref == "BTCUSDT/lstm/v0001"
    result = runner.invoke(app, ["models", "rollout", "BTCUSDT", "--challenger", "lstm/v0042"])
    assert result.exit_code == 1 and "v0042" in result.output


def test_the_report_scores_both_arms_on_the_same_realised_requests(registry, tmp_path):
    log = ForecastLog(f"sqlite:///{tmp_path / 'log.db'}")
    ModelRegistry(registry).write_rollout("BTCUSDT", rollout_record("BTCUSDT/lstm/v0001", "shadow", 1.0))
    service = ForecastService(registry, engine="torch", log=log)
    close = load_candles().frame["close"]
    origins = [t.isoformat() for t in close.index[-200:-31]]
    service.forecast("BTCUSDT", origin_times=origins)
    rows = rollout_report(log.rows("BTCUSDT"), close)
    by_arm = {(r["arm"], r["horizon"]): r for r in rows}
    assert by_arm[("champion", 30)]["n"] == by_arm[("challenger", 30)]["n"] == len(origins)
    assert math.isnan(by_arm[("champion", 1)]["dm_pvalue"]) and 0 <= by_arm[("challenger", 1)]["dm_pvalue"] <= 1
    logged = [r for r in log.rows("BTCUSDT") if r["arm"] == "challenger"]
    errors = np.array([r["forecast"][0] - close.loc[close.index[close.index.get_loc(r["origin_time"]) + 1]] for r in logged])
    naive = np.array([r["origin_close"] - close.loc[close.index[close.index.get_loc(r["origin_time"]) + 1]] for r in logged])
    assert by_arm[("challenger", 1)]["rmse_ratio"] == pytest.approx(np.sqrt(np.mean(errors**2) / np.mean(naive**2)))
    result = runner.invoke(app, ["models", "rollout", "BTCUSDT", "--report", "--forecast-log", f"sqlite:///{tmp_path / 'log.db'}"])
    assert result.exit_code == 0, result.output
    assert "BTCUSDT/lstm/v0001" in result.output and "challenger" in result.output


def test_a_log_written_before_base_forecasts_were_kept_gains_the_column(tmp_path):
    import sqlite3

    from atb.serve.forecast_log import ForecastLog

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE forecasts (id INTEGER PRIMARY KEY, request_id VARCHAR(64) NOT NULL, logged_at FLOAT NOT NULL, symbol VARCHAR(64) NOT NULL, "
            "version VARCHAR(200) NOT NULL, arm VARCHAR(16) NOT NULL, returned BOOLEAN NOT NULL, origin_time VARCHAR(40) NOT NULL, "
            "origin_close FLOAT NOT NULL, horizons TEXT NOT NULL, forecast TEXT NOT NULL, input_hash VARCHAR(64) NOT NULL)"
        )
        connection.execute("INSERT INTO forecasts VALUES (1, 'r0', 0, 'BTCUSDT', 'BTCUSDT/lstm/v0001', 'champion', 1, '2024-01-01', 1.0, '[1]', '[1.1]', 'h')")
    log = ForecastLog(f"sqlite:///{path}")
    forecast = {"model": "BTCUSDT/ensemble/v0001", "origin_time": "2024-01-02", "origin_close": 1.0,
                "horizons": [{"horizon": 1, "forecast": 1.2}], "bases": {"lstm": [0.1]}}
    log.append("r1", "BTCUSDT", "h", [("champion", True, forecast)])
    old, new = log.rows("BTCUSDT")
    assert old["request_id"] == "r0" and old["bases"] is None and new["bases"] == {"lstm": [0.1]}
