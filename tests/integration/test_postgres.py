"""A real PostgreSQL server (started here with pgserver, no mock) as the Optuna storage and as
MLflow's backend store.

Tuning workers as Ray tasks share one study: `atb tune --backend ray --workers 2 --trials 5`
records exactly 10 complete trials, none twice, even when one worker's process is killed
mid-trial: that trial is failed by its silent heartbeat and run again with the same parameters,
and Ray starts the worker again to finish its five. A training run tracks to a PostgreSQL URL."""

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pgserver
import pytest
from mlflow.tracking import MlflowClient
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.slow
ATB = str(Path(sys.executable).parent / "atb")
STUDY = "atb-BTCUSDT-lstm"


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    with warnings.catch_warnings():  # platformdirs: no XDG_RUNTIME_DIR on a bare CI machine
        warnings.simplefilter("ignore")
        server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    server.psql("CREATE DATABASE mlflow;")
    yield server.get_uri()
    server.cleanup()


def _trials(storage: RDBStorage) -> list:
    """The study's trials, read through one storage (one connection pool) however often it is polled."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return optuna.load_study(study_name=STUDY, storage=storage).get_trials(deepcopy=False)
        except KeyError:  # no worker has created the study yet
            return []


def test_two_ray_workers_share_a_study_and_a_killed_workers_trial_runs_again(postgres, tmp_path):
    # rmse_ratio: a trial is never pruned, so each of the 10 trials ends complete
    command = [ATB, "tune", "BTCUSDT", "--model-type", "lstm", "--variant", "lightweight", "--epochs", "4", "--days", "1200",
               "--tune-objective", "rmse_ratio", "--trials", "5", "--backend", "ray", "--workers", "2", "--ray-cpus", "1",
               "--storage", postgres, "--heartbeat", "1"]
    storage = RDBStorage(postgres)  # one pool for the polling below: a storage per poll leaves connections open until collected
    tuning = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + 300
    while not (running := [t for t in _trials(storage) if t.state == TrialState.RUNNING and "host" in t.user_attrs]):
        assert tuning.poll() is None and time.monotonic() < deadline, "no worker started a trial"
        time.sleep(0.2)
    victim = running[0].user_attrs["host"]
    os.kill(int(victim.rsplit(":", 1)[1]), signal.SIGKILL)  # the Ray worker process running that trial
    output, _ = tuning.communicate(timeout=600)
    assert tuning.returncode == 0, output

    trials = {t.number: t for t in _trials(storage)}
    complete = [t for t in trials.values() if t.state == TrialState.COMPLETE]
    assert len(complete) == 10 and len({tuple(sorted(t.params.items())) for t in complete}) == 10
    (killed,) = [t for t in trials.values() if t.state != TrialState.COMPLETE]
    assert killed.state == TrialState.FAIL and killed.user_attrs["host"] == victim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna calls the retry record experimental
        (retry,) = [t for t in complete if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed.number]
    assert killed.params.items() <= retry.params.items()  # the parameters drawn before the kill (maybe not all yet)
    workers = [t.user_attrs["worker"] for t in complete]
    assert sorted(workers.count(tag) for tag in set(workers)) == [5, 5]  # the restarted worker finished its own five
    assert "11 trials (10 complete, 0 pruned, 1 failed" in output


def test_a_training_run_tracks_to_postgresql(postgres, tmp_path):
    url = make_url(postgres).set(database="mlflow").render_as_string(hide_password=False)
    command = [ATB, "train", "model", "BTCUSDT", "--model-type", "naive", "--tracking-uri", url, "--no-plots"]
    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    client = MlflowClient(tracking_uri=url)
    (run,) = client.search_runs([client.get_experiment_by_name("atb-BTCUSDT").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["registry_version"] == "BTCUSDT/naive/v0001"
    assert run.data.metrics["test.naive.h1.rmse_ratio"] == 1.0
