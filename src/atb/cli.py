"""The `atb` command line: parses flags into library calls and shows the results.

Thin by design: every command builds a TrainingConfig (or plain arguments),
calls one library function and renders what it returns with Rich.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from atb.config import ConfigError, TrainingConfig
from atb.processes import exit_on_signal

app = typer.Typer(help="Train, compare, ensemble and serve crypto price-forecasting models.", no_args_is_help=True)
train_app = typer.Typer(help="Train models.", no_args_is_help=True)
models_app = typer.Typer(help="Inspect and manage the model registry.", no_args_is_help=True)
data_app = typer.Typer(help="Download and inspect candles.", no_args_is_help=True)
dev_app = typer.Typer(help="Developer checks.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
app.add_typer(data_app, name="data")
app.add_typer(dev_app, name="dev")

# Metrics tables need ~130 columns: piped output (logs, CI) gets that width instead of 80.
console = Console(width=None if Console().is_terminal else 150)
err_console = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long

# Options shared by several commands; None means "use the TrainingConfig default".
DataOpt = Annotated[Optional[Path], typer.Option("--data", help="CSV/Parquet candles instead of the bundled sample.")]
ExchangeOpt = Annotated[Optional[str], typer.Option("--exchange", help="Download from this CCXT exchange (e.g. binance).")]
TimeframeOpt = Annotated[
    Optional[str], typer.Option("--timeframe", help="Bar size (1m .. 1d) of an exchange download (default 1d); with --data, checked against the file.")
]
DaysOpt = Annotated[Optional[int], typer.Option("--days", help="Keep only the newest N days.")]
GapsOpt = Annotated[Optional[str], typer.Option("--gaps", help="Gap policy: error, ffill or keep.")]
KeepLastOpt = Annotated[bool, typer.Option("--keep-last-bar", help="Keep the last bar of a file (dropped as possibly partial by default).")]
FundingOpt = Annotated[Optional[Path], typer.Option("--funding", help="Funding-rate CSV (timestamp,funding_rate) as exogenous features.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML file of TrainingConfig fields.")]
NoSkillGateOpt = Annotated[
    bool, typer.Option("--no-skill-gate", help="Serve the raw forecasts (by default each is shrunk toward drift/naive as validation supports).")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue the interrupted fit of the same settings and data from its checkpoint (in output_dir/checkpoints).")
]
TuneObjectiveOpt = Annotated[
    Optional[str],
    typer.Option("--tune-objective", help="val_loss (default), rmse_ratio, direction_accuracy, sharpe, max_drawdown, win_rate; comma-separated for a multi-objective study."),
]
TuneSamplerOpt = Annotated[Optional[str], typer.Option("--tune-sampler", help="tpe (default), random, grid, cmaes, gp, nsga2 or nsga3.")]
TuneCvOpt = Annotated[
    Optional[int], typer.Option("--tune-cv", help="Score trials on K purged walk-forward folds of the training and validation parts (0: the validation part).")
]
MaxDrawdownOpt = Annotated[Optional[float], typer.Option("--max-drawdown", help="Constraint: trials whose validation backtest falls more than this (e.g. 0.3) are infeasible.")]
NoPlotsOpt = Annotated[bool, typer.Option("--no-plots", help="Write the report and the version without PNG plots (quicker).")]
RayAddressOpt = Annotated[Optional[str], typer.Option("--ray-address", help="An existing Ray cluster (auto, ray://host:10001); default: a local Ray started for this run.")]
RayCpusOpt = Annotated[Optional[int], typer.Option("--ray-cpus", help="CPUs each Ray task declares, and its fit's threads (default 1).")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="CPU threads of each fit (torch and LightGBM; default: torch's own, LightGBM OMP_NUM_THREADS or 2).")]
MinWinRateOpt = Annotated[Optional[float], typer.Option("--min-win-rate", help="Constraint: trials whose validation backtest wins less often than this are infeasible.")]
CvOpt = Annotated[
    Optional[str], typer.Option("--cv", help="Fold scheme: expanding (walk-forward, default), rolling, purged-kfold or monte-carlo.")
]
EmbargoOpt = Annotated[Optional[int], typer.Option("--embargo", help="Origins dropped after each purge gap (default: the longest horizon).")]
VersionOpt = Annotated[Optional[str], typer.Option("--version", help="A version id such as v0003 (needs --model-type).")]
RegistryOpt = Annotated[Optional[Path], typer.Option("--registry", help="Model registry directory (default: models).")]


def build_config(config_file: Path | None, **flags: Any) -> TrainingConfig:
    """TrainingConfig from an optional YAML file plus the flags the user set."""
    given = {k: v for k, v in flags.items() if v is not None}
    if config_file is not None:
        return TrainingConfig.from_yaml(config_file, **given)
    return TrainingConfig.build(**given)


def data_flags(data, exchange, timeframe, days, gaps, keep_last_bar, funding) -> dict[str, Any]:
    return {
        "data_path": data,
        "exchange": exchange,
        "timeframe": timeframe,
        "days": days,
        "gap_policy": gaps,
        "drop_partial_last_bar": False if keep_last_bar else None,
        "funding_path": funding,
    }


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code=1)


def warn(console_: Console, message: str) -> None:
    """A data or skill warning; its text is shown as written (brackets are not markup)."""
    console_.print(f"[yellow]{escape(message)}[/]")


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "–"  # not defined (e.g. the naive forecast's direction)
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.{digits}f}"
    return str(value)


def direction_view(metrics: dict[str, dict[int, dict]], title: str) -> Table:
    """A direction model's table: accuracy (p-value against always calling the majority direction),
    ROC AUC, F1, and the Brier score beside the constant training base rate's (DM p-value)."""
    table = Table(title=title)
    for column in ("model", "h", "n", "accuracy", "majority", "p", "ROC AUC", "F1", "Brier", "base rate", "Brier skill", "DM p"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, per_h in metrics.items():
        for h, row in per_h.items():
            table.add_row(
                name, str(h), str(row["n"]), _fmt(row["accuracy"], 3), _fmt(row["majority"]["accuracy"], 3), _fmt(row["accuracy_pvalue"], 3),
                _fmt(row["roc_auc"], 3), _fmt(row["f1"], 3), _fmt(row["brier"], 4), _fmt(row["base_rate"]["brier"], 4),
                _fmt(row["brier_skill"], 3), _fmt(row["brier_dm_pvalue"], 3),
            )
    return table


def metrics_view(metrics: dict[str, dict[int, dict]], title: str) -> Table:
    """Model vs baselines per horizon, the protocol's headline columns."""
    table = Table(title=title)
    for column in ("model", "h", "RMSE", "MAE", "MAPE %", "R²", "RMSE/naive", "RMSE/drift", "MASE", "dir.acc", "majority", "p(dir)", "DM p"):
        table.add_column(column, justify="right" if column not in ("model",) else "left")
    for name, per_h in metrics.items():
        for h, m in sorted(per_h.items(), key=lambda kv: int(kv[0])):
            table.add_row(
                name,
                str(h),
                _fmt(m["rmse"], 1),
                _fmt(m["mae"], 1),
                _fmt(m["mape"], 2),
                _fmt(m["r2"], 3),
                _fmt(m["rmse_ratio"], 3),
                _fmt(m.get("rmse_vs_drift", math.nan), 3),
                _fmt(m["mase"], 3),
                _fmt(m["directional_accuracy"], 3),
                _fmt(m["majority_accuracy"], 3),
                _fmt(m["direction_pvalue"], 3),
                _fmt(m["dm_pvalue"], 3),
            )
    return table


def validation_view(validation: dict[str, dict[int, dict]], gate: dict | None, title: str) -> Table:
    """Skill on the validation origins per model and horizon, with the gate's weights on the served model's rows."""
    table = Table(title=title)
    for column in ("model", "h", "RMSE/naive", "RMSE/drift", "DM p", "gate a (drift)", "gate k (model)"):
        table.add_column(column, justify="left" if column == "model" else "right")
    served = next(iter(validation)) if gate else None
    for name, per_h in validation.items():
        for j, (h, m) in enumerate(sorted(per_h.items(), key=lambda kv: int(kv[0]))):
            weights = [_fmt(gate["drift_weight"][j], 2), _fmt(gate["model_weight"][j], 2)] if name == served else ["", ""]
            table.add_row(name, str(h), _fmt(m["rmse_ratio"], 3), _fmt(m["rmse_vs_drift"], 3), _fmt(m["dm_pvalue"], 3), *weights)
    return table


def run_guarded(action):
    """Turn the library's input errors, and the system's refusals (a folder that cannot be
    written, a full disk), into one clear line and exit code 1."""
    try:
        return action()
    except Exception as exc:
        if isinstance(exc, input_errors()):
            fail(str(exc))
        if isinstance(exc, OSError):
            fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        raise


def input_errors() -> tuple[type[Exception], ...]:
    """The exception types that mean bad input. ValueError covers the config, data,
    validation and model-file errors; the others are imported only once an error
    is raised, as their modules load ccxt and torch."""
    from atb.data.exchange import ExchangeDataError
    from atb.models.base import CapabilityError
    from atb.registry import RegistryError

    return (ValueError, FileNotFoundError, RegistryError, ExchangeDataError, CapabilityError)  # TrackingError is a ValueError


def registry_dir(path: Path | None) -> Path:
    """`--registry`, or the configured default."""
    return path or TrainingConfig().output.registry_dir


def open_registry(path: Path | None):
    """The ModelRegistry at `--registry`, or at the configured default."""
    from atb.registry import ModelRegistry

    return ModelRegistry(registry_dir(path))


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log library progress.")] = False) -> None:
    # SIGTERM unwinds like an exit: temporary folders are removed, an MLflow run ends KILLED.
    signal.signal(signal.SIGTERM, exit_on_signal)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # MLflow sets its own logger level on import; its variable is the way to quiet it.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    logging.getLogger("alembic").setLevel(logging.INFO if verbose else logging.WARNING)


@app.command("list-models")
def list_models() -> None:
    """List the registered model types and their variants."""
    from atb.models import AVAILABLE_MODELS, model_variants

    table = Table(title="Model types")
    table.add_column("type")
    table.add_column("variants")
    table.add_column("description")
    for name, description in AVAILABLE_MODELS.items():
        table.add_row(name, ", ".join(model_variants(name)), description)
    console.print(table)


@app.command()
def features(
    symbol: Annotated[str, typer.Argument(help="Market symbol, e.g. BTCUSDT.")] = "BTCUSDT",
    data: DataOpt = None,
    exchange: ExchangeOpt = None,
    timeframe: TimeframeOpt = None,
    days: DaysOpt = None,
    gaps: GapsOpt = None,
    keep_last_bar: KeepLastOpt = False,
    funding: FundingOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Parquet file for the matrix.")] = None,
) -> None:
    """Compute the feature matrix, print counts per category and write it to Parquet."""
    from atb.data import load_candles
    from atb.features import category_counts, feature_matrix
    from atb.io import atomic_write_with
    from atb.workflows.preflight import check_writable

    path = output or Path("training_output") / f"{symbol}_features.parquet"

    def action():
        check_writable(path.parent, "--output")
        cfg = build_config(None, symbol=symbol, **data_flags(data, exchange, timeframe, days, gaps, keep_last_bar, funding))
        candles = load_candles(cfg.data)
        matrix = feature_matrix(candles, cfg.data.funding_path)
        return candles, matrix

    candles, matrix = run_guarded(action)
    for line in candles.report.messages():
        warn(console, line)
    table = Table(title=f"{symbol}: {matrix.shape[1]} features over {len(matrix)} bars")
    table.add_column("category")
    table.add_column("features", justify="right")
    for category, count in category_counts(matrix.columns).items():
        table.add_row(category, str(count))
    console.print(table)
    run_guarded(lambda: atomic_write_with(path, lambda tmp: matrix.to_parquet(tmp)))
    console.print(f"feature matrix written to {path}")


@data_app.command("fetch")
def data_fetch(
    symbol: str,
    days: Annotated[int, typer.Option(help="Days of history.")] = 365,
    timeframe: Annotated[str, typer.Option(help="Bar size (1m .. 1d).")] = "1d",
    exchange: Annotated[str, typer.Option(help="CCXT exchange id.")] = "binance",
    cache_dir: Annotated[Optional[Path], typer.Option(help="Parquet cache directory.")] = None,
) -> None:
    """Download candles into the local cache (only missing bars are fetched)."""
    from atb.data import load_candles

    candles = run_guarded(
        lambda: load_candles(
            build_config(None, symbol=symbol, exchange=exchange, timeframe=timeframe, days=days, cache_dir=cache_dir).data
        )
    )
    frame = candles.frame
    for line in candles.report.messages():
        warn(console, line)
    console.print(f"{symbol} {timeframe}: {len(frame)} bars, {frame.index[0]} .. {frame.index[-1]}")


@train_app.command("model")
def train_model_command(
    symbol: Annotated[str, typer.Argument(help="Market symbol, e.g. BTCUSDT.")] = "BTCUSDT",
    model_type: Annotated[Optional[str], typer.Option("--model-type", help="Registered model type (see `atb list-models`).")] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", "--model-variant", help="lightweight, default or deep.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size")] = None,
    lookback: Annotated[Optional[int], typer.Option("--lookback", "--sequence-length", help="Lookback window in bars.")] = None,
    horizons: Annotated[Optional[str], typer.Option(help="Comma-separated horizons in bars, e.g. 1,7,30.")] = None,
    n_features: Annotated[Optional[int], typer.Option("--n-features", help="Top-K features kept.")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Early-stopping patience in epochs.")] = None,
    learning_rate: Annotated[Optional[float], typer.Option("--learning-rate", help="Peak learning rate (default: the architecture's).")] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    cuda_graphs: Annotated[bool, typer.Option("--cuda-graphs", help="Capture the training step as a CUDA graph.")] = False,
    mixed_precision: Annotated[bool, typer.Option("--mixed-precision", help="Autocast on CUDA.")] = False,
    threads: ThreadsOpt = None,
    override: Annotated[Optional[list[str]], typer.Option("--set", help="Hyperparameter override NAME=VALUE (JSON value), repeatable.")] = None,
    no_skill_gate: NoSkillGateOpt = False,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Fit N copies with seeds seed, seed+1, ... and average them (default 1).")] = None,
    resume: ResumeOpt = False,
    learning_curve: Annotated[bool, typer.Option("--learning-curve", help="Also refit on the newest 25/50/75% of the training windows: validation skill vs history.")] = False,
    target: Annotated[
        Optional[str],
        typer.Option("--target", help="log_return (default: price forecasts), price, or direction (per horizon the probability that the close ends above the origin's)."),
    ] = None,
    also: Annotated[
        Optional[list[str]],
        typer.Option("--also", help="Train one model on these series too (candle files, or symbols from the same exchange); repeatable or comma-separated."),
    ] = None,
    data: DataOpt = None,
    exchange: ExchangeOpt = None,
    timeframe: TimeframeOpt = None,
    days: DaysOpt = None,
    gaps: GapsOpt = None,
    keep_last_bar: KeepLastOpt = False,
    funding: FundingOpt = None,
    config: ConfigOpt = None,
    registry: RegistryOpt = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Do not log to MLflow.")] = False,
    no_plots: NoPlotsOpt = False,
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="MLflow tracking URI.")] = None,
) -> None:
    """Train one model: data -> features -> fit -> evaluate -> registry -> MLflow."""
    from atb.workflows.train_model import train_model

    def action():
        cfg = build_config(
            config,
            symbol=symbol,
            model_type=model_type,
            variant=variant,
            epochs=epochs,
            batch_size=batch_size,
            lookback=lookback,
            horizons=horizons,
            n_features=n_features,
            patience=patience,
            learning_rate=learning_rate,
            seed=seed,
            device=device,
            cuda_graphs=cuda_graphs or None,
            mixed_precision=mixed_precision or None,
            threads=threads,
            overrides=parse_overrides(override) or None,
            skill_gate=False if no_skill_gate else None,
            seeds=seeds,
            resume=resume or None,
            learning_curve=learning_curve or None,
            target_kind=target,
            also=",".join(also) if also else None,
            registry_dir=registry,
            mlflow=False if no_mlflow else None,
            plots=False if no_plots else None,
            tracking_uri=tracking_uri,
            **data_flags(data, exchange, timeframe, days, gaps, keep_last_bar, funding),
        )
        with ProgressView(cfg.fit.epochs) as view:
            return train_model(cfg, on_event=view.handle)

    result = run_guarded(action)
    show_training_result(result.report)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ConfigError(f"--set {pair!r}: expected NAME=VALUE, e.g. --set dropout=0.3 or --set 'lstm_units=[128, 64]'")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


class ProgressView:
    """Rich progress for pipeline events (stages, epochs, data messages)."""

    def __init__(self, epochs: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err_console,
            transient=True,
        )
        self.epochs = epochs
        self.task = None

    def __enter__(self) -> ProgressView:
        self.progress.__enter__()
        self.task = self.progress.add_task("starting", total=None, info="")
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def handle(self, kind: str, payload: dict) -> None:
        if kind == "stage":
            total = self.epochs if payload["name"] == "fit" else None
            self.progress.update(self.task, description=payload.get("label", payload["name"]), total=total, completed=0, info="")
        elif kind == "epoch":
            info = f"epoch {payload['epoch']} loss {payload['loss']:.5f} val {payload['val_loss']:.5f}"
            self.progress.update(self.task, completed=int(payload["epoch"]), info=info)
        elif kind == "message":
            warn(self.progress.console, payload["text"])


def show_training_result(report) -> None:
    from atb.evaluation.protocol import BACKTEST_FEE

    data, model = report.data, report.model
    console.print(
        f"[bold]{data.symbol}[/] {model.model_type} ({model.variant}): "
        f"{data.rows} bars {data.span[0][:10]} .. {data.span[1][:10]}, "
        f"{len(report.history)} epochs, fit {report.timings['fit_s']:.1f} s"
    )
    if report.config.get("target_kind") == "direction":
        console.print(direction_view(report.validation, "Validation: P(up) beside the training base rate and the majority direction"))
        console.print(direction_view(report.metrics, "Test: P(up) beside the training base rate and the majority direction"))
    else:
        if report.validation:
            console.print(validation_view(report.validation, report.gate, "Validation skill (served = a*drift + k*(model - drift), a and k fitted here)"))
        console.print(metrics_view(report.metrics, "Test metrics (RMSE/naive or MASE below 1 beats the naive forecast)"))
    bt = report.backtest
    if "total_return" in bt:
        console.print(
            f"Long/flat backtest (h=1, fee {BACKTEST_FEE:.1%}): total return {bt['total_return']:.1%}, Sharpe {bt['sharpe']:.2f}, "
            f"max drawdown {bt['max_drawdown']:.1%}; buy-and-hold {bt['buy_and_hold']['total_return']:.1%}, "
            f"Sharpe {bt['buy_and_hold']['sharpe']:.2f}"
        )
    console.print(f"Registry version: {report.registry.path}")
    plots = [name for name, value in report.plots.items() if value.endswith(".png")]
    console.print(f"Plots: {len(plots)} PNGs in {Path(report.registry.path) / 'plots'}")


@app.command()
def tune(
    symbol: Annotated[str, typer.Argument(help="Market symbol, e.g. BTCUSDT.")] = "BTCUSDT",
    model_type: Annotated[Optional[str], typer.Option("--model-type", help="A tunable model type (see `atb list-models`).")] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help="lightweight, default or deep.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs per trial.")] = None,
    trials: Annotated[Optional[int], typer.Option("--trials", "--tune-trials", help="Trials to run now (default 20).")] = None,
    timeout: Annotated[Optional[float], typer.Option("--timeout", help="Seconds for the study (default 3600).")] = None,
    objective: TuneObjectiveOpt = None,
    sampler: TuneSamplerOpt = None,
    tune_cv: TuneCvOpt = None,
    max_drawdown: MaxDrawdownOpt = None,
    min_win_rate: MinWinRateOpt = None,
    storage: Annotated[Optional[str], typer.Option("--storage", help="SQLAlchemy URL of the Optuna storage (default: output_dir/optuna.db; postgresql://... for workers on several machines).")] = None,
    heartbeat: Annotated[Optional[float], typer.Option("--heartbeat", help="Seconds between a running trial's heartbeats (default 60); a trial silent for twice that is failed and run again.")] = None,
    worker: Annotated[Optional[int], typer.Option("--worker", help="This worker's number among those sharing the study (offsets the sampler seed; with --backend ray, the first worker's).")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="local (default: the trials here, one after another) or ray (--workers Ray tasks sharing the study).")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", help="With --backend ray: tuning workers, each running --trials trials (default 1).")] = None,
    ray_address: RayAddressOpt = None,
    ray_cpus: RayCpusOpt = None,
    threads: ThreadsOpt = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    data: DataOpt = None,
    exchange: ExchangeOpt = None,
    timeframe: TimeframeOpt = None,
    days: DaysOpt = None,
    gaps: GapsOpt = None,
    keep_last_bar: KeepLastOpt = False,
    funding: FundingOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Tune one model type's hyperparameters without the test part: objectives, constraints, sampler, folds."""
    from atb.workflows.tuning import tune_from_config

    def action():
        cfg = build_config(
            config, symbol=symbol, model_type=model_type, variant=variant, epochs=epochs, tune_trials=trials, tune_timeout=timeout,
            tune_objectives=objective, tune_sampler=sampler, tune_cv=tune_cv, tune_max_drawdown=max_drawdown,
            tune_min_win_rate=min_win_rate, tune_storage=storage, tune_heartbeat=heartbeat, tune_worker=worker, backend=backend, tune_workers=workers, ray_address=ray_address, ray_cpus=ray_cpus,
            threads=threads, seed=seed, device=device, mlflow=False,
            **data_flags(data, exchange, timeframe, days, gaps, keep_last_bar, funding),
        )
        with ProgressView(cfg.fit.epochs) as view:
            return tune_from_config(cfg, on_event=view.handle)

    result, out_dir = run_guarded(action)
    table = Table(title=f"{result.study_name}: {result.n_trials} trials ({result.n_complete} complete, {result.n_pruned} pruned, "
                        f"{result.n_failed} failed, {result.n_infeasible} infeasible), {result.sampler}, "
                        f"{'validation part' if not result.cv_folds else f'{result.cv_folds} purged folds'}, constraints: {result.constraints}")
    table.add_column("trial", justify="right")
    for name, direction in zip(result.objectives, result.directions):
        table.add_column(f"{name} ({'min' if direction == 'minimize' else 'max'})", justify="right")
    table.add_column("parameters")
    shown = result.pareto if len(result.objectives) > 1 else [t for t in result.trials if t["number"] == result.best_trial]
    for trial in shown:
        marker = " *" if trial["number"] == result.best_trial else ""
        params = ", ".join(f"{k}={_fmt(v, 4)}" for k, v in trial["params"].items())
        table.add_row(f"{trial['number']}{marker}", *[_fmt(float(v), 4) for v in trial["values"]], escape(params))
    console.print(table)
    if len(result.objectives) > 1:
        console.print(f"Pareto front of {len(result.pareto)} trial(s); * marks the chosen trial, the front's best {result.objectives[0]}.")
    console.print(f"Best overrides: {escape(json.dumps(result.to_dict()['best_params']))} {escape(json.dumps(result.best_fit_settings))}")
    console.print(f"Report and plot in {out_dir}; train with them: atb train model {symbol} --model-type {result.model_type} --set NAME=VALUE ...")


@train_app.command("production")
def train_production_command(
    crypto: Annotated[str, typer.Option("--crypto", help="Comma-separated symbols, e.g. BTC,ETH (BTC means BTCUSDT).")] = "BTC",
    base_models: Annotated[Optional[str], typer.Option("--base-models", help="Comma-separated base model types.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs per base model.")] = None,
    no_ensemble: Annotated[bool, typer.Option("--no-ensemble", help="Train the base models only.")] = False,
    no_skill_gate: NoSkillGateOpt = False,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Seeds per base model, averaged (default 3).")] = None,
    resume: ResumeOpt = False,
    tune: Annotated[bool, typer.Option("--tune", help="Optuna search per base model before training.")] = False,
    tune_trials: Annotated[Optional[int], typer.Option("--tune-trials")] = None,
    tune_timeout: Annotated[Optional[float], typer.Option("--tune-timeout", help="Seconds per study.")] = None,
    tune_models: Annotated[Optional[str], typer.Option("--tune-models", help="Which base types to tune (default: every base model).")] = None,
    tune_storage: Annotated[Optional[str], typer.Option("--tune-storage", help="SQLAlchemy URL of the Optuna storage.")] = None,
    tune_objective: TuneObjectiveOpt = None,
    tune_sampler: TuneSamplerOpt = None,
    tune_cv: TuneCvOpt = None,
    max_drawdown: MaxDrawdownOpt = None,
    min_win_rate: MinWinRateOpt = None,
    walk_forward: Annotated[bool, typer.Option("--walk-forward", help="Also run walk-forward validation per base model.")] = False,
    wf_splits: Annotated[Optional[int], typer.Option("--wf-splits", "--cv-splits", help="Folds of --walk-forward (default 5).")] = None,
    cv: CvOpt = None,
    embargo: EmbargoOpt = None,
    no_uncertainty: Annotated[bool, typer.Option("--no-uncertainty", help="No MC-dropout intervals.")] = False,
    mc_samples: Annotated[Optional[int], typer.Option("--mc-samples")] = None,
    data: Annotated[Optional[list[Path]], typer.Option("--data", help="One file per symbol, in --crypto order.")] = None,
    exchange: ExchangeOpt = None,
    timeframe: TimeframeOpt = None,
    days: DaysOpt = None,
    gaps: GapsOpt = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="local (default: one base model after another here) or ray (one Ray task per symbol and base model).")] = None,
    ray_address: RayAddressOpt = None,
    ray_cpus: RayCpusOpt = None,
    threads: ThreadsOpt = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    config: ConfigOpt = None,
    registry: RegistryOpt = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow")] = False,
    no_plots: NoPlotsOpt = False,
    tracking_uri: Annotated[Optional[str], typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI")] = None,
) -> None:
    """Base models -> regime-aware ensemble with uncertainty, per symbol."""
    from atb.workflows.production import symbol_name, train_production

    symbols = [symbol_name(c) for c in crypto.split(",") if c.strip()]
    if data and len(data) != len(symbols):
        fail(f"--data was given {len(data)} time(s) for {len(symbols)} symbol(s); give one file per symbol")

    def action():
        cfg = build_config(
            config,
            base_models=base_models,
            epochs=epochs,
            ensemble=False if no_ensemble else None,
            skill_gate=False if no_skill_gate else None,
            base_seeds=seeds,
            resume=resume or None,
            tune=tune or None,
            tune_trials=tune_trials,
            tune_timeout=tune_timeout,
            tune_models=tune_models,
            tune_storage=tune_storage,
            tune_objectives=tune_objective,
            tune_sampler=tune_sampler,
            tune_cv=tune_cv,
            tune_max_drawdown=max_drawdown,
            tune_min_win_rate=min_win_rate,
            walk_forward=walk_forward or None,
            wf_splits=wf_splits,
            cv=cv,
            embargo=embargo,
            uncertainty=False if no_uncertainty else None,
            mc_samples=mc_samples,
            exchange=exchange,
            timeframe=timeframe,
            days=days,
            gap_policy=gaps,
            seed=seed,
            device=device,
            backend=backend,
            ray_address=ray_address,
            ray_cpus=ray_cpus,
            threads=threads,
            registry_dir=registry,
            mlflow=False if no_mlflow else None,
            plots=False if no_plots else None,
            tracking_uri=tracking_uri,
        )
        with ProgressView(cfg.fit.epochs) as view:
            return train_production(cfg, symbols, dict(zip(symbols, data or [])), on_event=view.handle)

    results = run_guarded(action)
    for result in results:
        if result.error:
            err_console.print(f"[bold red]{result.symbol} failed:[/] {escape(result.error)}")
            continue
        if result.metrics:
            console.print(validation_view(result.validation, None, f"{result.symbol}: validation skill (stacking cross-fitted)"))
            console.print(metrics_view(result.metrics, f"{result.symbol}: base models, ensembles and baselines on the test part"))
        console.print(f"{result.symbol}: report and plots in {result.output_dir}" + (f"; ensemble {result.ensemble_version.ref}" if result.ensemble_version else ""))
    if any(r.error for r in results):
        raise typer.Exit(code=1)


@app.command()
def benchmark(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Candle files, one series each (default: the bundled BTCUSDT sample).")] = None,
    models: Annotated[Optional[str], typer.Option("--models", help="Comma-separated model types (default: every registered type).")] = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per model: 42, 43, ...")] = 3,
    walk_forward: Annotated[int, typer.Option("--walk-forward", help="Also K folds per series (0: none), of the --cv scheme.")] = 0,
    cv: CvOpt = None,
    embargo: EmbargoOpt = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs per fit.")] = None,
    variant: Annotated[Optional[str], typer.Option("--variant", help="lightweight, default or deep, for every type that has it.")] = None,
    no_skill_gate: NoSkillGateOpt = False,
    no_latency: Annotated[bool, typer.Option("--no-latency", help="Skip the inference timings.")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Directory for benchmark.json/.md/.png.")] = None,
    backend: Annotated[Optional[str], typer.Option("--backend", help="local (default: one series and seed after another here) or ray (one Ray task per series and seed).")] = None,
    ray_address: RayAddressOpt = None,
    ray_cpus: RayCpusOpt = None,
    threads: ThreadsOpt = None,
    config: ConfigOpt = None,
) -> None:
    """The protocol leaderboard: every model x series x seed, skill-gated and raw, beside naive and drift."""
    import time

    from atb.models import AVAILABLE_MODELS
    from atb.workflows.benchmark import Series, run_benchmark, write_outputs

    def action():
        if seeds < 1 or walk_forward < 0:
            raise ConfigError(f"--seeds {seeds} must be >= 1" if seeds < 1 else f"--walk-forward {walk_forward} must be >= 0 (0: no folds)")
        cfg = build_config(config, epochs=epochs, variant=variant, skill_gate=False if no_skill_gate else None, mlflow=False, cv=cv, embargo=embargo,
                           backend=backend, ray_address=ray_address, ray_cpus=ray_cpus, threads=threads)
        series = [Series.of_file(path) for path in files] if files else [Series(cfg.data.symbol)]
        types = [t.strip() for t in models.split(",") if t.strip()] if models else list(AVAILABLE_MODELS)
        with ProgressView(cfg.fit.epochs) as view:
            result = run_benchmark(cfg, series, types, [cfg.fit.seed + i for i in range(seeds)], walk_forward, not no_latency, view.handle)
        directory = output or cfg.output.output_dir / f"benchmark_{time.strftime('%Y%m%d-%H%M%S')}"
        return result, write_outputs(result, directory)

    result, paths = run_guarded(action)
    from atb.evaluation.leaderboard import MEAN_OVER_SERIES

    for kind, per_series in result["summary"].items():
        shown = {MEAN_OVER_SERIES: per_series[MEAN_OVER_SERIES]} if len(per_series) > 2 else {k: v for k, v in per_series.items() if k != MEAN_OVER_SERIES}
        for series, entries in shown.items():
            console.print(leaderboard_view(entries, f"{kind}, {series}: test RMSE/naive of the served forecast (raw, validation) per horizon"))
    console.print(f"Leaderboard: {paths['markdown']}, {paths['json']}, {paths['chart']}")
    for failure in result["failures"]:
        err_console.print(f"[bold red]{failure['series']} seed {failure['seed']} failed:[/] {escape(failure['error'])}")
    if result["failures"]:
        raise typer.Exit(code=1)


def leaderboard_view(entries: dict, title: str) -> Table:
    table = Table(title=title)
    horizons = list(next(iter(entries.values()))["horizons"])
    table.add_column("model")
    table.add_column("fit s", justify="right")
    for h in horizons:
        table.add_column(f"h={h}", justify="right")
    for model, entry in entries.items():
        cells = []
        for h in horizons:
            figures = entry["horizons"][h]
            served, raw, val = figures["rmse_ratio"], figures["rmse_ratio_raw"]["mean"], figures["val_rmse_ratio_raw"]["mean"]
            cells.append(f"{served['mean']:.3f}±{served['std']:.3f} ({raw:.3f}, {val:.3f})")
        table.add_row(model, f"{entry['fit_s']:.1f}", *cells)
    return table


@app.command()
def regimes(
    symbol: Annotated[str, typer.Argument()] = "BTCUSDT",
    data: DataOpt = None,
    exchange: ExchangeOpt = None,
    timeframe: TimeframeOpt = None,
    days: DaysOpt = None,
) -> None:
    """Share of each market regime per split (thresholds fitted on the training part)."""
    from atb.ensemble import REGIMES, regime_shares
    from atb.ensemble.fit import regimes_by_split
    from atb.workflows.steps import prepare_data

    def action():
        cfg = build_config(None, symbol=symbol, **data_flags(data, exchange, timeframe, days, None, False, None))
        prepared = prepare_data(cfg)
        regimes = regimes_by_split(prepared.candles.frame["close"], prepared.dataset)
        return {name: regime_shares(labels) for name, labels in regimes.items()}

    shares = run_guarded(action)
    table = Table(title=f"{symbol}: share of forecast origins per regime")
    table.add_column("split")
    for regime in REGIMES:
        table.add_column(regime, justify="right")
    for split, values in shares.items():
        table.add_row(split, *(f"{values[r]:.1%}" for r in REGIMES))
    console.print(table)


@app.command()
def predict(
    symbol: Annotated[str, typer.Argument()] = "BTCUSDT",
    model_type: Annotated[Optional[str], typer.Option("--model-type", help="Use this type's production/latest version.")] = None,
    version: VersionOpt = None,
    data: DataOpt = None,
    exchange: ExchangeOpt = None,
    timeframe: TimeframeOpt = None,
    days: DaysOpt = None,
    gaps: GapsOpt = None,
    keep_last_bar: KeepLastOpt = False,
    registry: RegistryOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    engine: Annotated[str, typer.Option(help="torch, or onnx (ONNX Runtime; neural single models).")] = "torch",
) -> None:
    """Forecast every horizon from the newest data with the production (else latest) model."""
    from atb.data import load_candles
    from atb.serve import load_version

    def action():
        cfg = build_config(
            None, symbol=symbol, registry_dir=registry, **data_flags(data, exchange, timeframe, days, gaps, keep_last_bar, None)
        )
        predictor = load_version(cfg.output.registry_dir, symbol, model_type=model_type, ref=version, engine=engine)
        return predictor, predictor.forecast(load_candles(cfg.data))

    predictor, forecast = run_guarded(action)
    if as_json:
        console.print_json(json.dumps(forecast))
        return
    table = Table(title=f"{symbol} forecast from {forecast['origin_time']} (close {forecast['origin_close']:.2f}) by {forecast['model']}")
    if "probability_up" in forecast["horizons"][0]:
        for column in ("horizon", "target time", "P(close above origin)"):
            table.add_column(column, justify="right")
        for row in forecast["horizons"]:
            table.add_row(str(row["horizon"]), row["target_time"], f"{row['probability_up']:.3f}")
        console.print(table)
        return
    for column in ("horizon", "target time", "forecast", "change"):
        table.add_column(column, justify="right")
    intervals = [
        (interval_label(label, forecast.get("interval_coverage", {}).get(key)), prefix)
        for label, key, prefix in (
            ("80% conformal, calibrated", "conformal_80", "conformal_{}_80"),
            ("95% conformal, calibrated", "conformal_95", "conformal_{}_95"),
            ("95% MC mixture, not calibrated", "mixture_95", "{}_95"),
        )
        if prefix.format("lower") in forecast["horizons"][0]
    ]
    for label, _ in intervals:
        table.add_column(label, justify="right")
    for row in forecast["horizons"]:
        cells = [str(row["horizon"]), row["target_time"], f"{row['forecast']:.2f}", f"{row['change']:+.2%}"]
        cells += [f"{row[p.format('lower')]:.2f} .. {row[p.format('upper')]:.2f}" for _, p in intervals]
        table.add_row(*cells)
    console.print(table)


def interval_label(label: str, coverage: list[float] | None) -> str:
    """An interval's column title with the coverage it had on the test part."""
    if not coverage:
        return label
    low, high = min(coverage), max(coverage)
    measured = f"{low:.0%}" if round(low, 2) == round(high, 2) else f"{low:.0%}-{high:.0%}"
    return f"{label} (test coverage {measured})"


@models_app.command("list")
def models_list(symbol: Annotated[Optional[str], typer.Argument()] = None, registry: RegistryOpt = None) -> None:
    """List registry versions."""
    versions = run_guarded(lambda: open_registry(registry).list_versions(symbol))
    table = Table(title="Registered models")
    for column in ("symbol", "type", "version", "stage", "created", "path"):
        table.add_column(column)
    for v in versions:
        table.add_row(v.symbol, v.model_type, v.version, v.stage or "", str(v.metadata.get("created_at", ""))[:19], str(v.path))
    console.print(table)


@models_app.command("show")
def models_show(
    symbol: str,
    model_type: Annotated[Optional[str], typer.Argument()] = None,
    ref: Annotated[str, typer.Argument(help="latest, a stage, or a version id.")] = "latest",
    registry: RegistryOpt = None,
) -> None:
    """Show one version's metadata and metrics."""
    version = run_guarded(lambda: open_registry(registry).get(symbol, model_type, ref))
    console.print(f"[bold]{version.symbol}/{version.model_type}/{version.version}[/] stage={version.stage} path={version.path}")
    metadata = {k: v for k, v in version.metadata.items() if k not in ("metrics", "files")}
    console.print_json(json.dumps(metadata, default=str))
    if version.metadata.get("target") == "direction":
        console.print(direction_view(version.metadata["metrics"], "Test: P(up) beside the training base rate and the majority direction"))
    elif version.metadata.get("metrics"):
        console.print(metrics_view(version.metadata["metrics"], "Test metrics"))


@models_app.command("compare")
def models_compare(
    symbol: str,
    registry: RegistryOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Every stored metric of every version, as JSON.")] = False,
    dm: Annotated[bool, typer.Option("--dm", help="Also model-vs-model Diebold-Mariano p-values on the test origins the versions share.")] = False,
) -> None:
    """Compare every version of a symbol: test RMSE/naive and DM p-value per horizon, validation RMSE/naive, fit time."""
    rows = run_guarded(lambda: open_registry(registry).compare(symbol))
    if not rows:
        fail(f"no versions for {symbol}")
    matrices = run_guarded(lambda: version_dm_matrices(open_registry(registry), symbol)) if dm else None
    if as_json:
        console.print_json(json.dumps({"versions": rows, "dm": matrices} if dm else rows, default=str))
        return
    direction = [row for row in rows if row["target"] == "direction"]
    rows = [row for row in rows if row["target"] != "direction"]
    if rows:
        console.print(price_comparison(symbol, rows))
    if direction:
        console.print(direction_comparison(symbol, direction))
    for line in (matrices or {}).get("skipped", []):
        warn(console, line)
    for h, matrix in (matrices or {}).get("p_values", {}).items():
        view = Table(title=f"h={h}: p-value that the row is more accurate than the column (one-sided DM, {matrices['origins']} shared test origins)")
        view.add_column("")
        for name in matrix:
            view.add_column(name, justify="right")
        for name, row in matrix.items():
            view.add_row(name, *[_fmt(row[other], 3) for other in matrix])
        console.print(view)


def comparison_table(title: str, rows: list[dict], cells: dict[str, str]) -> Table:
    """One row per version; per horizon the columns `cells` (title -> "{name}.h{h}.key", val. prefix allowed)."""
    horizons = sorted({int(key.split(".")[1][1:]) for row in rows for key in row if key.count(".") == 2 and key.split(".")[1][1:].isdigit()})
    table = Table(title=title)
    for column in ("model", "variant", "version", "stage", "fit s"):
        table.add_column(column, justify="right" if column == "fit s" else "left")
    for h in horizons:
        for column in cells:
            table.add_column(column.format(h=h), justify="right")
    for row in rows:
        name = "ensemble_stacking" if row["model_type"] == "ensemble" else row["model_type"]
        values = [_fmt(row.get(key.format(name=name, h=h), math.nan), 2 if key.endswith("pvalue") else 3) for h in horizons for key in cells.values()]
        fit = row["fit_seconds"]
        table.add_row(row["model_type"], row["variant"] or "–", row["version"], row["stage"] or "", "–" if fit is None else f"{fit:.0f}", *values)
    return table


def price_comparison(symbol: str, rows: list[dict]) -> Table:
    return comparison_table(
        f"{symbol}: versions compared (RMSE/naive of the served forecast, below 1 beats naive; DM p vs naive)", rows,
        {"h={h}": "{name}.h{h}.rmse_ratio", "p": "{name}.h{h}.dm_pvalue", "val": "val.{name}.h{h}.rmse_ratio"},
    )


def direction_comparison(symbol: str, rows: list[dict]) -> Table:
    return comparison_table(
        f"{symbol}: direction versions (Brier skill over the training base rate, above 0 has skill; accuracy)", rows,
        {"h={h}": "{name}.h{h}.brier_skill", "acc": "{name}.h{h}.accuracy", "val": "val.{name}.h{h}.brier_skill"},
    )


def version_dm_matrices(store, symbol: str) -> dict:
    """Pairwise DM p-values per horizon between the latest version of each type (those with saved predictions)."""
    from atb.evaluation.comparison import pairwise_dm, saved_forecast_errors
    from atb.layout import PREDICTIONS_FILE

    latest = {v.model_type: v for v in store.list_versions(symbol)}.values()
    saved = [(v.ref, v.path / PREDICTIONS_FILE) for v in latest]
    direction = [v.ref for v in latest if v.metadata.get("target") == "direction"]
    paths = {ref.split("/", 1)[1]: path for ref, path in saved if path.is_file() and ref not in direction}
    skipped = [f"{ref}: no saved predictions (trained before they were saved); left out of the DM matrix"
               for ref, path in saved if not path.is_file()]
    skipped += [f"{ref}: a direction model (probabilities, not prices); left out of the DM matrix" for ref in direction]
    if len(paths) < 2:
        return {"skipped": skipped + [f"fewer than two versions of {symbol} have saved predictions; no DM matrix"], "p_values": {}}
    errors, origins = saved_forecast_errors(paths)
    p_values = {h: {a: row.to_dict() for a, row in pairwise_dm(per_h, h).iterrows()} for h, per_h in errors.items()}
    return {"skipped": skipped, "origins": origins, "p_values": p_values}


@models_app.command("predictions")
def models_predictions(
    symbol: str,
    model_type: Annotated[Optional[str], typer.Argument(help="Default: the production version, else the latest.")] = None,
    ref: Annotated[str, typer.Argument(help="latest, a stage, or a version id.")] = "latest",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="A .csv or .parquet file (default: SYMBOL-TYPE-VERSION-predictions.csv).")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Export a version's per-origin validation and test forecasts, realised prices and baselines."""
    from atb.evaluation.predictions import brier_table, read_predictions, rmse_ratio_table, write_predictions
    from atb.io import atomic_write_text
    from atb.layout import PREDICTIONS_FILE
    from atb.workflows.preflight import check_writable

    def action():
        store = open_registry(registry)
        version = store.get(symbol, model_type, ref) if model_type else store.resolve_for_serving(symbol)
        frame = read_predictions(version.path / PREDICTIONS_FILE)
        path = output or Path(f"{version.symbol}-{version.model_type}-{version.version}-predictions.csv")
        if path.suffix not in (".csv", ".parquet"):
            raise ConfigError(f"--output {path}: give a .csv or .parquet file")
        check_writable(path.parent if str(path.parent) else Path("."), "--output")
        if path.suffix == ".csv":
            atomic_write_text(path, frame.to_csv(index=False))
        else:
            write_predictions(frame, path)
        return version, frame, path

    version, frame, path = run_guarded(action)
    if "probability_up" in frame.columns:
        table = Table(title=f"{version.ref}: direction probabilities from the saved forecasts (Brier below the base rate's has skill)")
        columns = {"brier": "Brier", "base_rate_brier": "base-rate Brier", "accuracy": "accuracy"}
        scores = brier_table(frame)
    else:
        table = Table(title=f"{version.ref}: RMSE/naive from the saved forecasts (below 1 beats naive)")
        columns = {"forecast": "served", "raw": "raw", "drift": "drift"}
        scores = rmse_ratio_table(frame)
    for column in ("part", "h", *columns.values()):
        table.add_column(column, justify="left" if column == "part" else "right")
    for (part, h), row in scores.iterrows():
        table.add_row(part, str(h), *(_fmt(row[key], 4 if "brier" in key else 3) for key in columns))
    console.print(table)
    console.print(f"{len(frame)} rows ({frame['origin_time'].nunique()} origins x {frame['horizon'].nunique()} horizons) written to {path}")


@models_app.command("promote")
def models_promote(
    symbol: str, model_type: str, version: str, stage: Annotated[str, typer.Argument(help="dev, staging or production.")] = "production", registry: RegistryOpt = None
) -> None:
    """Put a version in a stage (the previous holder can be restored with rollback)."""
    run_guarded(lambda: open_registry(registry).promote(symbol, model_type, version, stage))
    console.print(f"{symbol}/{model_type}/{version} is now {stage}")


@models_app.command("rollback")
def models_rollback(symbol: str, stage: str = "production", registry: RegistryOpt = None) -> None:
    """Restore the previous holder of a stage."""
    restored = run_guarded(lambda: open_registry(registry).rollback(symbol, stage))
    console.print(f"{symbol} {stage} rolled back to {restored.ref}")


@models_app.command("export")
def models_export(
    symbol: str,
    model_type: str,
    ref: Annotated[str, typer.Argument(help="latest, a stage, or a version id.")] = "latest",
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the .onnx file.")] = Path("model.onnx"),
    registry: RegistryOpt = None,
) -> None:
    """Export a neural model version to ONNX (inputs [batch, lookback, features], outputs [batch, horizons])."""
    from atb.models.onnx import export_onnx
    from atb.serve import load_version
    from atb.workflows.preflight import check_writable

    def action():
        check_writable(output.parent, "--output")
        predictor = load_version(registry_dir(registry), symbol, model_type=model_type, ref=ref)
        return export_onnx(predictor.model, output)

    path = run_guarded(action)
    console.print(f"ONNX model written to {path}; the version's transform.json gives the input features and scaling")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs an API key.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    registry: RegistryOpt = None,
    symbols: Annotated[Optional[str], typer.Option("--symbols", help="Comma-separated symbols (default: every symbol with a version).")] = None,
    data: Annotated[Optional[list[str]], typer.Option("--data", help="SYMBOL=FILE candles to start from (repeatable; BTCUSDT defaults to the sample).")] = None,
    engine: Annotated[str, typer.Option(help="onnx (ONNX Runtime for neural single models) or torch.")] = "onnx",
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
    api_key: Annotated[Optional[str], typer.Option("--api-key", envvar="ATB_API_KEY", help="Required in the X-API-Key header of every route but /health.")] = None,
    forecast_log: Annotated[Optional[str], typer.Option("--forecast-log", help="SQLAlchemy URL of the forecast log (default: SQLite in the registry).")] = None,
    combiner: Annotated[
        str,
        typer.Option("--combiner", help="How an ensemble version combines its bases: stacking (default, gated, conformal intervals), regime, or online (weights updated from the logged forecasts' realised errors)."),
    ] = "stacking",
) -> None:
    """Serve forecasts over HTTP (FastAPI + uvicorn); OpenAPI docs at /docs."""
    import uvicorn

    from atb.serve.api import API_KEY_VARIABLE
    from atb.serve.ensemble import COMBINERS
    from atb.serve.forecast_log import default_log_url

    root = registry_dir(registry)
    settings = {
        "registry": str(root),
        "symbols": [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None,
        "data": dict(pair.split("=", 1) for pair in data or []),
        "engine": engine,
        "log_url": forecast_log or default_log_url(root),
        "combiner": combiner,
    }

    def check():
        if engine not in ("onnx", "torch"):
            raise ConfigError(f"--engine {engine!r} is not one of ['onnx', 'torch']")
        if combiner not in COMBINERS:
            raise ConfigError(f"--combiner {combiner!r} is not one of {list(COMBINERS)}")
        if any("=" not in pair for pair in data or []):
            raise ConfigError("--data: expected SYMBOL=FILE, e.g. --data ETHUSDT=ETHUSDT_1d.csv")
        if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
            raise ConfigError(f"--host {host}: binding beyond loopback needs --api-key (or {API_KEY_VARIABLE})")
        if workers < 1:
            raise ConfigError(f"--workers {workers} must be >= 1")

    run_guarded(check)
    os.environ["ATB_SERVE_SETTINGS"] = json.dumps(settings)
    if api_key:
        os.environ[API_KEY_VARIABLE] = api_key
    uvicorn.run("atb.serve.api:app_from_environment", factory=True, host=host, port=port, workers=workers, log_level="warning")


@models_app.command("rollout")
def models_rollout(
    symbol: str,
    challenger: Annotated[Optional[str], typer.Option("--challenger", help="The challenger: a version ref SYMBOL/type/vNNNN, or type/vNNNN.")] = None,
    mode: Annotated[str, typer.Option("--mode", help="shadow (logged, never returned) or canary (a share of request keys).")] = "shadow",
    share: Annotated[float, typer.Option("--share", help="Canary share of request keys.")] = 0.1,
    stop: Annotated[bool, typer.Option("--stop", help="End the rollout; the champion keeps serving (rollback).")] = False,
    promote: Annotated[bool, typer.Option("--promote", help="Make the challenger production and end the rollout.")] = False,
    report: Annotated[bool, typer.Option("--report", help="Champion vs challenger on the forecasts whose targets are known.")] = False,
    data: DataOpt = None,
    registry: RegistryOpt = None,
    forecast_log: Annotated[Optional[str], typer.Option("--forecast-log", help="SQLAlchemy URL of the forecast log.")] = None,
) -> None:
    """Champion/challenger rollout of a symbol: start (shadow or canary), stop, promote, report."""
    from atb.registry import rollout_record
    from atb.serve.forecast_log import ForecastLog, default_log_url

    store = open_registry(registry)

    def action():
        if report:
            from atb.evaluation.rollout import rollout_report

            candles = load_candles_for_report(symbol, data)
            return rollout_report(ForecastLog(forecast_log or default_log_url(registry_dir(registry))).rows(symbol), candles.frame["close"])
        current = store.read_rollout(symbol)
        if stop or promote:
            if current is None:
                raise ConfigError(f"{symbol} has no rollout to {'stop' if stop else 'promote'}")
            if promote:
                symbol_, model_type, version = current["challenger"].split("/")
                store.promote(symbol_, model_type, version, "production")
            store.write_rollout(symbol, None)
            return current
        if challenger is None:
            raise ConfigError("--challenger is needed to start a rollout (or use --stop, --promote, --report)")
        ref = challenger if challenger.count("/") == 2 else f"{symbol}/{challenger}"
        store.get_ref(ref)  # exists and verifies
        state = rollout_record(ref, mode, share)
        store.write_rollout(symbol, state)
        return state

    result = run_guarded(action)
    if report:
        console.print(rollout_view(symbol, result))
    elif stop:
        console.print(f"{symbol}: rollout of {result['challenger']} stopped; the champion serves")
    elif promote:
        console.print(f"{symbol}: {result['challenger']} is now production; rollout ended")
    else:
        console.print(f"{symbol}: {result['mode']} rollout of {result['challenger']}" + (f", share {result['share']:.0%}" if result["mode"] == "canary" else ""))


def load_candles_for_report(symbol: str, data: Path | None):
    from atb.data import load_candles

    return load_candles(build_config(None, symbol=symbol, data_path=data).data)


def rollout_view(symbol: str, rows: list[dict]) -> Table:
    table = Table(title=f"{symbol}: served forecasts whose targets are known (RMSE/naive below 1 beats naive)")
    for column in ("version", "arm", "h", "forecasts", "RMSE/naive", "DM p vs champion"):
        table.add_column(column, justify="left" if column in ("version", "arm") else "right")
    for row in rows:
        table.add_row(row["version"], row["arm"], str(row["horizon"]), str(row["n"]), _fmt(row["rmse_ratio"], 3), _fmt(row["dm_pvalue"], 3))
    return table


@app.command("monitor")
def monitor_command(
    symbol: Annotated[str, typer.Argument()] = "BTCUSDT",
    model_type: Annotated[Optional[str], typer.Option("--model-type", help="Monitor this type's production/latest version.")] = None,
    version: VersionOpt = None,
    window: Annotated[int, typer.Option("--window", help="Recent bars compared with the version's references.")] = 90,
    thresholds: Annotated[Optional[Path], typer.Option("--thresholds", help="YAML file of threshold overrides.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for monitor.json and monitor.png.")] = None,
    data: DataOpt = None,
    exchange: ExchangeOpt = None,
    timeframe: TimeframeOpt = None,
    days: DaysOpt = None,
    gaps: GapsOpt = None,
    keep_last_bar: KeepLastOpt = False,
    registry: RegistryOpt = None,
    alert_webhook: Annotated[Optional[str], typer.Option("--alert-webhook", help="POST the JSON report here on a warning or an alert.")] = None,
    alert_command: Annotated[Optional[str], typer.Option("--alert-command", help="Run this (report on stdin, ATB_MONITOR_STATUS set) on a warning or an alert.")] = None,
    retrain: Annotated[bool, typer.Option("--retrain", help="On an alert: train a fresh version with the stored settings on these candles and register it as a shadow challenger (never promoted).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --retrain: say what would be done, do nothing.")] = False,
) -> None:
    """Input drift, prediction drift, realised skill and data health of a version; exit 0 ok, 1 warning, 2 alert."""
    import pandas as pd

    from atb.data import load_candles
    from atb.evaluation.plots import plot_monitor
    from atb.io import atomic_write_json
    from atb.serve.monitor import STATUSES, Thresholds, monitor, send_alerts
    from atb.workflows.preflight import check_writable

    folder = output or Path("training_output") / f"monitor_{symbol}"

    def action():
        check_writable(folder, "--output")
        cfg = build_config(None, symbol=symbol, registry_dir=registry, **data_flags(data, exchange, timeframe, days, gaps, keep_last_bar, None))
        candles = load_candles(cfg.data)
        now = pd.Timestamp.now(tz="UTC") if cfg.data.source == "exchange" else None
        report = monitor(open_registry(registry), symbol, candles, window, model_type, version, Thresholds.from_yaml(thresholds), now)
        atomic_write_json(folder / "monitor.json", report)
        plot_monitor(report, folder / "monitor.png")
        return report

    report = run_guarded(action)
    table = Table(title=f"{symbol} {report['version']}: the most drifted inputs over {report['span'][0][:10]} .. {report['span'][1][:10]}")
    for column in ("input", "PSI", "KS", "KS p", "outside 1-99%"):
        table.add_column(column, justify="left" if column == "input" else "right")
    for name, d in list(report["inputs"].items())[:8]:
        table.add_row(name, _fmt(d["psi"], 3), _fmt(d["ks"], 3), _fmt(d["ks_pvalue"], 3), f"{d['outside_1_99']:.0%}")
    console.print(table)
    skill = Table(title="Forecasts and realised skill per horizon")
    for column in ("h", "forecast PSI", "realised RMSE/naive", "test RMSE/naive", "p(worse than naive)", "origins"):
        skill.add_column(column, justify="right")
    for h, s in report["skill"].items():
        skill.add_row(h, _fmt(report["forecasts"][h]["psi"], 3), _fmt(s["rmse_ratio"], 3), _fmt(s["test_rmse_ratio"], 3), _fmt(s["worse_pvalue"], 3), str(s["n"]))
    console.print(skill)
    for line in report["missing"]:
        warn(console, f"missing: {line}")
    for finding in report["findings"]:
        style = "bold red" if finding["level"] == "alert" else "yellow"
        console.print(f"[{style}]{finding['level']}:[/] {escape(finding['what'])}")
    console.print(f"status {report['status']}; report and chart in {folder}")
    if report["status"] != "ok":
        for problem in send_alerts(report, alert_webhook, alert_command):
            warn(err_console, problem)
    if retrain and report["status"] == "alert":
        from atb.workflows.retrain import retrain_challenger

        config = build_config(None, symbol=symbol, registry_dir=registry, **data_flags(data, exchange, timeframe, days, gaps, keep_last_bar, None))
        plan = run_guarded(lambda: retrain_challenger(open_registry(registry), report["version"], config.data, dry_run=dry_run))
        console.print(plan)
    raise typer.Exit(code=STATUSES.index(report["status"]))


@app.command("validate-models")
def validate_models(device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto") -> None:
    """Build every type and variant, train one epoch on synthetic data, save and reload."""
    from atb.models.validation import validate_all_models
    from atb.workflows.preflight import check_device

    run_guarded(lambda: check_device(device))
    rows = run_guarded(lambda: validate_all_models(device=device))
    table = Table(title=f"Model validation on {device}")
    for column in ("type", "variant", "parameters", "seconds", "status"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["type"], row["variant"], f"{row['parameters']:,}", f"{row['seconds']:.2f}", row["status"])
    console.print(table)
    if any(row["status"] != "ok" for row in rows):
        raise typer.Exit(code=1)


@dev_app.command("gpu-check")
def gpu_check(device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto") -> None:
    """Show the compute device, CUDA/cuDNN versions and a timed matmul."""
    from atb.models.validation import gpu_check as check

    console.print_json(json.dumps(run_guarded(lambda: check(device=device)), default=str))


if __name__ == "__main__":
    app()
