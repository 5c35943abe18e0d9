"""Tests for MLflow tracking against a local SQLite store."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from pathlib import Path

import pytest

from atb.processes import host
from atb.tracking import Tracker, TrackingError, default_tracking_uri

mlflow_tracking = pytest.importorskip("mlflow.tracking")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """One local store for the module (creating its database takes seconds); MLFLOW_TRACKING_URI unset."""
    local_dir = tmp_path_factory.mktemp("mlruns")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield local_dir


def _client(local_dir: Path):
    return mlflow_tracking.MlflowClient(tracking_uri=default_tracking_uri(local_dir))


def test_run_can_be_read_back(store: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("{}")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "forecast.png").write_bytes(b"png")

    with Tracker(True, None, "readback", "lstm-run", local_dir=store) as tracker:
        tracker.log_params({"model_type": "lstm", "horizons": [1, 7, 30], "overrides": {"hidden": 64}, "note": "x" * 7000})
        for epoch in range(3):
            tracker.log_epoch({"train_loss": 1.0 / (epoch + 1), "val_loss": 2.0 / (epoch + 1)}, step=epoch)
        tracker.log_metrics({"lstm": {7: {"rmse_ratio": 0.9}, 1: {"rmse_ratio": math.nan}}, "fit_seconds": 3, "missing": None})
        tracker.log_artifact(report)
        tracker.log_artifacts(plots, artifact_path="plots")
        tracker.set_tags({"symbol": "BTCUSDT"})
        run_id = tracker.run_id

    client = _client(store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "lstm-run"
    params = run.data.params
    assert params["model_type"] == "lstm" and params["horizons"] == "[1, 7, 30]" and params["overrides.hidden"] == "64"
    assert len(params["note"]) == 6000
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "val_loss")] == [(0, 2.0), (1, 1.0), (2, 2.0 / 3)]
    assert run.data.metrics["lstm.h7.rmse_ratio"] == 0.9 and run.data.metrics["fit_seconds"] == 3.0
    assert "lstm.h1.rmse_ratio" not in run.data.metrics and "missing" not in run.data.metrics
    assert run.data.tags["symbol"] == "BTCUSDT"
    assert sorted(a.path for a in client.list_artifacts(run_id)) == ["plots", "report.json"]
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/forecast.png"]

    experiment = client.get_experiment_by_name("readback")
    assert experiment.artifact_location == (store / "artifacts").as_uri()
    assert (store / "artifacts" / run_id / "artifacts" / "plots" / "forecast.png").is_file()


def test_exception_marks_run_failed(store: Path) -> None:
    with pytest.raises(ValueError, match="loss is NaN"):
        with Tracker(True, None, "failures", "broken", local_dir=store) as tracker:
            raise ValueError("loss is NaN")
    assert _client(store).get_run(tracker.run_id).info.status == "FAILED"


def test_failed_logging_call_warns_and_run_goes_on(store: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Tracker(True, None, "failures", "relog", local_dir=store) as tracker:
        tracker.log_params({"lr": 0.1})
        with caplog.at_level(logging.WARNING, logger="atb.tracking"):
            tracker.log_params({"lr": 0.2})
        tracker.log_metrics({"val_loss": 1.5})
    assert "could not log params" in caplog.text
    run = _client(store).get_run(tracker.run_id)
    assert run.data.params["lr"] == "0.1" and run.data.metrics["val_loss"] == 1.5


def test_explicit_uri_and_existing_experiment(store: Path) -> None:
    uri = default_tracking_uri(store)
    for name in ("first", "second"):
        with Tracker(True, uri, "shared", name, local_dir=store) as tracker:
            tracker.log_metrics({"rmse": 1.0})
    runs = _client(store).search_runs([_client(store).get_experiment_by_name("shared").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["first", "second"]


def test_disabled_tracker_is_a_no_op(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="atb.tracking"):
        with Tracker(False, None, "off", "run", local_dir=tmp_path / "mlruns") as tracker:
            tracker.log_params({"a": 1})
            tracker.log_epoch({"loss": 1.0}, step=0)
            tracker.log_metrics({"rmse": 1.0})
            tracker.log_artifact(tmp_path / "absent.txt")
            tracker.log_artifacts(tmp_path)
            tracker.set_tags({"t": "v"})
    assert tracker.run_id is None
    assert not (tmp_path / "mlruns").exists()
    assert caplog.text.count("tracking is disabled") == 1


def test_missing_mlflow_turns_tracking_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with caplog.at_level(logging.INFO, logger="atb.tracking"):
        with Tracker(True, None, "off", "run", local_dir=tmp_path / "mlruns") as tracker:
            tracker.log_metrics({"rmse": 1.0})
    assert tracker.run_id is None
    assert "MLflow cannot be imported" in caplog.text
    assert not (tmp_path / "mlruns").exists()


def test_logging_outside_the_block_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="inside `with Tracker"):
        Tracker(True, None, "x", "run", local_dir=tmp_path).log_metrics({"rmse": 1.0})


def test_default_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert default_tracking_uri(tmp_path / "mlruns") == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    assert default_tracking_uri(tmp_path / "mlruns") == "http://tracking.example:5000"


def test_an_interrupt_marks_the_run_killed(store: Path) -> None:
    with pytest.raises(SystemExit):
        with Tracker(True, None, "interrupted", "run", local_dir=store) as tracker:
            raise SystemExit(143)
    assert _client(store).get_run(tracker.run_id).info.status == "KILLED"


def test_a_run_whose_process_died_is_marked_killed_by_the_next(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setattr("atb.tracking.owner", lambda: f"{host()}.{dead.pid}")
    orphan = Tracker(True, None, "orphans", "killed", local_dir=store).__enter__()  # never exited, as under SIGKILL
    monkeypatch.undo()
    live = Tracker(True, None, "orphans", "live", local_dir=store).__enter__()
    with Tracker(True, None, "orphans", "next", local_dir=store):
        pass
    assert _client(store).get_run(orphan.run_id).info.status == "KILLED"
    assert _client(store).get_run(live.run_id).info.status == "RUNNING"  # its process (this one) lives
    live.__exit__(None, None, None)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [("foo://bar", "scheme 'foo' is not one of"), ("sqlite:////proc/atb/mlflow.db", "sqlite:////proc/atb/mlflow.db.*use --no-mlflow")],
)
def test_an_unusable_uri_is_one_clear_error(uri: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match=expected):
        with Tracker(True, uri, "bad", "run", local_dir=tmp_path):
            pass


def test_a_sigterm_during_a_tracking_write_exits_after_the_write():
    import os
    import signal

    from atb.processes import exit_on_signal, uninterrupted

    previous = signal.signal(signal.SIGTERM, exit_on_signal)
    steps = []
    try:
        with pytest.raises(SystemExit) as exit_info:
            with uninterrupted():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("write finished")
        assert steps == ["write finished"] and exit_info.value.code == 128 + signal.SIGTERM
        with pytest.raises(SystemExit):  # outside a block the exit is at once
            os.kill(os.getpid(), signal.SIGTERM)
            steps.append("never")
        assert steps == ["write finished"]
    finally:
        signal.signal(signal.SIGTERM, previous)
