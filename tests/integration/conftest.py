"""Integration tests run the real CLI in a temporary working directory."""

import os

import pytest


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A clean working directory: models/, training_output/ and mlruns land here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def png_ok(path) -> bool:
    """A non-empty image with the PNG signature that matplotlib can read."""
    import matplotlib.image

    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000 and matplotlib.image.imread(path).ndim == 3


os.environ.setdefault("MPLBACKEND", "Agg")
