"""TrainingConfig: the one place where every run setting and its default is written.

The CLI, YAML files and the Python API all build this dataclass; it validates
itself once on construction and refuses bad values with a message that names
the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from atb.data.timeframes import TIMEFRAMES

GAP_POLICIES = ("error", "ffill", "keep")
TARGET_KINDS = ("log_return", "price")
SELECTION_TARGETS = ("return", "close")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a training run needs, with its defaults."""

    # data
    symbol: str = "BTCUSDT"
    data_path: Path | None = None
    exchange: str | None = None
    timeframe: str = "1d"
    days: int | None = None
    gap_policy: str = "ffill"
    drop_partial_last_bar: bool = True
    funding_path: Path | None = None
    cache_dir: Path = Path.home() / ".cache" / "atb"
    # dataset
    horizons: tuple[int, ...] = (1, 7, 30)
    lookback: int = 60
    split: tuple[float, float, float] = (0.70, 0.15, 0.15)
    n_features: int = 60
    selection_target: str = "return"
    target_kind: str = "log_return"
    # model
    model_type: str = "attention_lstm"
    variant: str = "default"
    overrides: dict[str, Any] = field(default_factory=dict)
    # training
    epochs: int = 100
    batch_size: int = 64
    patience: int = 10
    learning_rate: float | None = None  # None: the architecture's own default
    seed: int = 42
    device: str = "auto"
    mixed_precision: bool = False
    cuda_graphs: bool = False
    # production / ensemble
    base_models: tuple[str, ...] = ("enhanced_lstm", "transformer", "lightgbm")
    ensemble: bool = True
    uncertainty: bool = True
    mc_samples: int = 50
    walk_forward: bool = False
    wf_splits: int = 5
    tune: bool = False
    tune_trials: int = 20
    tune_timeout: float = 3600.0
    tune_models: tuple[str, ...] = ("lstm", "transformer", "lightgbm")
    tune_storage: str | None = None
    # outputs
    registry_dir: Path = Path("models")
    output_dir: Path = Path("training_output")
    mlflow: bool = True
    tracking_uri: str | None = None

    def __post_init__(self) -> None:
        _coerce_fields(self)
        _validate(self)

    @property
    def source(self) -> str:
        """Where candles come from: a file, an exchange, or the bundled sample."""
        if self.data_path is not None:
            return "file"
        if self.exchange is not None:
            return "exchange"
        return "sample"

    @property
    def max_horizon(self) -> int:
        return max(self.horizons)

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (paths as strings, tuples as lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; valid fields: {sorted(known)}")
        return cls(**values)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> TrainingConfig:
        """Read a YAML mapping of field -> value; `overrides` win over the file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must hold a mapping of field: value")
        return cls.from_dict({**values, **overrides})


_PATH_FIELDS = ("data_path", "funding_path", "cache_dir", "registry_dir", "output_dir")
_TUPLE_FIELDS = ("horizons", "split", "base_models", "tune_models")


def _coerce_fields(cfg: TrainingConfig) -> None:
    """Accept lists and strings from YAML/CLI for tuple and path fields."""
    for name in _PATH_FIELDS:
        value = getattr(cfg, name)
        if value is not None and not isinstance(value, Path):
            object.__setattr__(cfg, name, Path(value))
    for name in _TUPLE_FIELDS:
        value = getattr(cfg, name)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        object.__setattr__(cfg, name, tuple(value))
    object.__setattr__(cfg, "horizons", tuple(_as_int("horizons", h) for h in cfg.horizons))
    object.__setattr__(cfg, "split", tuple(float(s) for s in cfg.split))
    object.__setattr__(cfg, "overrides", dict(cfg.overrides or {}))


def _as_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not an integer") from None
    if number != value and not isinstance(value, str):
        raise ConfigError(f"{name}: {value!r} is not an integer")
    return number


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _validate(cfg: TrainingConfig) -> None:
    _require(bool(cfg.symbol) and cfg.symbol.strip() == cfg.symbol, f"symbol: {cfg.symbol!r} must be a non-empty name without spaces")
    _require(cfg.timeframe in TIMEFRAMES, f"timeframe: {cfg.timeframe!r} is not one of {list(TIMEFRAMES)}")
    _require(cfg.gap_policy in GAP_POLICIES, f"gap_policy: {cfg.gap_policy!r} is not one of {list(GAP_POLICIES)}")
    _require(cfg.target_kind in TARGET_KINDS, f"target_kind: {cfg.target_kind!r} is not one of {list(TARGET_KINDS)}")
    _require(cfg.selection_target in SELECTION_TARGETS, f"selection_target: {cfg.selection_target!r} is not one of {list(SELECTION_TARGETS)}")
    _require(cfg.device in DEVICES, f"device: {cfg.device!r} is not one of {list(DEVICES)}")
    _require(cfg.days is None or cfg.days > 0, f"days: {cfg.days} must be positive")
    _require(len(cfg.horizons) > 0, "horizons: at least one horizon is needed")
    _require(all(h >= 1 for h in cfg.horizons), f"horizons: {list(cfg.horizons)} must all be >= 1 bar")
    _require(len(set(cfg.horizons)) == len(cfg.horizons), f"horizons: {list(cfg.horizons)} has duplicates")
    _require(list(cfg.horizons) == sorted(cfg.horizons), f"horizons: {list(cfg.horizons)} must be increasing")
    _require(cfg.lookback >= 2, f"lookback: {cfg.lookback} must be >= 2 bars")
    _require(len(cfg.split) == 3, f"split: {list(cfg.split)} must be three fractions (train, validation, test)")
    _require(all(s > 0 for s in cfg.split), f"split: {list(cfg.split)} must all be > 0")
    _require(abs(sum(cfg.split) - 1.0) < 1e-6, f"split: {list(cfg.split)} must sum to 1")
    _require(cfg.n_features >= 1, f"n_features: {cfg.n_features} must be >= 1")
    _require(cfg.epochs >= 1, f"epochs: {cfg.epochs} must be >= 1")
    _require(cfg.batch_size >= 1, f"batch_size: {cfg.batch_size} must be >= 1")
    _require(cfg.patience >= 1, f"patience: {cfg.patience} must be >= 1")
    _require(cfg.learning_rate is None or cfg.learning_rate > 0, f"learning_rate: {cfg.learning_rate} must be > 0")
    _require(cfg.mc_samples >= 1, f"mc_samples: {cfg.mc_samples} must be >= 1")
    _require(cfg.wf_splits >= 2, f"wf_splits: {cfg.wf_splits} must be >= 2")
    _require(cfg.tune_trials >= 1, f"tune_trials: {cfg.tune_trials} must be >= 1")
    _require(cfg.tune_timeout > 0, f"tune_timeout: {cfg.tune_timeout} must be > 0")
    _require(len(cfg.base_models) > 0, "base_models: at least one base model is needed")
