"""Model speed on windows shaped like BTCUSDT daily: training seconds per epoch,
single-forecast latency (p50/p99) and batch throughput, per model type.

    python tests/benchmarks/bench_models.py                      # enhanced_lstm + transformer training, every type's inference
    python tests/benchmarks/bench_models.py --epochs 1 --types lstm,tcn --inference-types lstm,lightgbm
    python tests/benchmarks/bench_models.py --device cuda --json results.json
    python tests/benchmarks/bench_models.py --device cuda --cuda-graphs --epochs 5   # eager vs CUDA graph
    python tests/benchmarks/bench_models.py --types "" --threads 1 --onnx   # inference only, also via ONNX Runtime

Data: a seeded random walk with BTC-like daily volatility, 61 causal features
(the log-return and its trailing means over 2..61 bars, scaled), lookback 60,
horizons 1/7/30, about 3,700 windows split 70/15/15 in time; batch size 64.
Latency follows the benchmark protocol: one origin, all horizons, at least 200
calls after warm-up. For a neural type the same loop also times the bare network
forward (what a hand-written loop would call) and, with --onnx, ONNX Runtime,
interleaved call by call: their ratios hold within one run even on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from atb.dataset import Split
from atb.evaluation.speed import time_inference
from atb.models import AVAILABLE_MODELS, create_model
from atb.models.onnx import OnnxForecaster, onnx_bytes
from atb.models.trainer import FitSettings, resolve_device

LOOKBACK, N_FEATURES, HORIZONS, N_WINDOWS, BATCH_SIZE = 60, 61, (1, 7, 30), 3700, 64
INFERENCE_FIT_WINDOWS = 512  # neural types timed for inference only are fitted briefly on this many
DEFAULT_TRAIN_TYPES = ("enhanced_lstm", "transformer")


def btc_like_splits(seed: int = 0) -> tuple[Split, Split, Split]:
    """Chronological train/val/test windows from a random walk with BTC-like drift and volatility."""
    rng = np.random.default_rng(seed)
    n_bars = N_WINDOWS + LOOKBACK - 1 + max(HORIZONS) + N_FEATURES - 1
    returns = pd.Series(rng.normal(0.001, 0.035, n_bars))
    close = 4000.0 * np.exp(returns.cumsum().to_numpy())
    warm_up = N_FEATURES - 1  # bars before every trailing mean is defined
    features = np.column_stack([returns.rolling(w).mean() for w in range(1, N_FEATURES + 1)])[warm_up:]
    close = close[warm_up:]
    fitted_rows = features[: int(0.7 * len(features))]  # scale with the training period only
    features = ((features - fitted_rows.mean(axis=0)) / fitted_rows.std(axis=0)).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(features, LOOKBACK, axis=0).transpose(0, 2, 1)
    origins = np.arange(LOOKBACK - 1, LOOKBACK - 1 + N_WINDOWS)
    future = np.stack([close[origins + h] for h in HORIZONS], axis=1)
    split = Split(
        X=np.ascontiguousarray(windows[:N_WINDOWS]),
        y=np.log(future / close[origins, None]).astype(np.float32),
        origin_time=origins,
        origin_close=close[origins],
        future_close=future,
    )
    a, b = int(0.70 * N_WINDOWS), int(0.85 * N_WINDOWS)
    return split.subset(slice(0, a)), split.subset(slice(a, b)), split.subset(slice(b, None))


def time_training(model_type: str, train: Split, val: Split, settings: FitSettings) -> dict:
    """Seconds per epoch (validation included) over `settings.epochs` epochs, no early
    stop; `steady_epoch_seconds` leaves out the first epoch (CUDA warm-up, graph capture)."""
    model = create_model(model_type, (LOOKBACK, N_FEATURES), HORIZONS)
    started = time.perf_counter()
    history = model.fit(train, val, settings)
    epoch_seconds = [row["seconds"] for row in history]
    return {
        "model": model,
        "fit_seconds": time.perf_counter() - started,
        "rounds": len(history),
        "epoch_seconds": epoch_seconds,
        "mean_epoch_seconds": float(np.mean(epoch_seconds)),
        "steady_epoch_seconds": float(np.mean(epoch_seconds[1:] or epoch_seconds)),
        "val_loss": [row["val_loss"] for row in history],
    }


def compare_runs(reference: dict, other: dict, X: np.ndarray) -> dict:
    """How far two trainings of one type ended apart: the largest per-epoch relative
    validation-loss gap, and the largest forecast gap on `X` in units of the
    reference forecasts' standard deviation."""
    loss_a, loss_b = np.array(reference["val_loss"]), np.array(other["val_loss"])
    forecast_a, forecast_b = reference["model"].predict(X), other["model"].predict(X)
    return {
        "max_val_loss_rel_gap": float(np.max(np.abs(loss_b - loss_a) / np.abs(loss_a))),
        "max_forecast_gap_in_std": float(np.max(np.abs(forecast_b - forecast_a)) / forecast_a.std()),
    }


def whole_batches(split: Split, batch_size: int) -> Split:
    """The first windows of `split` that fill whole batches (a CUDA graph replays one batch shape)."""
    return split.subset(slice(0, len(split) // batch_size * batch_size))


def bare_forward(model) -> Callable[[np.ndarray], torch.Tensor]:
    """The fitted network called directly, as a hand-written serving loop would: no
    input checks, no chunking; the output is brought to the host (a no-op on the
    CPU; on a GPU it also waits for the result, so the timing is complete)."""
    network, device = model.network_, model.device

    def forward(X: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return network(torch.from_numpy(X).to(device)).cpu()

    return forward


def report(model_type: str, what: str, timing: dict) -> None:
    print(f"{model_type:15s} {what:9s}: p50 {timing['p50_ms']:.3f} ms, p99 {timing['p99_ms']:.3f} ms, "
          f"batch of 1000: {timing['batch1000_per_second']:,.0f} windows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (training; inference runs where the model is)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per trained type")
    parser.add_argument("--types", default=",".join(DEFAULT_TRAIN_TYPES), help="types whose training is timed (comma-separated)")
    parser.add_argument("--inference-types", default=",".join(AVAILABLE_MODELS), help="types whose inference is timed")
    parser.add_argument("--calls", type=int, default=300, help="single-origin predictions timed per type (>= 200)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--onnx", action="store_true", help="also time exported neural models in ONNX Runtime (1 thread)")
    parser.add_argument("--cuda-graphs", action="store_true",
                        help="train each type eagerly, again eagerly, and as a CUDA graph; compare speed and results")
    parser.add_argument("--mixed-precision", action="store_true", help="autocast on CUDA (all training runs)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    train_types = [t for t in args.types.split(",") if t]
    inference_types = [t for t in args.inference_types.split(",") if t]

    if args.threads:
        torch.set_num_threads(args.threads)
    if (args.cuda_graphs or args.mixed_precision) and resolve_device(args.device).type != "cuda":
        parser.error("--cuda-graphs and --mixed-precision need --device cuda (or auto on a machine with CUDA)")
    train, val, test = btc_like_splits()
    if args.cuda_graphs:
        train = whole_batches(train, BATCH_SIZE)  # every run sees the same batches
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": args.device,
    }
    print(f"machine: {machine}")
    print(f"windows: train {train.X.shape}, val {len(val)}, test {len(test)}; batch {BATCH_SIZE}; epochs {args.epochs}")
    settings = FitSettings(epochs=args.epochs, batch_size=BATCH_SIZE, patience=args.epochs + 1, device=args.device,
                           mixed_precision=args.mixed_precision, n_jobs=os.cpu_count())
    runs = {"eager": settings}
    if args.cuda_graphs:
        runs |= {"eager_again": settings, "cuda_graphs": replace(settings, cuda_graphs=True)}

    results: dict[str, dict] = {}
    models = {}
    for model_type in train_types:
        timings = {run: time_training(model_type, train, val, run_settings) for run, run_settings in runs.items()}
        for run, timing in timings.items():
            first = ", ".join(f"{s:.3f}" for s in timing["epoch_seconds"][:5])
            print(f"{model_type:15s} training ({run}): {timing['mean_epoch_seconds']:.3f} s/epoch, "
                  f"{timing['steady_epoch_seconds']:.3f} after the first, over {timing['rounds']} epochs or "
                  f"boosting rounds ({first}{' ...' if timing['rounds'] > 5 else ''}), fit {timing['fit_seconds']:.1f} s")
        comparisons = {run: compare_runs(timings["eager"], timings[run], test.X) for run in timings if run != "eager"}
        for run, gap in comparisons.items():
            print(f"{'':15s} {run} vs eager: val loss within {gap['max_val_loss_rel_gap']:.2%} per epoch, "
                  f"test forecasts within {gap['max_forecast_gap_in_std']:.3f} std")
        models[model_type] = timings["eager"]["model"]
        results[model_type] = {"training": {run: {k: v for k, v in t.items() if k != "model"} for run, t in timings.items()},
                               "training_vs_eager": comparisons}
    for model_type in inference_types:
        model = models.get(model_type)
        if model is None:
            model = create_model(model_type, (LOOKBACK, N_FEATURES), HORIZONS)
            subset = slice(0, INFERENCE_FIT_WINDOWS) if model.is_neural else slice(None)
            model.fit(train.subset(subset), val, FitSettings(epochs=1, device=args.device, n_jobs=os.cpu_count()))
        engines = {"inference": model.predict}
        if model.is_neural:
            engines["bare"] = bare_forward(model)
        if args.onnx and model.onnx_exportable:
            engines["onnx"] = OnnxForecaster(onnx_bytes(model), threads=1).predict
        timings = time_inference(engines, test.X, args.calls)
        results.setdefault(model_type, {}).update(timings)
        for engine, timing in timings.items():
            report(model_type, engine, timing)
        if "bare" in timings:
            print(f"{'':15s} predict / bare forward p50: {timings['inference']['p50_ms'] / timings['bare']['p50_ms']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "epochs": args.epochs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
