"""Checks run before any data is loaded or anything fitted, so that every failure a user
can cause costs one line and no work: the symbol, the model types, the device, the
tracking URI and every folder a run will write to."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from atb.config import ConfigError, TrainingConfig
from atb.data import sample_path
from atb.models import model_class
from atb.models.trainer import resolve_device
from atb.registry import check_name
from atb.tracking import check_tracking_uri, default_tracking_uri


def check_run(config: TrainingConfig, model_types: list[str] | tuple[str, ...], writes_registry: bool = True) -> None:
    """Raise a one-line error for the first thing that would make this run fail later."""
    check_name("symbol", config.data.symbol)
    if config.data.source == "sample":
        sample_path(config.data.symbol)  # a symbol without a bundled sample is refused by name
    classes = [model_class(name) for name in model_types]
    if any(cls.is_neural for cls in classes):
        check_device(config.fit.device)
    if writes_registry:
        for model_type in model_types:
            check_writable(config.output.registry_dir / config.data.symbol / model_type, "registry (--registry)")
    check_writable(config.output.output_dir, "output folder (output_dir)")
    if config.output.mlflow:
        check_tracking_uri(config.output.tracking_uri or default_tracking_uri(config.output.output_dir / "mlruns"))


def check_device(name: str) -> None:
    try:
        resolve_device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"--device: {exc}") from None


def check_writable(path: Path, what: str) -> None:
    """`path` (or, where it does not exist yet, its nearest existing parent) takes a file;
    nothing is left behind."""
    existing = next((p for p in (path, *path.parents) if p.exists()), Path.cwd())
    if not existing.is_dir():
        raise ConfigError(f"{what} {path}: {existing} is a file, not a folder; choose another path")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".atb-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write in {existing} ({exc.strerror or exc}); choose a writable folder") from None
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: {existing} is not writable; choose a writable folder")
