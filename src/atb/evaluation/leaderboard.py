"""The benchmark leaderboard: runs summarised over seeds and folds, per series and over series,
and written as Markdown."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

FIGURES = (
    "rmse_ratio", "rmse_ratio_raw", "val_rmse_ratio", "val_rmse_ratio_raw", "mase", "directional_accuracy",
    "majority_accuracy", "direction_pvalue", "dm_pvalue", "gate_a", "gate_k",
)
MEAN_OVER_SERIES = "mean over series"


def split_kind(split: str) -> str:
    return "holdout" if split == "holdout" else "walk_forward"


def summarise_runs(runs: list[dict]) -> dict:
    """`{kind: {series: {model: {"fit_s": .., "n": .., "horizons": {h: {figure: {"mean", "std"}}}}}}}`
    over seeds (and folds, for walk-forward), plus a `"mean over series"` entry holding the
    mean over series of each series' mean."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        groups[(split_kind(run["split"]), run["series"], run["model"])].append(run)
    summary: dict = defaultdict(lambda: defaultdict(dict))
    for (kind, series, model), group in groups.items():
        horizons = {
            h: {figure: _mean_std([run["horizons"][h][figure] for run in group]) for figure in FIGURES}
            for h in group[0]["horizons"]
        }
        summary[kind][series][model] = {"n": len(group), "fit_s": float(np.mean([run["fit_s"] for run in group])), "horizons": horizons}
    for kind, per_series in summary.items():
        models = {model for entries in per_series.values() for model in entries}
        per_series[MEAN_OVER_SERIES] = {
            model: _mean_over_series([entries[model] for entries in list(per_series.values()) if model in entries])
            for model in sorted(models)
        }
    return {kind: dict(per_series) for kind, per_series in summary.items()}


def _mean_std(values: list) -> dict:
    numbers = np.array([np.nan if v is None else v for v in values], dtype=float)
    if np.isnan(numbers).all():
        return {"mean": None, "std": None}
    return {"mean": float(np.nanmean(numbers)), "std": float(np.nanstd(numbers, ddof=1)) if np.sum(~np.isnan(numbers)) > 1 else 0.0}


def _mean_over_series(entries: list[dict]) -> dict:
    horizons = entries[0]["horizons"]
    return {
        "n": len(entries),
        "fit_s": float(np.mean([entry["fit_s"] for entry in entries])),
        "horizons": {
            h: {figure: _mean_std([entry["horizons"][h][figure]["mean"] for entry in entries]) for figure in FIGURES}
            for h in horizons
        },
    }


def leaderboard_markdown(result: dict) -> str:
    """Tables of the benchmark result: per kind (holdout, walk-forward), per series and over series."""
    lines = [
        "# atb benchmark",
        "",
        f"Series: {', '.join(result['series'])}; seeds: {result['seeds']}; walk-forward folds: {result['folds'] or 'none'}; "
        f"machine: {result['machine']['processor']}, {result['machine']['cpu_count']} CPUs, torch {result['machine']['torch']} "
        f"({result['machine']['torch_threads']} threads).",
        "",
        "RMSE/naive is the served (skill-gated) forecast's test RMSE over the naive forecast's, mean ± std over seeds "
        "(and folds); raw is the model before the gate; val is the same ratio on the validation part, where the gate "
        "was fitted; k is the gate's model weight.",
    ]
    for kind, per_series in result["summary"].items():
        shown = per_series if len(per_series) > 2 else {k: v for k, v in per_series.items() if k != MEAN_OVER_SERIES}
        for series, entries in shown.items():
            horizons = list(next(iter(entries.values()))["horizons"])
            lines += ["", f"## {kind}: {series}", "", _header(horizons)]
            lines += ["|" + "---|" * (2 + 4 * len(horizons))]
            for model, entry in entries.items():
                lines.append(_row(model, entry))
    if result.get("speed"):
        lines += [
            "", "## Speed (first series, holdout split, first seed)", "",
            "| model | p50 ms | p99 ms | batch 1000 / s | ONNX p50 ms | ONNX batch 1000 / s | parameters | weights KiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for model, speed in result["speed"].items():
            onnx = speed.get("onnx", {})
            lines.append(
                f"| {model} | {speed['torch']['p50_ms']:.3f} | {speed['torch']['p99_ms']:.3f} | {speed['torch']['batch1000_per_second']:,.0f} | "
                f"{_number(onnx.get('p50_ms'), 3)} | {_number(onnx.get('batch1000_per_second'), 0)} | {speed['parameters']:,} | "
                f"{speed['weights_bytes'] / 1024:,.0f} |"
            )
    return "\n".join(lines) + "\n"


def _header(horizons: list) -> str:
    cells = ["model", "fit s"]
    for h in horizons:
        cells += [f"h={h} RMSE/naive", f"h={h} raw", f"h={h} val", f"h={h} k"]
    return "| " + " | ".join(cells) + " |"


def _row(model: str, entry: dict) -> str:
    cells = [model, f"{entry['fit_s']:.1f}"]
    for figures in entry["horizons"].values():
        ratio = figures["rmse_ratio"]
        cells += [
            f"{ratio['mean']:.3f} ± {ratio['std']:.3f}",
            _number(figures["rmse_ratio_raw"]["mean"], 3),
            _number(figures["val_rmse_ratio_raw"]["mean"], 3),
            _number(figures["gate_k"]["mean"], 2),
        ]
    return "| " + " | ".join(cells) + " |"


def _number(value, digits: int) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"
