"""Tuning workers sharing one Optuna study on a real PostgreSQL server (started here with
pgserver, no mock): two `atb tune` processes x 5 trials record exactly 10 complete trials,
none twice; a worker killed mid-trial leaves a trial that the next worker fails by its
silent heartbeat and runs again with the same parameters."""

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
import yaml
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

pytestmark = pytest.mark.slow
ATB = str(Path(sys.executable).parent / "atb")


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    with warnings.catch_warnings():  # platformdirs: no XDG_RUNTIME_DIR on a bare CI machine
        warnings.simplefilter("ignore")
        server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def _worker(tmp_path: Path, url: str, model_type: str, trials: int, worker: int, config: dict) -> subprocess.Popen:
    path = tmp_path / f"{model_type}.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [ATB, "tune", "BTCUSDT", "--model-type", model_type, "--variant", "lightweight", "--trials", str(trials),
               "--storage", url, "--worker", str(worker), "--heartbeat", "1", "--config", str(path)]
    return subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def _study(url: str, name: str) -> optuna.Study:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.load_study(study_name=name, storage=url)


def test_two_workers_share_one_study(postgres, tmp_path):
    config = {"days": 1200, "overrides": {"n_estimators": 30}, "output_dir": str(tmp_path / "out")}
    workers = [_worker(tmp_path, postgres, "lightgbm", 5, k, config) for k in (0, 1)]
    for process in workers:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output
    trials = _study(postgres, "atb-BTCUSDT-lightgbm").get_trials(deepcopy=False)
    assert len(trials) == 10 and all(t.state == TrialState.COMPLETE for t in trials)
    assert sorted(t.number for t in trials) == list(range(10))
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 10  # the two workers proposed different trials


def test_a_killed_workers_trial_is_failed_by_heartbeat_and_run_again(postgres, tmp_path):
    name = "atb-BTCUSDT-lstm"
    slow = {"days": 1200, "epochs": 500, "patience": 500, "output_dir": str(tmp_path / "out")}
    victim = _worker(tmp_path, postgres, "lstm", 3, 0, slow)
    deadline = time.monotonic() + 300
    while not any(t.state == TrialState.RUNNING for t in _trials_or_none(postgres, name)):
        assert victim.poll() is None and time.monotonic() < deadline, "the worker never started a trial"
        time.sleep(0.5)
    time.sleep(2.0)  # mid-trial, heartbeats flowing
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    (killed,) = [t for t in _study(postgres, name).get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    time.sleep(3.0)  # past the grace period: two heartbeats missed
    rescuer = _worker(tmp_path, postgres, "lstm", 1, 1, {**slow, "epochs": 1})
    output, _ = rescuer.communicate(timeout=600)
    assert rescuer.returncode == 0, output
    trials = {t.number: t for t in _study(postgres, name).get_trials(deepcopy=False)}
    assert trials[killed.number].state == TrialState.FAIL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna calls the retry record experimental
        (retry,) = [t for t in trials.values() if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed.number]
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert sum(t.state == TrialState.COMPLETE for t in trials.values()) == 1


def _trials_or_none(url: str, name: str) -> list:
    try:
        return _study(url, name).get_trials(deepcopy=False)
    except KeyError:  # the worker has not created the study yet
        return []
