"""Integration tests run the real CLI in a temporary working directory."""

import os

import pytest


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A clean working directory: models/, training_output/ and mlruns land here."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


os.environ.setdefault("MPLBACKEND", "Agg")
