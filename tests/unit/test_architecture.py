"""The import rules of ARCHITECTURE.md, checked with import-linter over the installed
package: rooms import downward only (library rooms never import a workflow or
serving) and no package has an import cycle between its modules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import atb

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(atb.__file__).parent


def lint(package_parent: Path) -> subprocess.CompletedProcess:
    """`lint-imports` with the project's contracts over the `atb` found under `package_parent`."""
    environment = {**os.environ, "PYTHONPATH": str(package_parent)}
    script = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))"
    return subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "pyproject.toml")],
        capture_output=True, text=True, env=environment, cwd=package_parent, timeout=120,
    )


def test_the_package_keeps_its_contracts():
    result = lint(PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_every_room_is_placed_in_a_layer():
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    placed = {name.strip() for layer in contract["layers"] for name in layer.replace(":", "|").split("|")}
    rooms = {path.stem for path in PACKAGE.iterdir() if (path.suffix == ".py" or (path / "__init__.py").is_file())}
    assert rooms - {"__init__"} == placed


def test_an_upward_import_a_model_seeing_the_dataset_and_a_cycle_are_caught(tmp_path):
    copy = tmp_path / "atb"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "samples"))
    with open(copy / "dataset.py", "a") as handle:
        handle.write("\nfrom atb.workflows import steps  # noqa\n")
    with open(copy / "ensemble" / "regime.py", "a") as handle:
        handle.write("\nfrom atb.ensemble import fit  # noqa\n")
    with open(copy / "models" / "base.py", "a") as handle:
        handle.write("\nfrom atb.dataset import Split  # noqa\n")
    result = lint(tmp_path)
    assert result.returncode == 1
    assert "atb.dataset is not allowed to import atb.workflows" in result.stdout
    assert "No import cycles between modules of a package BROKEN" in result.stdout
    assert "atb.models is not allowed to import atb.dataset" in result.stdout
