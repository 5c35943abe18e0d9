"""Killed runs: SIGKILL mid-fit then `--resume` ends with the weights of an uninterrupted
run; SIGTERM leaves no temporary folder and ends the MLflow run KILLED; what a SIGKILL
left is swept by the next run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch

pytestmark = pytest.mark.slow
TRAIN = ["train", "model", "BTCUSDT", "--model-type", "lstm", "--variant", "lightweight", "--epochs", "5", "--patience", "50", "--no-plots"]


def environment(tmp_path: Path) -> dict[str, str]:
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    # one thread: the CPU sums in the same order in every process
    return {**os.environ, "TMPDIR": str(temp), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": ""}


def atb(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "atb.cli", *args], cwd=cwd, env=environment(cwd.parent), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def finished(args: list[str], cwd: Path) -> str:
    process = atb(args, cwd)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return output


def stop_during_epoch(process: subprocess.Popen, cwd: Path, after_epoch: int, sig: int) -> None:
    """Send `sig` once the checkpoint shows `after_epoch` epochs done (the next one is under way)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for path in cwd.glob("training_output/checkpoints/*/checkpoint.safetensors"):
            with safetensors.safe_open(path, framework="pt") as handle:
                if f'"epoch": {after_epoch},' in handle.metadata()["state"]:
                    process.send_signal(sig)
                    process.communicate(timeout=120)
                    return
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.05)
    raise AssertionError("the run never reached the epoch")


def weights(cwd: Path) -> dict:
    return safetensors.torch.load_file(cwd / "models" / "BTCUSDT" / "lstm" / "v0001" / "model" / "weights.safetensors")


def leftovers(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "tmp").glob("atb-*"))


def test_sigkill_then_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole.mkdir(), killed.mkdir()
    finished([*TRAIN, "--no-mlflow"], whole)

    process = atb([*TRAIN, "--no-mlflow"], killed)
    stop_during_epoch(process, killed, after_epoch=2, sig=signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL and leftovers(tmp_path)
    output = finished([*TRAIN, "--no-mlflow", "--resume"], killed)
    assert "resuming the interrupted fit" in output

    expected, resumed = weights(whole), weights(killed)
    assert expected.keys() == resumed.keys()
    assert all(bool((expected[k] == resumed[k]).all()) for k in expected)
    assert not leftovers(tmp_path)  # the killed run's scratch folder was swept
    assert not list(killed.glob("training_output/checkpoints/*/*"))  # stored: nothing left to resume


def test_sigterm_leaves_no_temporary_folder_and_a_killed_mlflow_run(tmp_path):
    cwd = tmp_path / "run"
    cwd.mkdir()
    process = atb(TRAIN, cwd)
    stop_during_epoch(process, cwd, after_epoch=1, sig=signal.SIGTERM)
    assert process.returncode == 128 + signal.SIGTERM
    assert not leftovers(tmp_path)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{cwd / 'training_output' / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("atb-BTCUSDT").experiment_id])
    assert [run.info.status for run in runs] == ["KILLED"]
