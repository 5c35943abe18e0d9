"""Every failure a user can cause is one line naming the path or field, exit code 1, and
happens before any fitting: the former tracebacks of the fault probe, one by one."""

import errno
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from atb.cli import app

runner = CliRunner()
FIXTURE = Path(__file__).parents[1] / "fixtures" / "registry_024bb27"
UNWRITABLE = "/proc/atb-cannot-write-here"  # refused even to root


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture
def registry(tmp_path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "models")
    return tmp_path / "models"


def one_line_error(args: list[str], expected: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len([line for line in lines if line.startswith("error:")]) == 1 and lines[-1].startswith("error:"), result.output
    assert expected in lines[-1], lines[-1]
    return lines[-1]


def no_version_written(root: Path) -> bool:
    return not list(root.glob("**/v0*"))


def test_a_registry_that_is_a_file(tmp_path):
    (tmp_path / "models").write_text("not a folder")
    one_line_error(["train", "model", "--model-type", "naive", "--no-mlflow"], "registry (--registry) models/BTCUSDT/naive: models is a file")


def test_a_registry_that_cannot_be_written():
    one_line_error(["train", "model", "--model-type", "naive", "--no-mlflow", "--registry", UNWRITABLE], f"registry (--registry) {UNWRITABLE}")


def test_a_symbol_folder_that_cannot_be_written(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "BTCUSDT").write_text("")
    one_line_error(["train", "model", "--model-type", "naive", "--no-mlflow"], "models/BTCUSDT is a file")


def test_promote_on_a_registry_that_refuses_writes(registry, monkeypatch):
    def refuse(path, payload):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("atb.registry.atomic_write_json", refuse)
    one_line_error(["models", "promote", "BTCUSDT", "lstm", "v0001", "staging"], "Permission denied: models/BTCUSDT/stages.json")


def test_export_to_a_folder_that_cannot_be_written(registry):
    one_line_error(["models", "export", "BTCUSDT", "lstm", "-o", f"{UNWRITABLE}/model.onnx"], f"--output {UNWRITABLE}")


def test_an_output_folder_that_cannot_be_created(tmp_path):
    (tmp_path / "out.yaml").write_text(f"output_dir: {UNWRITABLE}\n")
    one_line_error(["train", "model", "--model-type", "naive", "--no-mlflow", "--config", "out.yaml"], "output folder (output_dir)")
    assert no_version_written(tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda(tmp_path):
    one_line_error(["train", "model", "--model-type", "lstm", "--no-mlflow", "--device", "cuda"], "--device: device 'cuda' requested but CUDA is not available")
    assert no_version_written(tmp_path)


def test_an_invalid_tracking_uri(tmp_path):
    one_line_error(["train", "model", "--model-type", "naive", "--tracking-uri", "foo://bar"], "tracking URI 'foo://bar': scheme 'foo'")
    assert no_version_written(tmp_path)


def test_an_unknown_base_model_is_refused_before_any_training(tmp_path):
    one_line_error(["train", "production", "--base-models", "naive,nosuch", "--no-mlflow"], "unknown model type 'nosuch'")
    assert no_version_written(tmp_path)


def test_an_invalid_symbol_is_refused_before_any_work(tmp_path):
    sample = Path(__file__).parents[2] / "src" / "atb" / "data" / "samples" / "BTCUSDT_1d.csv"
    one_line_error(["train", "model", "BTC/USD", "--data", str(sample), "--model-type", "naive", "--no-mlflow"], "symbol 'BTC/USD' is not a valid registry name")


def test_brackets_in_a_message_are_shown_not_swallowed_as_markup(tmp_path):
    frame = "timestamp,open,high,low,close,volume\n" + "".join(f"2024-01-{d:02d},10,12,9,11,1\n" for d in range(1, 20))
    (tmp_path / "bad.csv").write_text(frame.replace("2024-01-05,10,12,9,11", "2024-01-05,10,12,9,13"))
    line = one_line_error(["features", "--data", "bad.csv"], "bad.csv")
    assert "[low, high]" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["benchmark", "--models", "naive", "--seeds", "0"], "--seeds 0 must be >= 1"),
        (["tune", "--model-type", "lstm", "--workers", "2"], "tune_workers: 2 workers run as Ray tasks; add --backend ray"),
        (["benchmark", "--models", "naive", "--walk-forward", "-1"], "--walk-forward -1 must be >= 0"),
        (["features", "-o", f"{UNWRITABLE}/f.parquet"], f"--output {UNWRITABLE}"),
        (["validate-models", "--device", "tpu"], "--device: unknown device 'tpu'"),
        (["train", "production", "--crypto", "DOGE", "--base-models", "naive", "--no-mlflow"], "no bundled sample for symbol 'DOGEUSDT'"),
    ],
)
def test_other_commands_refuse_up_front(args, expected):
    one_line_error(args, expected)


@pytest.mark.parametrize("flags, expected", [
    (["--tune-models", "lstm"], "tune_models: ['lstm'] are not base models of this run ['enhanced_lstm', 'transformer', 'lightgbm']"),
    (["--tune-sampler", "annealing"], "tuning: sampler 'annealing' is not one of"),
    (["--tune-objective", "sharpe,profit"], "tuning: objectives ['sharpe', 'profit']: each must be one of"),
    (["--tune-objective", "sharpe,win_rate", "--tune-sampler", "cmaes"], "the cmaes sampler optimises one objective"),
    (["--max-drawdown", "30"], "tuning: max_drawdown: 30.0 must be in (0, 1]"),
    (["--tune-cv", "1"], "tuning: cv_folds: 1 must be 0 (the validation part) or >= 2"),
])
def test_tuning_settings_are_refused_before_any_work(flags, expected, tmp_path):
    one_line_error(["train", "production", "--tune", "--no-mlflow", *flags], expected)
    assert not (tmp_path / "training_output").exists() and no_version_written(tmp_path)
