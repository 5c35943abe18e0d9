"""Diagnostic figures, written as PNG files.

Each function takes plain values (lists, arrays, Series, DataFrames), draws one
figure with a title, axis labels and a legend, writes it atomically and returns
the path. Figures are `matplotlib.figure.Figure` objects rendered by Agg,
never pyplot: nothing needs a display, no global figure state is kept, and the
caller's pyplot backend is left alone.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from atb.evaluation.metrics import r_squared
from atb.io import atomic_write_with

DPI = 110
ATTENTION_SAMPLE = 60
ACF_LAGS = 30
SUMMARY_COLUMNS = {
    "rmse_ratio": "RMSE / naive",
    "mase": "MASE",
    "directional_accuracy": "dir. accuracy",
    "majority_accuracy": "majority",
    "dm_pvalue": "DM p-value",
}
DIRECTION_SUMMARY_COLUMNS = {
    "accuracy": "accuracy",
    "accuracy_pvalue": "p vs majority",
    "roc_auc": "ROC AUC",
    "brier": "Brier",
    "brier_skill": "Brier skill",
}
CALIBRATION_BINS = 10
_VAL_MAE_KEY = re.compile(r"^val_mae_h(\d+)$")


def plot_loss_curves(history: Sequence[Mapping], path: str | Path) -> Path:
    """Training `loss` and `val_loss` per `epoch`, the best (lowest val_loss) epoch marked."""
    fig = Figure(figsize=(9, 5), layout="constrained")
    _draw_loss_curves(fig.add_subplot(), history)
    return _save(fig, path)


def plot_metrics_progression(history: Sequence[Mapping], path: str | Path) -> Path:
    """Validation MAE per horizon (keys `val_mae_h{h}`) per epoch, one line per horizon."""
    epochs = _history_values(history, "epoch")
    horizons = sorted({int(match.group(1)) for entry in history for key in entry if (match := _VAL_MAE_KEY.match(key))})
    if not horizons:
        raise ValueError("history has no per-horizon validation MAE keys (expected e.g. 'val_mae_h1')")
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    values = {h: _history_values(history, f"val_mae_h{h}") for h in horizons}
    for h, mae in values.items():
        ax.plot(epochs, mae, marker="o", markersize=3, label=f"h={h}")
    if all(np.all(mae > 0) for mae in values.values()):
        ax.set_yscale("log")
    ax.set(title="Validation MAE per horizon", xlabel="epoch", ylabel="validation MAE (target space)")
    ax.legend(title="horizon")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_learning_rates(history: Sequence[Mapping], path: str | Path) -> Path:
    """Learning rate `lr` per epoch, log y axis (linear if any rate is <= 0)."""
    epochs = _history_values(history, "epoch")
    rates = _history_values(history, "lr")
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(epochs, rates, marker="o", markersize=3, label="learning rate")
    if np.all(rates > 0):
        ax.set_yscale("log")
    ax.set(title="Learning-rate schedule", xlabel="epoch", ylabel="learning rate")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def plot_attention_heatmap(weights: np.ndarray, origin_times: Sequence, path: str | Path) -> Path:
    """Attention `(n, lookback)` of up to 60 evenly spaced origins, and the mean profile over all."""
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 2 or weights.size == 0:
        raise ValueError(f"weights must be a non-empty (n origins, lookback) array, got shape {weights.shape}")
    if len(origin_times) != len(weights):
        raise ValueError(f"origin_times has {len(origin_times)} entries for {len(weights)} rows of weights")
    n, lookback = weights.shape
    rows = np.unique(np.linspace(0, n - 1, min(n, ATTENTION_SAMPLE)).round().astype(int))
    lags = np.arange(-lookback + 1, 1)
    fig = Figure(figsize=(10, 8), layout="constrained")
    heat_ax, profile_ax = fig.subplots(2, 1, height_ratios=(3, 1.4), sharex=True)
    image = heat_ax.imshow(
        weights[rows],
        aspect="auto",
        cmap="viridis",
        interpolation="nearest",
        extent=(lags[0] - 0.5, lags[-1] + 0.5, len(rows) - 0.5, -0.5),
    )
    fig.colorbar(image, ax=heat_ax, label="attention weight")
    tick_rows = np.unique(np.linspace(0, len(rows) - 1, min(len(rows), 8)).round().astype(int))
    heat_ax.set_yticks(tick_rows, [str(pd.Timestamp(origin_times[rows[i]]).date()) for i in tick_rows])
    heat_ax.set(title=f"Attention over the lookback window ({len(rows)} of {n} origins)", ylabel="forecast origin")
    mean, spread = weights.mean(axis=0), weights.std(axis=0)
    profile_ax.plot(lags, mean, color="C0", label=f"mean over {n} origins")
    profile_ax.fill_between(lags, mean - spread, mean + spread, color="C0", alpha=0.25, label="± 1 std")
    profile_ax.set(xlabel="bars before the origin (0 = origin bar)", ylabel="attention weight")
    profile_ax.legend(loc="upper left")
    profile_ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_feature_importance(importance: pd.Series, path: str | Path, top: int = 30) -> Path:
    """Horizontal bars of the `top` largest importances (feature names in the index)."""
    if not isinstance(importance, pd.Series) or importance.empty:
        raise ValueError("importance must be a non-empty pandas Series indexed by feature name")
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    shown = importance.astype(float).sort_values(ascending=False).head(top).iloc[::-1]
    fig = Figure(figsize=(9, max(3.5, 0.28 * len(shown) + 1.5)), layout="constrained")
    ax = fig.add_subplot()
    ax.barh([str(name) for name in shown.index], shown.to_numpy(), color="C0", label="importance")
    ax.set(
        title=f"Feature importance (top {len(shown)} of {len(importance)})",
        xlabel="importance",
        ylabel="feature",
    )
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def plot_model_comparison(metrics: Mapping[str, Mapping[int, Mapping]], path: str | Path) -> Path:
    """RMSE and MAE per horizon as grouped bars, one bar per model (e.g. model, naive, drift)."""
    if not metrics or not any(metrics.values()):
        raise ValueError("metrics must map at least one model name to {horizon: metrics}")
    horizons = sorted({int(h) for per_horizon in metrics.values() for h in per_horizon})
    positions = np.arange(len(horizons))
    width = 0.8 / len(metrics)
    fig = Figure(figsize=(12, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, key in zip(axes, ("rmse", "mae")):
        for i, (model, per_horizon) in enumerate(metrics.items()):
            values = [_metric(per_horizon, h, key, model) for h in horizons]
            ax.bar(positions + (i - (len(metrics) - 1) / 2) * width, values, width, label=model)
        ax.set_xticks(positions, [f"h={h}" for h in horizons])
        ax.set(title=f"{key.upper()} per horizon", xlabel="horizon (bars)", ylabel=f"{key.upper()} (price)")
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Model comparison on the test origins")
    return _save(fig, path)


def plot_leaderboard(entries: Mapping[str, Mapping], path: str | Path, title: str) -> Path:
    """Test RMSE/naive per horizon (served forecast, mean with its std as error bars) and the raw
    model's beside it (hollow), one group per model; the naive forecast is the line at 1."""
    if not entries:
        raise ValueError("entries must map at least one model to its summary")
    models = list(entries)
    horizons = list(next(iter(entries.values()))["horizons"])
    positions = np.arange(len(models))
    width = 0.8 / len(horizons)
    fig = Figure(figsize=(max(9, 0.9 * len(models) + 3), 5), layout="constrained")
    ax = fig.subplots()
    for i, h in enumerate(horizons):
        offset = positions + (i - (len(horizons) - 1) / 2) * width
        served = [entries[m]["horizons"][h]["rmse_ratio"] for m in models]
        raw = [entries[m]["horizons"][h]["rmse_ratio_raw"]["mean"] for m in models]
        bars = ax.bar(offset, [s["mean"] for s in served], width, yerr=[s["std"] for s in served], capsize=2, label=f"h={h}")
        ax.scatter(offset, raw, marker="o", facecolors="none", edgecolors=bars.patches[0].get_facecolor(), zorder=3)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_xticks(positions, models, rotation=30, ha="right")
    ax.set(ylabel="test RMSE / naive RMSE", title=title)
    low = min(s["mean"] for m in models for s in (entries[m]["horizons"][h]["rmse_ratio"] for h in horizons))
    ax.set_ylim(bottom=max(0.0, low - 0.05))
    ax.legend(title="bars: served (gated); circles: raw")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_predictions_vs_actual(
    origin_time: Sequence,
    actual: np.ndarray,
    predicted: np.ndarray,
    horizons: Sequence[int],
    path: str | Path,
) -> Path:
    """Per horizon: predicted vs actual scatter (R² in the title) and both series over time."""
    actual, predicted = _horizon_arrays(actual, predicted, horizons)
    if len(origin_time) != len(actual):
        raise ValueError(f"origin_time has {len(origin_time)} entries for {len(actual)} origins")
    times = pd.to_datetime(np.asarray(origin_time))
    fig = Figure(figsize=(14, 4 * len(horizons)), layout="constrained")
    axes = fig.subplots(len(horizons), 2, squeeze=False, width_ratios=(1, 2.2))
    for j, h in enumerate(horizons):
        scatter_ax, series_ax = axes[j]
        r2 = r_squared(actual[:, j], predicted[:, j])
        scatter_ax.scatter(actual[:, j], predicted[:, j], s=8, alpha=0.6, label="origins")
        low, high = np.nanmin([actual[:, j], predicted[:, j]]), np.nanmax([actual[:, j], predicted[:, j]])
        scatter_ax.plot([low, high], [low, high], color="k", linewidth=1, linestyle="--", label="perfect forecast")
        scatter_ax.set(title=f"h={h}: R² = {r2:.3f}", xlabel="actual close", ylabel="predicted close")
        scatter_ax.legend(loc="upper left")
        series_ax.plot(times, actual[:, j], color="k", linewidth=1.2, label="actual")
        series_ax.plot(times, predicted[:, j], color="C1", linewidth=1.0, label="predicted")
        series_ax.set(title=f"h={h}: close at origin + {h} bars", xlabel="forecast origin", ylabel="close")
        series_ax.legend(loc="upper left")
        series_ax.grid(alpha=0.3)
    fig.suptitle("Predictions vs actual on the test origins")
    return _save(fig, path)


def plot_residual_analysis(
    actual: np.ndarray, predicted: np.ndarray, horizons: Sequence[int], path: str | Path
) -> Path:
    """Per horizon: residual (actual - predicted) histogram, residuals over origins, their ACF, and
    residual against predicted (a trend there is a bias that depends on the forecast's level)."""
    actual, predicted = _horizon_arrays(actual, predicted, horizons)
    residuals = actual - predicted
    fig = Figure(figsize=(20, 3.6 * len(horizons)), layout="constrained")
    axes = fig.subplots(len(horizons), 4, squeeze=False)
    band = 1.96 / math.sqrt(len(residuals))
    for j, h in enumerate(horizons):
        hist_ax, time_ax, acf_ax, level_ax = axes[j]
        r = residuals[:, j]
        level_ax.scatter(predicted[:, j], r, s=8, alpha=0.6, label="origins")
        level_ax.axhline(0.0, color="k", linewidth=0.8, label="zero")
        level_ax.set(title=f"h={h}: residual vs predicted", xlabel="predicted close", ylabel="residual (price)")
        level_ax.legend()
        hist_ax.hist(r, bins=min(40, max(5, len(r) // 5)), color="C0", alpha=0.8, label="residuals")
        hist_ax.axvline(r.mean(), color="C3", linestyle="--", label=f"mean {r.mean():.3g}")
        hist_ax.set(title=f"h={h}: residual distribution", xlabel="residual (price)", ylabel="count")
        hist_ax.legend()
        time_ax.plot(np.arange(len(r)), r, color="C0", linewidth=0.9, label="residual")
        time_ax.axhline(0.0, color="k", linewidth=0.8, label="zero")
        time_ax.set(title=f"h={h}: residuals over time", xlabel="test origin index", ylabel="residual (price)")
        time_ax.legend()
        lags = np.arange(1, min(ACF_LAGS, len(r) - 1) + 1)
        acf_ax.bar(lags, _autocorrelation(r, lags), color="C0", label="autocorrelation")
        acf_ax.axhspan(-band, band, color="C7", alpha=0.3, label="95% band (white noise)")
        acf_ax.set(title=f"h={h}: residual autocorrelation", xlabel="lag (bars)", ylabel="correlation")
        acf_ax.legend()
    fig.suptitle("Residual analysis on the test origins")
    return _save(fig, path)


def plot_ensemble_weights(
    weights: pd.DataFrame, path: str | Path, regimes: pd.Series | None = None
) -> Path:
    """Ensemble weights over time (stacked when all >= 0, else lines), regimes in a strip below when given.

    weights: index time, one column per base model. regimes: labels indexed by time.
    """
    if not isinstance(weights, pd.DataFrame) or weights.empty:
        raise ValueError("weights must be a non-empty DataFrame (index time, one column per base model)")
    values = weights.astype(float)
    fig = Figure(figsize=(12, 5.5), layout="constrained")
    if regimes is None:
        ax = fig.add_subplot()
    else:
        ax, regime_ax = fig.subplots(2, 1, sharex=True, height_ratios=(6, 1))
        _draw_regimes(regime_ax, regimes)
    if (values.to_numpy() >= 0).all():
        ax.stackplot(values.index, values.to_numpy().T, labels=[str(c) for c in values.columns], alpha=0.85)
    else:
        for column in values.columns:
            ax.plot(values.index, values[column], label=str(column))
    ax.set(title="Ensemble weights over time", xlabel="time" if regimes is None else "", ylabel="weight")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_training_summary(summary: Mapping, path: str | Path) -> Path:
    """One page: key configuration, a per-horizon metrics table and the loss curves.

    summary keys:
      - ``title`` (str, optional): page title, default "Training summary".
      - ``config`` (dict): name -> value shown as text, e.g. model_type,
        variant, epochs, best_epoch, fit_seconds, data_span.
      - ``metrics`` (dict[int, dict]): per horizon, `evaluate_horizon` results;
        rmse_ratio, mase, directional_accuracy, majority_accuracy and
        dm_pvalue are shown.
      - ``history`` (list[dict]): per-epoch records with epoch, loss, val_loss.
    """
    for key in ("config", "metrics", "history"):
        if key not in summary:
            raise ValueError(f"summary is missing key {key!r}; needs 'config', 'metrics' and 'history'")
    if not summary["metrics"]:
        raise ValueError("summary['metrics'] is empty; expected {horizon: metrics}")
    fig = Figure(figsize=(12, 9), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=(0.6, 1.4))
    config_ax, table_ax = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    lines = [f"{name}: {_format_value(value)}" for name, value in summary["config"].items()]
    config_ax.text(0.0, 1.0, "\n".join(lines) or "(no configuration given)", va="top", family="monospace")
    config_ax.set_title("Configuration", loc="left")
    config_ax.axis("off")
    horizons = sorted(summary["metrics"])
    direction = "brier" in summary["metrics"][horizons[0]]
    columns = DIRECTION_SUMMARY_COLUMNS if direction else SUMMARY_COLUMNS
    cells = [
        [f"h={h}"] + [_format_value(_metric(summary["metrics"], h, key, "summary")) for key in columns]
        for h in horizons
    ]
    table = table_ax.table(cellText=cells, colLabels=["horizon", *columns.values()], loc="upper center")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1.0, 1.6)
    title = "Test metrics (Brier skill > 0 beats the base rate)" if direction else "Test metrics (ratios < 1 beat the naive forecast)"
    table_ax.set_title(title, loc="left")
    table_ax.axis("off")
    _draw_loss_curves(fig.add_subplot(grid[1, :]), summary["history"])
    fig.suptitle(str(summary.get("title", "Training summary")), fontsize=14)
    return _save(fig, path)


def plot_learning_curve(curve: Mapping, horizons: Sequence[int], path: str | Path) -> Path:
    """Raw RMSE/naive on validation (solid) and on the training windows used (dashed) against
    the number of training windows, one colour per horizon; 1.0 is the naive forecast."""
    sizes = [row["n_train"] for row in curve["sizes"]]
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    for k, h in enumerate(horizons):
        ax.plot(sizes, [row["validation"][h] for row in curve["sizes"]], "o-", color=f"C{k}", label=f"h={h} validation")
        ax.plot(sizes, [row["train"][h] for row in curve["sizes"]], "o--", color=f"C{k}", alpha=0.6, label=f"h={h} training")
    ax.axhline(1.0, color="k", linewidth=0.8, label="naive")
    ax.set(title="Learning curve (raw model, newest training windows)", xlabel="training windows", ylabel="RMSE / naive")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_base_training(histories: Mapping[str, Sequence[Mapping]], path: str | Path) -> Path:
    """Every neural base's training and validation loss (top) and learning-rate schedule
    (bottom, log scale: a transformer's warm-up shows as the rise)."""
    trained = {name: history for name, history in histories.items() if history and "lr" in history[0]}
    if not trained:
        raise ValueError("no base model has a per-epoch history with a learning rate")
    fig = Figure(figsize=(12, 8), layout="constrained")
    loss_ax, lr_ax = fig.subplots(2, 1, sharex=True)
    for k, (name, history) in enumerate(trained.items()):
        epochs = _history_values(history, "epoch")
        loss_ax.plot(epochs, _history_values(history, "loss"), color=f"C{k}", label=f"{name} training")
        loss_ax.plot(epochs, _history_values(history, "val_loss"), color=f"C{k}", linestyle="--", label=f"{name} validation")
        lr_ax.plot(epochs, _history_values(history, "lr"), color=f"C{k}", marker="o", markersize=3, label=name)
    loss_ax.set(title="Loss per epoch, each base model (first seed)", ylabel="loss")
    loss_ax.set_yscale("log")
    lr_ax.set(title="Learning rate per epoch", xlabel="epoch", ylabel="learning rate")
    lr_ax.set_yscale("log")
    for ax in (loss_ax, lr_ax):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def plot_base_forecasts(
    origin_time: Sequence, actual: np.ndarray, predicted: Mapping[str, np.ndarray], horizons: Sequence[int], path: str | Path
) -> Path:
    """Per horizon: every model's forecast beside the actual close over the test origins, and every
    model's residual against its forecast."""
    times = pd.to_datetime(np.asarray(origin_time))
    fig = Figure(figsize=(18, 4.2 * len(horizons)), layout="constrained")
    axes = fig.subplots(len(horizons), 2, squeeze=False, width_ratios=(2.2, 1))
    for j, h in enumerate(horizons):
        series_ax, residual_ax = axes[j]
        series_ax.plot(times, actual[:, j], color="k", linewidth=1.4, label="actual")
        for k, (name, values) in enumerate(predicted.items()):
            series_ax.plot(times, values[:, j], color=f"C{k}", linewidth=0.9, alpha=0.85, label=name)
            residual_ax.scatter(values[:, j], actual[:, j] - values[:, j], s=6, alpha=0.5, color=f"C{k}", label=name)
        residual_ax.axhline(0.0, color="k", linewidth=0.8)
        series_ax.set(title=f"h={h}: close at origin + {h} bars", xlabel="forecast origin", ylabel="close")
        residual_ax.set(title=f"h={h}: residual vs predicted", xlabel="predicted close", ylabel="residual (price)")
        for ax in (series_ax, residual_ax):
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
    fig.suptitle("Base models and the served ensemble on the test origins")
    return _save(fig, path)


def plot_shap_summary(
    values: np.ndarray, method: str, inputs: np.ndarray, feature_names: Sequence[str], horizons: Sequence[int], path: str | Path, top: int = 12
) -> Path:
    """One panel per horizon: each sample's attribution `values[:, j, :-1]` (by `method`: TreeSHAP,
    integrated gradients) for the `top` features with the largest mean |value|, coloured by the
    feature's (scaled) value at the origin `inputs`; `values[:, j, -1]` is the reference value."""
    fig = Figure(figsize=(6 * len(horizons), 0.45 * top + 2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(horizons)))
    rng = np.random.default_rng(0)
    for j, (ax, horizon) in enumerate(zip(axes, horizons)):
        contributions = values[:, j, :-1]
        order = np.argsort(-np.abs(contributions).mean(axis=0))[:top][::-1]
        for row, k in enumerate(order):
            colour = inputs[:, k]
            spread = np.nanpercentile(colour, [5, 95])
            ax.scatter(contributions[:, k], row + rng.uniform(-0.3, 0.3, len(contributions)), c=np.clip(colour, *spread),
                       cmap="coolwarm", s=6, alpha=0.7)
        ax.set_yticks(range(len(order)), [feature_names[k] for k in order])
        ax.axvline(0.0, color="grey", lw=0.8)
        reference = "expected value" if method == "TreeSHAP" else "forecast at the median window"
        ax.set(title=f"h={horizon} ({reference} {values[0, j, -1]:+.4f})", xlabel="contribution to the forecast (target space)")
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(f"{method[0].upper()}{method[1:]} of the raw model (before the skill gate) on validation windows; "
                 "colour: the feature's scaled value at the origin (blue low, red high)")
    return _save(fig, path)


def plot_tuning(result: Mapping, path: str | Path) -> Path:
    """A study (TuningResult.to_dict()): every trial's first objective in order with the best so far,
    the hyperparameter importances, and the Pareto front of the first two objectives
    (multi-objective) or the first objective against the trial's most important parameter."""
    objectives, directions = list(result["objectives"]), list(result["directions"])
    complete = [t for t in result["trials"] if t["values"]]
    fig = Figure(figsize=(15, 4.8), layout="constrained")
    history, importance, front = fig.subplots(1, 3)
    numbers = np.array([t["number"] for t in complete])
    first = np.array([t["values"][0] for t in complete], dtype=float)
    feasible = np.array([t["feasible"] for t in complete], dtype=bool)
    if len(first):
        history.scatter(numbers[feasible], first[feasible], s=18, label="trial")
        history.scatter(numbers[~feasible], first[~feasible], s=18, marker="x", color="grey", label="infeasible")
        best = np.minimum.accumulate(first) if directions[0] == "minimize" else np.maximum.accumulate(first)
        history.step(numbers, best, where="post", color="tab:red", label="best so far")
    history.set(title=f"{result['model_type']}: {result['n_trials']} trials ({result['sampler']})", xlabel="trial", ylabel=objectives[0])
    history.legend()
    history.grid(alpha=0.3)
    names = list(result["importances"])[::-1]
    importance.barh(names, [result["importances"][n] for n in names])
    importance.set(title=f"Parameter importance for {objectives[0]}", xlabel="importance (normalised)")
    if not names:
        importance.text(0.5, 0.5, "fewer than two complete trials\nor no parameter varied", ha="center", va="center", transform=importance.transAxes)
    if len(objectives) > 1:
        values = np.array([t["values"][:2] for t in complete], dtype=float).reshape(-1, 2)
        pareto = np.array(sorted(m["values"][:2] for m in result["pareto"]), dtype=float).reshape(-1, 2)
        front.scatter(values[:, 0], values[:, 1], s=18, color="grey", label="trial")
        front.plot(pareto[:, 0], pareto[:, 1], "o-", color="tab:red", label="Pareto front")
        front.set(title="Pareto front", xlabel=f"{objectives[0]} ({directions[0]})", ylabel=f"{objectives[1]} ({directions[1]})")
        front.legend()
    elif names:
        top = names[-1]
        x = [t["params"].get(top) for t in complete]
        front.scatter([str(v) if isinstance(v, str) else v for v in x], first, s=18)
        front.set(title=f"{objectives[0]} by {top}", xlabel=top, ylabel=objectives[0])
    front.grid(alpha=0.3)
    return _save(fig, path)


def _draw_loss_curves(ax: Axes, history: Sequence[Mapping]) -> None:
    epochs = _history_values(history, "epoch")
    val_loss = _history_values(history, "val_loss")
    ax.plot(epochs, _history_values(history, "loss"), marker="o", markersize=3, label="train loss")
    ax.plot(epochs, val_loss, marker="o", markersize=3, label="validation loss")
    if np.isfinite(val_loss).any():
        best = int(np.nanargmin(val_loss))
        ax.axvline(epochs[best], color="C3", linestyle="--", linewidth=1)
        ax.scatter([epochs[best]], [val_loss[best]], color="C3", zorder=3, label=f"best epoch {epochs[best]:g}")
    ax.set(title="Loss per epoch", xlabel="epoch", ylabel="loss")
    ax.legend()
    ax.grid(alpha=0.3)


def _draw_regimes(ax: Axes, regimes: pd.Series) -> None:
    """A strip with one coloured span per run of equal consecutive labels, one colour per label."""
    if regimes.empty:
        raise ValueError("regimes is empty; pass None to draw no regimes")
    labels = regimes.to_numpy()
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
    ends = np.r_[starts[1:], len(labels) - 1]
    colours = {label: f"C{i % 10}" for i, label in enumerate(pd.unique(labels))}
    shaded: set = set()
    for start, end in zip(starts, ends):
        label = labels[start]
        ax.axvspan(
            regimes.index[start],
            regimes.index[end],
            color=colours[label],
            alpha=0.6,
            label=str(label) if label not in shaded else None,
        )
        shaded.add(label)
    ax.set(xlabel="time", yticks=[])
    ax.set_ylabel("regime", rotation=0, ha="right", va="center")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="regime")


def _autocorrelation(values: np.ndarray, lags: np.ndarray) -> np.ndarray:
    centred = values - values.mean()
    denominator = float(centred @ centred)
    if denominator == 0:
        return np.zeros(len(lags))
    return np.array([float(centred[k:] @ centred[:-k]) / denominator for k in lags])


def plot_calibration(up: np.ndarray, probability: np.ndarray, base_rate: Sequence[float], horizons: Sequence[int], path: str | Path) -> Path:
    """Per horizon: reliability diagram (share of "up" against the mean forecast probability in
    CALIBRATION_BINS equal-width bins; the diagonal is a calibrated forecast) with the training
    base rate, and the histogram of the forecast probabilities. `up`: 1.0/0.0, NaN where the
    close did not move (left out)."""
    up, probability = _horizon_arrays(up, probability, horizons)
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    fig = Figure(figsize=(11, 3.8 * len(horizons)), layout="constrained")
    axes = fig.subplots(len(horizons), 2, squeeze=False)
    for j, h in enumerate(horizons):
        reliability_ax, hist_ax = axes[j]
        moved = np.isfinite(up[:, j])
        p, outcome = probability[moved, j], up[moved, j]
        bins = np.clip(np.digitize(p, edges) - 1, 0, CALIBRATION_BINS - 1)
        filled = [b for b in range(CALIBRATION_BINS) if (bins == b).any()]
        reliability_ax.plot([0, 1], [0, 1], color="k", linestyle="--", linewidth=1, label="calibrated")
        reliability_ax.axhline(base_rate[j], color="C7", linewidth=1, label=f"training base rate {base_rate[j]:.3f}")
        reliability_ax.plot([p[bins == b].mean() for b in filled], [outcome[bins == b].mean() for b in filled], marker="o", color="C0", label="forecast")
        reliability_ax.set(title=f"h={h}: reliability", xlabel="forecast P(up)", ylabel="observed share of up", xlim=(0, 1), ylim=(0, 1))
        reliability_ax.legend(loc="upper left")
        hist_ax.hist(p, bins=edges, color="C0", alpha=0.8, label="test origins")
        hist_ax.set(title=f"h={h}: forecast probabilities", xlabel="forecast P(up)", ylabel="count")
        hist_ax.legend()
    fig.suptitle("Calibration of the direction probabilities on the test origins")
    return _save(fig, path)


def plot_roc_curves(up: np.ndarray, probability: np.ndarray, horizons: Sequence[int], path: str | Path) -> Path:
    """ROC curve of P(up) per horizon (AUC in the legend); the diagonal is a coin flip.
    `up`: 1.0/0.0, NaN where the close did not move (left out)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    up, probability = _horizon_arrays(up, probability, horizons)
    fig = Figure(figsize=(6.5, 6), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="k", linestyle="--", linewidth=1, label="no skill")
    for j, h in enumerate(horizons):
        moved = np.isfinite(up[:, j])
        outcome, p = up[moved, j], probability[moved, j]
        if 0 < outcome.sum() < len(outcome):
            false_positive, true_positive, _ = roc_curve(outcome, p)
            ax.plot(false_positive, true_positive, label=f"h={h} (AUC {roc_auc_score(outcome, p):.3f})")
    ax.set(title="ROC of the direction probabilities (test origins)", xlabel="false positive rate", ylabel="true positive rate")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _horizon_arrays(
    actual: np.ndarray, predicted: np.ndarray, horizons: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    expected = (len(actual), len(horizons))
    if actual.ndim != 2 or actual.shape != expected or predicted.shape != expected or len(actual) < 2:
        raise ValueError(
            f"actual {actual.shape} and predicted {predicted.shape} must both be (n origins >= 2, "
            f"{len(horizons)} horizons)"
        )
    return actual, predicted


def _history_values(history: Sequence[Mapping], key: str) -> np.ndarray:
    if not history:
        raise ValueError("history is empty; expected one dict per epoch")
    missing = [i for i, entry in enumerate(history) if key not in entry]
    if missing:
        raise ValueError(f"history entries {missing[:5]} have no {key!r} value")
    return np.array([entry[key] for entry in history], dtype=float)


def _metric(per_horizon: Mapping[int, Mapping], horizon: int, key: str, owner: str) -> float:
    if horizon not in per_horizon:
        return math.nan
    if key not in per_horizon[horizon]:
        raise ValueError(f"metrics of {owner!r} at horizon {horizon} have no {key!r}")
    return float(per_horizon[horizon][key])


def _format_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def plot_monitor(report: Mapping, path: str | Path) -> Path:
    """Input drift (PSI per input, most drifted first) and realised vs test RMSE/naive per horizon."""
    fig = Figure(figsize=(12, 5), layout="constrained")
    drift_ax, skill_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    names = list(report["inputs"])[:20]
    values = [report["inputs"][n]["psi"] for n in names]
    drift_ax.barh(names[::-1], values[::-1], color="tab:orange")
    drift_ax.scatter([report["inputs"][n]["limit"] for n in names[::-1]], names[::-1], marker="|", s=200, color="black", label="no-drift limit")
    drift_ax.set_xlabel("PSI against the training part")
    drift_ax.set_title(f"{report['version']}: input drift over {report['span'][0][:10]} .. {report['span'][1][:10]}")
    drift_ax.legend()
    horizons = list(report["skill"])
    positions = np.arange(len(horizons))
    skill_ax.bar(positions - 0.2, [report["skill"][h]["test_rmse_ratio"] for h in horizons], 0.4, label="test part")
    skill_ax.bar(positions + 0.2, [report["skill"][h]["rmse_ratio"] for h in horizons], 0.4, label="window (realised)")
    skill_ax.axhline(1.0, color="black", linewidth=1)
    skill_ax.set_xticks(positions, [f"h={h}" for h in horizons])
    skill_ax.set_ylabel("RMSE / naive")
    skill_ax.set_title(f"status: {report['status']}")
    skill_ax.legend()
    return _save(fig, path)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return path
