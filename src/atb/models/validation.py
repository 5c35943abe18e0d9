"""Self-checks a user can run on their machine: every registered model, and the GPU.

`validate_all_models` builds every type x variant, checks the output shape,
trains one epoch on synthetic windows, saves, reloads and compares predictions.
`gpu_check` reports what torch sees and times a small matrix product.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

import numpy as np
import torch

from atb.models.factory import MODEL_CLASSES, create_model, load_model
from atb.models.trainer import FitSettings, resolve_device
from atb.windows import Windows

LOOKBACK, N_FEATURES, N_TRAIN, N_VAL = 20, 8, 128, 32
MATMUL_SIZE = 1024


def validate_all_models(device: str = "cpu", horizons: tuple[int, ...] = (1, 7, 30)) -> list[dict[str, Any]]:
    """One result per type x variant: type, variant, parameters (learned values),
    output_shape, status ("ok" or the error as "ExceptionType: message"), seconds."""
    train, val = _synthetic_windows(N_TRAIN, horizons, seed=0), _synthetic_windows(N_VAL, horizons, seed=1)
    settings = FitSettings(epochs=1, batch_size=32, device=device, n_jobs=1)
    return [
        _validate_one(model_type, variant, train, val, settings, horizons)
        for model_type, cls in MODEL_CLASSES.items()
        for variant in cls.variants
    ]


def gpu_check(device: str = "auto") -> dict[str, Any]:
    """Torch/CUDA/cuDNN versions, the device used, and a timed matmul on it."""
    chosen = resolve_device(device)
    cuda = torch.cuda.is_available()
    a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=chosen)
    _synchronize(chosen)
    (a @ a).sum().item()  # warm-up
    started = time.perf_counter()
    (a @ a).sum().item()
    seconds = time.perf_counter() - started
    return {
        "torch_version": torch.__version__,
        "cuda_available": cuda,
        "device": str(chosen),
        "device_name": torch.cuda.get_device_name(chosen) if chosen.type == "cuda" else "cpu",
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        "matmul_size": MATMUL_SIZE,
        "matmul_seconds": seconds,
        "matmul_gflops": 2 * MATMUL_SIZE**3 / seconds / 1e9,
    }


def _validate_one(model_type, variant, train, val, settings, horizons) -> dict[str, Any]:
    result: dict[str, Any] = {"type": model_type, "variant": variant, "parameters": 0, "output_shape": None}
    started = time.perf_counter()
    try:
        model = create_model(model_type, (LOOKBACK, N_FEATURES), horizons, variant)
        model.fit(train, val, settings)
        prediction = model.predict(val.X)
        result["parameters"] = model.n_parameters()
        result["output_shape"] = list(prediction.shape)
        if prediction.shape != (len(val), len(horizons)):
            raise AssertionError(f"predict returned {prediction.shape}, expected {(len(val), len(horizons))}")
        with tempfile.TemporaryDirectory() as directory:
            model.save(directory)
            reloaded = load_model(directory)
        if model.is_neural:  # compare on one device: CPU and GPU kernels differ in the last bits
            reloaded.to(model.device)
        if not np.allclose(reloaded.predict(val.X), prediction, rtol=0, atol=1e-6):
            raise AssertionError("predictions after save and reload differ")
        result["status"] = "ok"
    except Exception as exc:  # a report of every failure, not a stop at the first
        result["status"] = f"{type(exc).__name__}: {exc}"
    result["seconds"] = time.perf_counter() - started
    return result


def _synthetic_windows(n: int, horizons: tuple[int, ...], seed: int) -> Windows:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, LOOKBACK, N_FEATURES)).astype(np.float32)
    signal = 0.01 * X[:, -1, 0]
    y = np.stack([signal * np.sqrt(h) for h in horizons], axis=1) + rng.normal(scale=0.01, size=(n, len(horizons)))
    return Windows(X, y.astype(np.float32))


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
