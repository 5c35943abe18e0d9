"""`--backend ray` on a local Ray started for the run gives the `--backend local` results at the
same threads: `atb train production` (a Ray task per symbol, base model and seed, then one per
base model assembling its seeds: same metrics and registry contents) and `atb benchmark` (a task
per series and seed: same figures); a failing task is reported with its symbol and model, and
the others' results are kept."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from atb.cli import app
from atb.workflows.backends import RayResources, run_ray

pytestmark = pytest.mark.slow
runner = CliRunner()
SAMPLE = Path(__file__).parents[2] / "src" / "atb" / "data" / "samples" / "BTCUSDT_1d.csv"
ETH = Path(__file__).parents[1] / "fixtures" / "ETHUSDT_1d.csv"
SMALL = ["--base-models", "lstm,lightgbm", "--epochs", "2", "--seeds", "2", "--mc-samples", "3", "--days", "900", "--no-mlflow", "--no-plots"]
TIMED = {"model/seed_42/params.json", "model/seed_43/params.json", "training_report.json"}  # hold fit seconds and run paths


def _run(root: Path, *extra: str) -> str:
    """BTC (bundled), ETH (fixture) and SOL (too little history: it fails) on small settings."""
    root.mkdir()
    (root / "light.yaml").write_text("variant: lightweight\n")
    (root / "SOLUSDT_1d.csv").write_text("".join(ETH.read_text().splitlines(keepends=True)[:200]))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        return runner.invoke(app, ["train", "production", "--crypto", "BTC,ETH,SOL", "--data", str(SAMPLE), "--data", str(ETH),
                                   "--data", "SOLUSDT_1d.csv", "--config", "light.yaml", *SMALL, *extra])


def _versions(registry: Path) -> dict[str, dict]:
    return {str(path.parent.relative_to(registry)): json.loads(path.read_text()) for path in sorted(registry.glob("*/*/v*/metadata.json"))}


def test_ray_gives_the_local_results_and_keeps_them_when_a_task_fails(tmp_path):
    local = _run(tmp_path / "local", "--threads", "1")
    ray = _run(tmp_path / "ray", "--backend", "ray", "--ray-cpus", "1")
    for result in (local, ray):
        assert result.exit_code == 1 and "SOLUSDT failed" in result.output and "fewer than the" in result.output, result.output
    assert "BTCUSDT lstm seed 43 fitted" in ray.output and "BTCUSDT lstm stored BTCUSDT/lstm/v0001" in ray.output
    assert "SOLUSDT lstm failed: ValueError" in ray.output and "SOLUSDT lightgbm failed: ValueError" in ray.output
    assert not (tmp_path / "ray" / "training_output" / "members").exists()  # the seeds' folders are gone once stored
    here, there = _versions(tmp_path / "local" / "models"), _versions(tmp_path / "ray" / "models")
    assert sorted(here) == sorted(there) == [f"{s}/{t}/v0001" for s in ("BTCUSDT", "ETHUSDT") for t in ("ensemble", "lightgbm", "lstm")]
    for ref, metadata in here.items():
        assert metadata["metrics"] == there[ref]["metrics"], ref
        same = {name: digest for name, digest in metadata["files"].items() if name not in TIMED}
        assert same == {name: digest for name, digest in there[ref]["files"].items() if name not in TIMED}, ref  # weights, gates, predictions


def test_run_ray_returns_each_jobs_value_or_error_in_order():
    outcomes = run_ray(json.loads, ["[1]", "{", "3"], RayResources(cpus=1))  # a module-level function a worker imports
    assert [o.value for o in outcomes] == [[1], None, 3]
    assert outcomes[1].error.startswith("JSONDecodeError: Expecting property name")


def test_benchmark_on_ray_gives_the_local_runs_and_lists_a_failing_series(tmp_path):
    short = tmp_path / "SOLUSDT_1d.csv"
    short.write_text("".join(ETH.read_text().splitlines(keepends=True)[:200]))
    small = tmp_path / "small.yaml"
    small.write_text("variant: lightweight\noverrides: {n_estimators: 20}\n")
    saved = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        result = runner.invoke(app, ["benchmark", str(ETH), str(short), "--models", "lightgbm", "--seeds", "2", "--no-latency",
                                     "--backend", backend, "--threads", "1", "--config", str(small), "-o", str(out)])
        assert result.exit_code == 1 and "SOLUSDT seed 42 failed:" in result.output, result.output
        saved[backend] = json.loads((out / "benchmark.json").read_text())
    here, there = ({(r["series"], r["split"], r["model"], r["seed"]): r["horizons"] for r in saved[b]["runs"]} for b in ("local", "ray"))
    assert len(here) == 2 and here == there  # ETH x 2 seeds, the same figures
    assert here[("ETHUSDT", "holdout", "lightgbm", 42)] != here[("ETHUSDT", "holdout", "lightgbm", 43)]  # each seed its own fit
    assert [f["series"] for f in saved["ray"]["failures"]] == ["SOLUSDT", "SOLUSDT"]
