"""A copy of the registry written by earlier code (a single LSTM, a LightGBM and their ensemble)."""

import shutil
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parents[2] / "fixtures" / "registry_024bb27"


@pytest.fixture
def registry(tmp_path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(FIXTURE, root)
    return root
