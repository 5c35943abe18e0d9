"""Checks run before any data is loaded or anything fitted, so that every failure a user
can cause costs one line and no work: the symbol, the model types, the device, the
tracking URI and every folder a run will write to."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from atb.config import ConfigError, TrainingConfig
from atb.data import sample_path
from atb.models import AVAILABLE_MODELS, model_class
from atb.models.trainer import resolve_device
from atb.registry import check_name
from atb.tracking import check_tracking_uri, default_tracking_uri


def check_run(
    config: TrainingConfig, model_types: list[str] | tuple[str, ...], writes_registry: bool = True, command: str = "atb train model"
) -> None:
    """Raise a one-line error for the first thing that would make this run fail later."""
    check_name("symbol", config.data.symbol)
    if config.data.source == "sample":
        sample_path(config.data.symbol)  # a symbol without a bundled sample is refused by name
    classes = [model_class(name) for name in model_types]
    if config.dataset.target_kind == "direction":
        check_direction(config, model_types, command)
    if any(cls.is_neural for cls in classes):
        check_device(config.fit.device)
    if writes_registry:
        for model_type in model_types:
            check_writable(config.output.registry_dir / config.data.symbol / model_type, "registry (--registry)")
    check_writable(config.output.output_dir, "output folder (output_dir)")
    if config.output.mlflow:
        check_tracking_uri(config.output.tracking_uri or default_tracking_uri(config.output.output_dir / "mlruns"))


def check_direction(config: TrainingConfig, model_types: list[str] | tuple[str, ...], command: str) -> None:
    """Direction models (probabilities of "up") are trained one at a time, by a type that can output them."""
    if command != "atb train model":
        raise ConfigError(f"--target direction: {command} combines and scores price forecasts; train a direction model with `atb train model`")
    able = [name for name in AVAILABLE_MODELS if model_class(name).supports_direction]
    for name in model_types:
        if not model_class(name).supports_direction:
            raise ConfigError(f"--target direction: {name} forecasts prices only; types that forecast direction: {', '.join(able)}")
    if config.model.learning_curve:
        raise ConfigError("--target direction: --learning-curve measures RMSE against the naive forecast; leave it out")


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
