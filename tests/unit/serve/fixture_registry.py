"""A copy of the registry written by earlier code (a single LSTM, a LightGBM and their ensemble)."""

import shutil
from pathlib import Path

FIXTURE = Path(__file__).parents[2] / "fixtures" / "registry_024bb27"


def copy_registry(folder: Path) -> Path:
    shutil.copytree(FIXTURE, folder / "models")
    return folder / "models"
