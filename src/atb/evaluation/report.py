"""What a training run reports, as typed records that serialise to `training_report.json`.

`TrainingReport` is one model's run (stored in its registry version);
`ProductionReport` is a production run per symbol (stored with the ensemble
version and in the run's output directory). `to_dict()` gives the JSON layout,
`from_dict()` reads it back, including reports written by earlier versions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
import subprocess
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atb.data import Candles
from atb.dataset import Dataset, Split


@dataclass
class DataSummary:
    """The candles a run used: where from, how many, their span, hash and validation findings."""

    symbol: str
    source: str
    rows: int
    span: list[str]  # first and last bar, ISO
    bar_duration: str
    sha256: str
    validation: dict
    splits: dict[str, dict]  # train/val/test -> origins, first, last
    also: dict[str, dict] = field(default_factory=dict)  # a global model's other series -> training windows, first, last
    notes: list[str] = field(default_factory=list)  # validation's repairs and the dataset's warnings, as shown

    @classmethod
    def of(cls, candles: Candles, dataset: Dataset, auxiliary: dict[str, Split] | None = None) -> DataSummary:
        frame = candles.frame
        return cls(
            symbol=candles.symbol,
            source=candles.source,
            rows=len(frame),
            span=[frame.index[0].isoformat(), frame.index[-1].isoformat()],
            bar_duration=str(candles.bar_duration),
            sha256=data_fingerprint(frame),
            validation=candles.report.to_dict(),
            splits={
                name: {"origins": len(part), "first": first, "last": last}
                for (name, (first, last)), part in zip(
                    dataset.boundaries().items(), (dataset.train, dataset.val, dataset.test)
                )
            },
            also={
                symbol: {"windows": len(part), "first": str(pd.Timestamp(part.origin_time[0])), "last": str(pd.Timestamp(part.origin_time[-1]))}
                for symbol, part in (auxiliary or {}).items()
            },
            notes=[*candles.report.messages(), *dataset.notes],
        )


@dataclass
class FeatureSummary:
    """How many candidate features there were, which were selected and their selection scores."""

    n_candidates: int
    selected: list[str]
    selection_scores: dict[str, float]


@dataclass
class ModelSummary:
    model_type: str
    variant: str
    params: dict
    best_epoch: int | None


@dataclass
class RegistryEntry:
    """Where the run's version was stored."""

    path: str
    version: str


@dataclass
class TrainingReport:
    """One model's training run."""

    config: dict  # TrainingConfig.to_dict()
    data: DataSummary
    features: FeatureSummary
    model: ModelSummary
    history: list[dict]
    metrics: dict  # model and baselines -> horizon -> protocol metrics
    backtest: dict
    seed: int
    environment: dict
    validation: dict | None = None  # the same metrics on the validation origins (absent in reports before the gate)
    gate: dict | None = None  # the skill gate's coefficients (None: served ungated)
    skill_warnings: list[str] = field(default_factory=list)  # horizons without validated skill
    seeds: dict | None = None  # a seed ensemble's seeds and each seed's RMSE/naive, with their spread
    regimes: dict | None = None  # served model's test RMSE/naive per market regime of the origin
    stability: dict | None = None  # served model's test RMSE/naive over rolling windows: spread, worst window
    overfitting: dict | None = None  # raw model's RMSE/naive on training vs validation windows, and warnings
    learning_curve: dict | None = None  # with --learning-curve: raw RMSE/naive per training-set size
    importance: dict[str, float] | None = None  # per input feature, as plotted (LightGBM gain or permutation importance)
    direction: dict | None = None  # served model's up/down calls on the test part: accuracy, precision, recall, F1, ROC AUC vs majority
    plots: dict[str, str] = field(default_factory=dict)  # plot name -> file, or why it was not written
    timings: dict[str, float] = field(default_factory=dict)
    registry: RegistryEntry | None = None  # set once the version is stored

    def to_dict(self) -> dict[str, Any]:
        return _without_none(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingReport:
        """A report read back from JSON (earlier reports lack validation, gate and warnings)."""
        return cls(
            **{
                **values,
                "data": DataSummary(**values["data"]),
                "features": FeatureSummary(**values["features"]),
                "model": ModelSummary(**values["model"]),
                "registry": RegistryEntry(**values["registry"]) if values.get("registry") else None,
            }
        )


@dataclass
class ProductionReport:
    """A production run for one symbol: base versions, ensembles, intervals, walk-forward, tuning."""

    config: dict
    bases: dict[str, dict[str, str]] = field(default_factory=dict)  # base name -> {"version": ref, "path": ...}
    timings: dict[str, float] = field(default_factory=dict)
    walk_forward: dict | None = None
    tuning: dict | None = None  # base name -> its study (TuningResult.to_dict()), the tuned overrides and learning rate
    metrics: dict | None = None
    model_vs_model: dict | None = None  # horizon -> row -> column -> one-sided DM p (row more accurate), test part
    validation: dict | None = None  # bases (gated) and cross-fitted stacking on the validation origins
    skill_warnings: list[str] | None = None
    regimes: dict | None = None
    uncertainty: dict | None = None
    backtest: dict | None = None
    stacking: dict | None = None
    plots: dict[str, str] | None = None
    ensemble_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _without_none(dataclasses.asdict(self))


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    """Top-level fields that are set (a field not reached is left out of the JSON)."""
    return {key: value for key, value in values.items() if value is not None}


def data_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of the candles (timestamps and values), to tie a model to its data."""
    digest = hashlib.sha256()
    digest.update(frame.index.asi8.tobytes())
    digest.update(np.ascontiguousarray(frame.to_numpy(dtype=float)).tobytes())
    return digest.hexdigest()


def environment(device: str) -> dict[str, Any]:
    """Library versions, platform, device and source commit of a run."""
    import lightgbm
    import sklearn
    import torch

    return {
        "atb": version("atb"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "lightgbm": lightgbm.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit_learn": sklearn.__version__,
        "device": device,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "git_commit": git_commit(),
    }


def git_commit() -> str | None:
    """The commit of the atb source tree, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
