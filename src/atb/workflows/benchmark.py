"""`atb benchmark`: the protocol leaderboard in one command.

For every series, every model type (and the stacking ensemble of the default
bases when they are all benchmarked) and every seed (one job per series here,
a Ray task per series and seed): fit on the training part,
fit the skill gate on the validation part, score on the test part beside naive
and drift, raw and gated; optionally again on every walk-forward fold. Each
fit is timed; inference speed, parameter count and weights size are measured
once per type. Every run's validation and test forecasts (served, raw, naive,
drift) are kept, so any figure can be re-scored and any gate refitted without
refitting a model. Nothing is stored in the registry.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from atb.config import ProductionSpec, TrainingConfig
from atb.dataset import Dataset
from atb.ensemble.fit import SERVED_METHOD, fit_ensemble
from atb.evaluation.leaderboard import MEAN_OVER_SERIES, leaderboard_markdown, summarise_runs
from atb.evaluation.plots import plot_leaderboard
from atb.evaluation.predictions import prediction_frame, write_predictions
from atb.evaluation.protocol import score
from atb.evaluation.skill import fit_skill_gate
from atb.evaluation.speed import time_inference
from atb.io import atomic_write_json, atomic_write_text
from atb.models import model_class
from atb.models.gate import GatedModel, SkillGate
from atb.models.onnx import OnnxForecaster, onnx_bytes
from atb.processes import scratch_directory
from atb.workflows.assessment import fit_gate, is_gated
from atb.workflows.backends import Outcome, RayResources, run_local, run_ray, task_threads
from atb.workflows.preflight import check_run
from atb.workflows.steps import EventHandler, dataset_for, ignore_events, prepare_data
from atb.workflows.train_model import fit_model
from atb.workflows.walk_forward import fold_datasets

HOLDOUT = "holdout"  # the protocol's 70/15/15 split
ENSEMBLE_BASES = ProductionSpec().base_models


@dataclass(frozen=True)
class Series:
    """A candle series: a file, or the bundled sample when `path` is None."""

    symbol: str
    path: Path | None = None

    @classmethod
    def of_file(cls, path: Path) -> Series:
        """The series in `path`, named by the part of the file name before the first "_" (BTCUSDT_1d.csv -> BTCUSDT)."""
        return cls(symbol=path.stem.split("_")[0].upper(), path=path)


def run_benchmark(
    config: TrainingConfig,
    series: Sequence[Series],
    model_types: Sequence[str],
    seeds: Sequence[int],
    folds: int = 0,
    latency: bool = True,
    on_event: EventHandler = ignore_events,
) -> dict:
    """Every run's figures, their summary (mean and std over seeds and folds, and over series),
    and speed per model type, JSON-ready, and under `predictions` every run's forecasts
    (a DataFrame, see `run_job`). One job per series, here one after another, or
    as a Ray task per (series, seed) (`config.compute`); a failing job is listed under `failures` and the others kept."""
    ray = config.compute.backend == "ray"
    base = config.with_absolute_paths() if ray else config
    configs = [base.replace(symbol=item.symbol, data_path=item.path) for item in series]
    for cfg in configs:
        check_run(cfg, model_types, writes_registry=False, command="atb benchmark")
    seed_groups = [(seed,) for seed in seeds] if ray else [tuple(seeds)]  # here, a series' data is prepared once for every seed
    jobs = [
        BenchmarkJob(cfg, tuple(model_types), group, folds, with_speed=latency and index == 0)
        for index, (cfg, group) in enumerate((cfg, group) for cfg in configs for group in seed_groups)
    ]
    if ray:
        jobs = [replace(job, config=job.config.replace(threads=task_threads(config))) for job in jobs]
        on_event("stage", {"name": "fit", "label": f"{len(jobs)} benchmark jobs (series x seed) on Ray"})
        outcomes = run_ray(run_job, jobs, RayResources.of(config), on_done=lambda i, o: on_event("message", {"text": _job_line(jobs[i], o)}))
    else:
        outcomes = run_local(run_job, jobs, on_event=on_event)
    failures = [
        {"series": job.config.data.symbol, "seed": seed, "error": o.error} for job, o in zip(jobs, outcomes) if o.error for seed in job.seeds
    ]
    if all(outcome.error for outcome in outcomes):
        raise RuntimeError(f"every benchmark job failed; the first: {failures[0]['series']} seed {failures[0]['seed']}: {failures[0]['error']}")
    done = [outcome.value for outcome in outcomes if not outcome.error]
    runs = [run for value in done for run in value["runs"]]
    return {
        "machine": machine(),
        "backend": config.compute.backend,  # with ray, speed is timed inside a Ray task beside the others
        "config": config.to_dict(),
        "series": [item.symbol for item in series],
        "models": list(model_types) + ([SERVED_METHOD] if set(ENSEMBLE_BASES) <= set(model_types) else []),
        "seeds": list(seeds),
        "folds": folds,
        "runs": runs,
        "failures": failures,
        "summary": summarise_runs(runs),
        "speed": next((value["speed"] for value in done if value["speed"]), {}),
        "predictions": pd.concat([value["predictions"] for value in done], ignore_index=True),
    }


@dataclass(frozen=True)
class BenchmarkJob:
    """One series (its config) and seeds: every model type on the holdout split and on `folds` folds."""

    config: TrainingConfig
    model_types: tuple[str, ...]
    seeds: tuple[int, ...]
    folds: int = 0
    with_speed: bool = False  # time inference of the holdout split's served models (first seed)


def run_job(job: BenchmarkJob, on_event: EventHandler = ignore_events) -> dict:
    """The job's runs (and the ensemble's where its bases are all benchmarked), speed per model type
    when asked, and `predictions`: each run's rows of `predictions.parquet` (validation and test
    origins, prices; see `atb.evaluation.predictions`) after its series, split, model and seed."""
    cfg, symbol = job.config, job.config.data.symbol
    prepared = prepare_data(cfg)
    splits = [(HOLDOUT, None, prepared.dataset)]
    splits += [(f"fold_{fold.index}", fold.parts, dataset) for fold, dataset in fold_datasets(cfg, prepared, job.folds)] if job.folds else []
    runs, speed, frames = [], {}, []
    for split, parts, dataset in splits:
        for seed in job.seeds:
            served, own_datasets = {}, {}
            for model_type in job.model_types:
                on_event("stage", {"name": "fit", "label": f"{symbol} {split} {model_type} seed {seed}"})
                run_cfg = cfg.replace(model_type=model_type, variant=variant_of(model_type, cfg.model.variant), seed=seed, seeds=1)
                own = dataset_for(prepared, cfg, model_type, parts) if model_class(model_type).input_features else dataset
                tic = time.perf_counter()
                model = fit_model(run_cfg, own, None, lambda row: on_event("epoch", row), on_event)
                fit_seconds = time.perf_counter() - tic
                raw_val, raw_test = model.predict(own.val.X), model.predict(own.test.X)
                gate = fit_gate(raw_val, own) if cfg.model.skill_gate and is_gated(model_type) else None
                served[model_type], own_datasets[model_type] = GatedModel(model, gate) if gate else model, own
                forecasts = (gate.apply(raw_val), gate.apply(raw_test), raw_val, raw_test) if gate else (raw_val, raw_test, raw_val, raw_test)
                runs.append(_run(symbol, split, model_type, seed, fit_seconds, own, forecasts, gate))
                frames.append(_forecast_rows(runs[-1], own, *forecasts))
            if set(ENSEMBLE_BASES) <= set(served):
                close = prepared.candles.frame["close"]
                record, forecasts = _ensemble_run(symbol, split, seed, dataset, close, served, own_datasets, cfg.model.skill_gate)
                runs.append(record)
                frames.append(_forecast_rows(record, dataset, *forecasts))
            if job.with_speed and split == HOLDOUT and seed == job.seeds[0]:
                speed = {name: measure_speed(model, own_datasets[name].test.X) for name, model in served.items()}
    return {"runs": runs, "speed": speed, "predictions": pd.concat(frames, ignore_index=True)}


def _forecast_rows(run: dict, dataset: Dataset, served_val, served_test, raw_val, raw_test) -> pd.DataFrame:
    """A run's forecasts of the validation and test origins, keyed by its series, split, model and seed."""
    frame = prediction_frame(dataset, {"validation": served_val, "test": served_test}, {"validation": raw_val, "test": raw_test})
    keys = pd.DataFrame({key: [run[key]] * len(frame) for key in ("series", "split", "model", "seed")})
    return pd.concat([keys, frame], axis=1)


def _job_line(job: BenchmarkJob, outcome: Outcome) -> str:
    state = f"failed: {outcome.error}" if outcome.error else f"{len(outcome.value['runs'])} runs"
    return f"{job.config.data.symbol} seed {', '.join(map(str, job.seeds))}: {state}"


def variant_of(model_type: str, variant: str) -> str:
    """`variant` where the type has it, else the type's default (the baselines have no other)."""
    return variant if variant in model_class(model_type).variants else "default"


def _run(symbol, split, model, seed, fit_seconds, dataset: Dataset, forecasts: tuple, gate: SkillGate | None) -> dict:
    """One fit's record: the served (gated) forecast's figures with the raw model's beside them;
    `forecasts` are the served validation and test forecasts, then the raw ones."""
    served_val, served_test, raw_val, raw_test = forecasts
    horizons = _figures(dataset, served_test, served_val, raw_test, raw_val)
    for j, figures in enumerate(horizons.values()):
        figures["gate_a"] = float(gate.drift_weight[j]) if gate else None
        figures["gate_k"] = float(gate.model_weight[j]) if gate else None
    return {"series": symbol, "split": split, "model": model, "seed": seed, "fit_s": fit_seconds, "horizons": horizons}


def _ensemble_run(symbol, split, seed, dataset: Dataset, close, served: dict, datasets: dict[str, Dataset], gated: bool) -> tuple[dict, tuple]:
    """The stacking ensemble of the (gated) default bases: fitted on their validation forecasts,
    scored on the test part; its validation figure is cross-fitted. Returns the record and the
    forecasts (served and raw, validation and test)."""
    tic = time.perf_counter()
    bases = {name: served[name] for name in ENSEMBLE_BASES}
    fitted = fit_ensemble(
        dataset,
        close,
        bases,
        val_preds={name: model.predict(datasets[name].val.X) for name, model in bases.items()},
        test_preds={name: model.predict(datasets[name].test.X) for name, model in bases.items()},
        test_windows={name: datasets[name].test.X for name, model in bases.items()},
        spec=ProductionSpec(uncertainty=False),
        seed=seed,
        fit_gate=fit_skill_gate if gated else None,
    )
    served_val, raw = fitted.validation_predictions[SERVED_METHOD], f"{SERVED_METHOD}_raw"
    raw_test, raw_val = fitted.test_predictions.get(raw, fitted.served_prediction), fitted.validation_predictions.get(raw, served_val)
    forecasts = (served_val, fitted.served_prediction, raw_val, raw_test)
    return _run(symbol, split, SERVED_METHOD, seed, time.perf_counter() - tic, dataset, forecasts, fitted.spec.gate), forecasts


def _figures(dataset: Dataset, test: np.ndarray, val: np.ndarray, raw_test: np.ndarray, raw_val: np.ndarray) -> dict:
    """Per horizon: the protocol figures of the served test forecast, and the test and validation
    RMSE/naive of the served and the raw forecasts."""
    test_metrics = score({"served": test, "raw": raw_test}, dataset.test, dataset)
    val_metrics = score({"served": val, "raw": raw_val}, dataset.val, dataset)
    return {
        h: {
            **{key: row[key] for key in ("rmse_ratio", "mase", "directional_accuracy", "majority_accuracy", "direction_pvalue", "dm_pvalue")},
            "rmse_ratio_raw": test_metrics["raw"][h]["rmse_ratio"],
            "val_rmse_ratio": val_metrics["served"][h]["rmse_ratio"],
            "val_rmse_ratio_raw": val_metrics["raw"][h]["rmse_ratio"],
        }
        for h, row in test_metrics["served"].items()
    }


def measure_speed(model, X: np.ndarray) -> dict:
    """Single-forecast p50/p99 and batch-1,000 throughput (torch, and ONNX Runtime for
    exportable models), learned values and the saved weights' size."""
    engines = {"torch": model.predict}
    if model.onnx_exportable:
        engines["onnx"] = OnnxForecaster(onnx_bytes(model), threads=1).predict
    timings = time_inference(engines, X, calls=200)
    with scratch_directory("benchmark") as scratch:
        model.save(Path(scratch) / "model")
        weights_bytes = sum(path.stat().st_size for path in Path(scratch).rglob("*") if path.is_file())
    return {**timings, "parameters": model.n_parameters(), "weights_bytes": weights_bytes}


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def write_outputs(result: dict, directory: Path) -> dict[str, Path]:
    """`benchmark.json`, `benchmark.md`, `benchmark.png` (the mean over series of the holdout split)
    and `predictions.parquet` (every run's forecasts)."""
    paths = {
        "json": directory / "benchmark.json",
        "markdown": directory / "benchmark.md",
        "chart": directory / "benchmark.png",
        "predictions": directory / "predictions.parquet",
    }
    atomic_write_json(paths["json"], {key: value for key, value in result.items() if key != "predictions"})
    write_predictions(result["predictions"], paths["predictions"])
    atomic_write_text(paths["markdown"], leaderboard_markdown(result))
    series = ", ".join(result["series"])
    plot_leaderboard(result["summary"][HOLDOUT][MEAN_OVER_SERIES], paths["chart"], f"Test RMSE / naive, mean over {series}")
    return paths
