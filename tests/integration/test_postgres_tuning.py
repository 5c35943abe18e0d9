"""Tuning workers as Ray tasks sharing one Optuna study on a real PostgreSQL server (started here
with pgserver, no mock): `atb tune --backend ray --workers 2 --trials 5` records exactly 10
complete trials, none twice, even when one worker's process is killed mid-trial: that trial is
failed by its silent heartbeat and run again with the same parameters, and Ray starts the worker
again to finish its five."""

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
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

pytestmark = pytest.mark.slow
ATB = str(Path(sys.executable).parent / "atb")
STUDY = "atb-BTCUSDT-lstm"


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    with warnings.catch_warnings():  # platformdirs: no XDG_RUNTIME_DIR on a bare CI machine
        warnings.simplefilter("ignore")
        server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def _trials(url: str) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return optuna.load_study(study_name=STUDY, storage=url).get_trials(deepcopy=False)
        except KeyError:  # no worker has created the study yet
            return []


def test_two_ray_workers_share_a_study_and_a_killed_workers_trial_runs_again(postgres, tmp_path):
    # rmse_ratio: a trial is never pruned, so each of the 10 trials ends complete
    command = [ATB, "tune", "BTCUSDT", "--model-type", "lstm", "--variant", "lightweight", "--epochs", "4", "--days", "1200",
               "--tune-objective", "rmse_ratio", "--trials", "5", "--backend", "ray", "--workers", "2", "--ray-cpus", "1",
               "--storage", postgres, "--heartbeat", "1"]
    tuning = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + 300
    while not (running := [t for t in _trials(postgres) if t.state == TrialState.RUNNING and "host" in t.user_attrs]):
        assert tuning.poll() is None and time.monotonic() < deadline, "no worker started a trial"
        time.sleep(0.2)
    victim = running[0].user_attrs["host"]
    os.kill(int(victim.rsplit(":", 1)[1]), signal.SIGKILL)  # the Ray worker process running that trial
    output, _ = tuning.communicate(timeout=600)
    assert tuning.returncode == 0, output

    trials = {t.number: t for t in _trials(postgres)}
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
