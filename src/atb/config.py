"""The run configuration: one frozen dataclass composed of sub-specs, each the
one place where its settings and their defaults are written.

    TrainingConfig
      data        DataSpec        which candles (and exogenous series) to load
      dataset     DatasetSpec     horizons, lookback, split, feature count, target
      model       ModelSpec       model type, variant, hyperparameter overrides
      fit         FitSpec         epochs, batch, patience, learning rate, seed, device
      production  ProductionSpec  base models, ensemble, uncertainty, walk-forward
      tuning      TuningSpec      Optuna search
      compute     ComputeSpec     local or Ray backend
      output      OutputSpec      registry, output directory, MLflow

The CLI, YAML files and the Python API build it once at the edge; each
library step is given the sub-spec it needs, whole. Every field name is unique
across the sub-specs, so the flat spelling (`epochs=3`, YAML `epochs: 3`) names
exactly one setting; `to_dict()` writes that flat form. Each sub-spec validates
itself on construction and refuses a bad value naming the field, the value and
what is allowed. This module imports nothing heavier than pandas, so every
room may import it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from atb.timeframes import TIMEFRAMES

GAP_POLICIES = ("error", "ffill", "keep")
TARGET_KINDS = ("log_return", "price", "direction")  # atb.dataset.TargetSpec
SELECTION_TARGETS = ("return", "next_return", "close")
DEVICES = ("auto", "cpu", "cuda")
BACKENDS = ("local", "ray")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field."""


CV_SCHEMES = ("expanding", "walk-forward", "rolling", "purged-kfold", "monte-carlo")  # atb.folds.SCHEMES


@dataclass(frozen=True)
class DataSpec:
    """Which candles to load: the bundled sample, a file or an exchange, and how to validate them."""

    symbol: str = "BTCUSDT"
    data_path: Path | None = None
    exchange: str | None = None
    timeframe: str | None = None  # bar size: an exchange's (default 1d); for a file, checked against its bars
    days: int | None = None
    gap_policy: str = "ffill"
    drop_partial_last_bar: bool = True
    funding_path: Path | None = None
    cache_dir: Path = Path.home() / ".cache" / "atb"
    also: tuple[str, ...] = ()  # more series for a global model: candle files, or symbols from the same source

    def __post_init__(self) -> None:
        for name in ("data_path", "funding_path", "cache_dir"):
            _coerce_path(self, name)
        object.__setattr__(self, "also", tuple(str(v) for v in _as_tuple(self.also)))
        _require(not (self.also and self.funding_path), "also: a global model over several series cannot use funding features (funding_path is set)")
        _require(bool(self.symbol) and self.symbol.strip() == self.symbol, f"symbol: {self.symbol!r} must be a non-empty name without spaces")
        _require(self.timeframe is None or self.timeframe in TIMEFRAMES, f"timeframe: {self.timeframe!r} is not one of {list(TIMEFRAMES)}")
        _require(self.gap_policy in GAP_POLICIES, f"gap_policy: {self.gap_policy!r} is not one of {list(GAP_POLICIES)}")
        _require(self.days is None or self.days > 0, f"days: {self.days} must be positive")

    def series_of(self, item: str) -> DataSpec:
        """The DataSpec of one `also` entry: a candle file (symbol from its name, BTCUSDT_1d.csv -> BTCUSDT),
        else a symbol loaded like this spec's (same exchange, timeframe and span)."""
        path = Path(item)
        if path.suffix:
            return dataclasses.replace(self, symbol=path.stem.split("_")[0].upper(), data_path=path, funding_path=None, also=())
        return dataclasses.replace(self, symbol=item.upper(), data_path=None, funding_path=None, also=())

    @property
    def source(self) -> str:
        """Where candles come from: a file, an exchange, or the bundled sample."""
        if self.data_path is not None:
            return "file"
        if self.exchange is not None:
            return "exchange"
        return "sample"


@dataclass(frozen=True)
class DatasetSpec:
    """How candles and features become windows and targets, and how the origins are split."""

    horizons: tuple[int, ...] = (1, 7, 30)
    lookback: int = 60
    split: tuple[float, float, float] = (0.70, 0.15, 0.15)
    # The latest share of the training origins, after a purge of the longest horizon, that the
    # early stopping of the networks and LightGBM watches; they never fit on the validation part,
    # which is left to the skill gate. The validation share, not tuned.
    stop_share: float = 0.15
    # Chosen on the validation part (tests/benchmarks/bench_selection.py; README): top 20 by
    # |corr| with the next bar's log return. "return": mean |corr| over every horizon's log
    # return (the overlapping long-horizon target dominates it); "close": the price.
    n_features: int = 20
    selection_target: str = "next_return"
    target_kind: str = "log_return"
    # Longer runs of bars without trades (filled gaps, outages) are kept out of every window and target.
    max_idle_bars: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizons", tuple(_as_int("horizons", h) for h in _as_tuple(self.horizons)))
        object.__setattr__(self, "split", tuple(float(s) for s in _as_tuple(self.split)))
        horizons, split = list(self.horizons), list(self.split)
        _require(len(horizons) > 0, "horizons: at least one horizon is needed")
        _require(all(h >= 1 for h in horizons), f"horizons: {horizons} must all be >= 1 bar")
        _require(len(set(horizons)) == len(horizons), f"horizons: {horizons} has duplicates")
        _require(horizons == sorted(horizons), f"horizons: {horizons} must be increasing")
        _require(self.lookback >= 2, f"lookback: {self.lookback} must be >= 2 bars")
        _require(len(split) == 3, f"split: {split} must be three fractions (train, validation, test)")
        _require(all(s > 0 for s in split), f"split: {split} must all be > 0")
        _require(abs(sum(split) - 1.0) < 1e-6, f"split: {split} must sum to 1")
        _require(0 < self.stop_share < 0.5, f"stop_share: {self.stop_share} must be in (0, 0.5)")
        _require(self.n_features >= 1, f"n_features: {self.n_features} must be >= 1")
        _require(self.max_idle_bars >= 0, f"max_idle_bars: {self.max_idle_bars} must be >= 0")
        _require(self.selection_target in SELECTION_TARGETS, f"selection_target: {self.selection_target!r} is not one of {list(SELECTION_TARGETS)}")
        _require(self.target_kind in TARGET_KINDS, f"target_kind: {self.target_kind!r} is not one of {list(TARGET_KINDS)}")

    @property
    def max_horizon(self) -> int:
        return max(self.horizons)


@dataclass(frozen=True)
class ModelSpec:
    """Which model: a registered type, one of its variants, single-hyperparameter overrides,
    and whether its forecasts pass the skill gate fitted on validation (see atb.models.gate)."""

    model_type: str = "attention_lstm"
    variant: str = "default"
    overrides: dict[str, Any] = field(default_factory=dict)
    skill_gate: bool = True
    seeds: int = 1  # fits with seeds seed, seed + 1, ...; their forecasts averaged
    learning_curve: bool = False  # also refit on the newest 25/50/75% of the training windows (report and plot)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", dict(self.overrides or {}))
        _require(self.seeds >= 1, f"seeds: {self.seeds} must be >= 1")


@dataclass(frozen=True)
class FitSpec:
    """How to fit: epochs, batches, early stopping, learning rate, seed and device."""

    epochs: int = 100
    batch_size: int = 64
    patience: int = 10
    learning_rate: float | None = None  # None: the architecture's own default
    seed: int = 42
    device: str = "auto"
    mixed_precision: bool = False
    cuda_graphs: bool = False
    resume: bool = False  # continue an interrupted fit of the same run from its checkpoint
    threads: int | None = None  # CPU threads of a fit (torch and LightGBM); None: torch's default, LightGBM OMP_NUM_THREADS or 2

    def __post_init__(self) -> None:
        _require(self.threads is None or self.threads >= 1, f"threads: {self.threads} must be >= 1")
        _require(self.epochs >= 1, f"epochs: {self.epochs} must be >= 1")
        _require(self.batch_size >= 1, f"batch_size: {self.batch_size} must be >= 1")
        _require(self.patience >= 1, f"patience: {self.patience} must be >= 1")
        _require(self.learning_rate is None or self.learning_rate > 0, f"learning_rate: {self.learning_rate} must be > 0")
        _require(self.device in DEVICES, f"device: {self.device!r} is not one of {list(DEVICES)}")


@dataclass(frozen=True)
class ProductionSpec:
    """`atb train production`: base models, ensemble, uncertainty, walk-forward."""

    base_models: tuple[str, ...] = ("enhanced_lstm", "transformer", "lightgbm")
    base_seeds: int = 3  # seeds per base model (a seed ensemble each)
    ensemble: bool = True
    uncertainty: bool = True
    mc_samples: int = 50
    walk_forward: bool = False
    wf_splits: int = 5
    cv: str = "expanding"  # expanding (walk-forward), rolling, purged-kfold or monte-carlo
    embargo: int | None = None  # origins dropped after each purge gap; None: the longest horizon

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_models", _names(self.base_models))
        _require(len(self.base_models) > 0, "base_models: at least one base model is needed")
        _require(self.base_seeds >= 1, f"base_seeds: {self.base_seeds} must be >= 1")
        _require(self.mc_samples >= 1, f"mc_samples: {self.mc_samples} must be >= 1")
        _require(self.wf_splits >= 2, f"wf_splits: {self.wf_splits} must be >= 2")
        _require(self.cv in CV_SCHEMES, f"cv: {self.cv!r} is not one of {list(CV_SCHEMES)}")
        _require(self.embargo is None or self.embargo >= 0, f"embargo: {self.embargo} must be >= 0")


@dataclass(frozen=True)
class TuningSpec:
    """Optuna search before production training."""

    tune: bool = False
    tune_trials: int = 20
    tune_timeout: float = 3600.0
    tune_models: tuple[str, ...] = ()  # empty: every base model that is trained
    tune_storage: str | None = None
    tune_objectives: tuple[str, ...] = ("val_loss",)  # several: a multi-objective study
    tune_sampler: str = "tpe"
    tune_cv: int = 0  # 0: score on the validation part; K >= 2: K purged walk-forward folds of training + validation
    tune_max_drawdown: float | None = None  # constraint on the validation backtest, e.g. 0.3
    tune_min_win_rate: float | None = None
    # A running trial beats every tune_heartbeat seconds; one silent for twice that (its worker
    # died) is failed by the next worker of the study and queued again.
    tune_heartbeat: float = 60.0
    tune_worker: int = 0  # this worker's number among those sharing a study (offsets its sampler seed)
    tune_workers: int = 1  # with backend ray: Ray tasks sharing the study, each running tune_trials trials

    def __post_init__(self) -> None:
        _require(self.tune_heartbeat > 0, f"tune_heartbeat: {self.tune_heartbeat} must be > 0 seconds")
        _require(self.tune_worker >= 0, f"tune_worker: {self.tune_worker} must be >= 0")
        _require(self.tune_workers >= 1, f"tune_workers: {self.tune_workers} must be >= 1")
        object.__setattr__(self, "tune_models", _names(self.tune_models))
        object.__setattr__(self, "tune_objectives", _names(self.tune_objectives))
        _require(self.tune_trials >= 1, f"tune_trials: {self.tune_trials} must be >= 1")
        _require(self.tune_timeout > 0, f"tune_timeout: {self.tune_timeout} must be > 0")


@dataclass(frozen=True)
class ComputeSpec:
    """Where independent jobs run (`atb.workflows.backends`): here, one after another, or as Ray tasks."""

    backend: str = "local"  # ray: production's (symbol, base model) and tuning workers as Ray tasks
    ray_address: str | None = None  # an existing Ray cluster ("auto", "ray://host:10001"); None: a local Ray started on demand
    ray_cpus: int = 1  # CPUs a Ray task declares (and its fit's threads unless threads is set)

    def __post_init__(self) -> None:
        _require(self.backend in BACKENDS, f"backend: {self.backend!r} is not one of {list(BACKENDS)}")
        _require(self.ray_cpus >= 1, f"ray_cpus: {self.ray_cpus} must be >= 1")


@dataclass(frozen=True)
class OutputSpec:
    """Where results go: the registry, run outputs and MLflow."""

    registry_dir: Path = Path("models")
    output_dir: Path = Path("training_output")
    mlflow: bool = True
    tracking_uri: str | None = None
    plots: bool = True  # False: reports and versions without PNGs (quicker runs of many models)

    def __post_init__(self) -> None:
        for name in ("registry_dir", "output_dir"):
            _coerce_path(self, name)


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a run needs, as sub-specs. `TrainingConfig.build(epochs=3, ...)` takes the
    flat names; `TrainingConfig(fit=FitSpec(epochs=3))` the sub-specs."""

    data: DataSpec = field(default_factory=DataSpec)
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    fit: FitSpec = field(default_factory=FitSpec)
    production: ProductionSpec = field(default_factory=ProductionSpec)
    tuning: TuningSpec = field(default_factory=TuningSpec)
    compute: ComputeSpec = field(default_factory=ComputeSpec)
    output: OutputSpec = field(default_factory=OutputSpec)

    @classmethod
    def build(cls, **values: Any) -> TrainingConfig:
        """A config from flat field names (`symbol`, `epochs`, ...), each routed to its sub-spec."""
        return cls().replace(**values)

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with some flat fields changed (validated again)."""
        unknown = sorted(set(changes) - set(SECTION_OF))
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; valid fields: {sorted(SECTION_OF)}")
        by_section: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            _check_scalar_type(name, value, FIELD_TYPES[name])
            by_section.setdefault(SECTION_OF[name], {})[name] = value
        return dataclasses.replace(
            self, **{section: dataclasses.replace(getattr(self, section), **values) for section, values in by_section.items()}
        )

    def with_absolute_paths(self) -> TrainingConfig:
        """The config with its files and folders made absolute, for a worker that starts in another folder."""
        data, output = self.data, self.output
        return self.replace(
            data_path=data.data_path and data.data_path.resolve(), funding_path=data.funding_path and data.funding_path.resolve(),
            cache_dir=data.cache_dir.resolve(), registry_dir=output.registry_dir.resolve(), output_dir=output.output_dir.resolve(),
        )

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready values (paths as strings, tuples as lists), in section order."""
        out: dict[str, Any] = {}
        for section in SECTIONS:
            spec = getattr(self, section)
            for f in dataclasses.fields(spec):
                out[f.name] = _jsonable(getattr(spec, f.name))
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """A config from flat fields, or from sections (`fit: {epochs: 3}`), or both."""
        flat = {}
        for name, value in values.items():
            if name in SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(f"{name}: expected a mapping of its fields, got {value!r}")
                wrong = sorted(k for k in value if SECTION_OF.get(k) != name)
                if wrong:
                    raise ConfigError(f"{name}: unknown field(s) {wrong}; its fields: {sorted(_field_names(name))}")
                flat.update(value)
            else:
                flat[name] = value
        return cls.build(**flat)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> TrainingConfig:
        """Read a YAML mapping of field -> value (flat or by section); `overrides` (flat) win over the file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path} must hold a mapping of field: value")
        return cls.from_dict(values).replace(**overrides)


SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrainingConfig))


def _field_names(section: str) -> list[str]:
    return [f.name for f in dataclasses.fields(TrainingConfig.__dataclass_fields__[section].default_factory)]


SECTION_OF: dict[str, str] = {name: section for section in SECTIONS for name in _field_names(section)}
FIELD_TYPES: dict[str, str] = {
    f.name: str(f.type) for section in SECTIONS for f in dataclasses.fields(TrainingConfig.__dataclass_fields__[section].default_factory)
}
_SCALARS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_scalar_type(name: str, value: Any, annotation: str) -> None:
    """Refuse a value of the wrong kind for a plain int/float/bool/str field (e.g. `epochs: many`);
    other fields are checked by their spec."""
    kinds = [kind.strip() for kind in annotation.split("|")]
    if value is None and "None" in kinds:
        return
    allowed = [_SCALARS[kind] for kind in kinds if kind in _SCALARS]
    if not allowed or len(allowed) != len([k for k in kinds if k != "None"]):
        return
    ok = any(isinstance(value, types) and (bool in types or not isinstance(value, bool)) for types in allowed)
    if not ok:
        raise ConfigError(f"{name}: {value!r} must be {' or '.join(k for k in kinds if k != 'None')}{' or null' if 'None' in kinds else ''}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _coerce_path(spec: Any, name: str) -> None:
    value = getattr(spec, name)
    if value is not None and not isinstance(value, Path):
        object.__setattr__(spec, name, Path(value))


def _as_tuple(value: Any) -> tuple:
    """Lists and comma-separated strings (from YAML or flags) as a tuple."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


def _names(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in _as_tuple(value))


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
