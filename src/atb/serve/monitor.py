"""`atb monitor`: has a served version left the ground it was validated on?

Against the version's `monitor.json` (written at training time), over the last
`window` bars of the candles: input drift (PSI, KS, share outside the training
1-99% range), prediction drift (PSI of the version's forecasts over the window
against its validation forecasts), realised skill (the version replayed over the
window's origins whose targets are known: RMSE/naive per horizon beside its own
test figure, DM p against naive) and data health (gaps, a stale last candle).

Status: "alert" (exit 2), "warning" (exit 1) or "ok" (exit 0) against
`Thresholds` (defaults below; a YAML file of the same names overrides them).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import urllib.request
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from atb.data import Candles
from atb.evaluation.drift import drift_against, null_limit
from atb.evaluation.skill import one_sided_pvalue
from atb.layout import MONITOR_FILE
from atb.registry import ModelRegistry
from atb.serve.loader import resolve_version
from atb.serve.predictor import Predictor

STATUSES = ("ok", "warning", "alert")


@dataclass(frozen=True)
class Thresholds:
    """When a finding is a warning or an alert (PSI: 0.1 / 0.25 are the usual readings)."""

    # An input or forecast "drifted" when its PSI exceeds the 99th percentile of the PSI of
    # windows of this length drawn from its own reference rows (stored at training time),
    # times this factor; `fallback_psi` where a version stored no such limit.
    null_factor: float = 1.0
    fallback_psi: float = 0.25
    input_share_alert: float = 0.5  # this share of the inputs drifted: an alert (fewer: a warning) ...
    input_alert_factor: float = 2.0  # ... as is one input whose PSI exceeds its limit this many times
    skill_margin: float = 0.10  # realised RMSE/naive above the test figure by this much ...
    skill_pvalue: float = 0.05  # ... and significantly worse than naive (DM): an alert
    stale_bars: float = 2.0  # last candle older than this many bars: a warning

    @classmethod
    def from_yaml(cls, path: Path | None) -> Thresholds:
        if path is None:
            return cls()
        values = yaml.safe_load(Path(path).read_text()) or {}
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown threshold(s) {unknown}; known: {[f.name for f in fields(cls)]}")
        return cls(**{k: float(v) for k, v in values.items()})


def monitor(
    registry: ModelRegistry, symbol: str, candles: Candles, window: int = 90, model_type: str | None = None,
    ref: str | None = None, thresholds: Thresholds | None = None, now: pd.Timestamp | None = None,
) -> dict:
    """The monitoring report of the symbol's served version (or the one named) on `candles`;
    `now` (live candles) enables the stale-candle check."""
    thresholds = thresholds or Thresholds()
    version = resolve_version(registry, symbol, model_type, ref)
    if version.metadata.get("kind") == "ensemble":
        raise ValueError(f"{version.ref} is an ensemble; monitor its bases (--model-type) for now")
    reference, missing = stored_reference(version)
    predictor = Predictor.from_directory(version.path, name=version.ref)
    features = predictor.features(candles)
    if window < 2 or window > len(features):
        raise ValueError(f"--window {window} must be between 2 and the {len(features)} bars given")
    recent = features.iloc[-window:]
    inputs = {name: {**drift_against(ref_, recent[name].to_numpy()), "limit": limit(ref_, window, thresholds)} for name, ref_ in reference["inputs"].items()}
    if not reference["inputs"]:
        inputs = {}
    ends = np.arange(len(features) - window, len(features))
    ends = ends[ends >= predictor.transform.lookback - 1]
    forecasts = predictor.predict_windows(predictor.transform.windows_at(features, ends))
    predictions = {
        str(h): {**drift_against(reference["forecasts"][str(h)], forecasts[:, j]), "limit": limit(reference["forecasts"][str(h)], len(ends), thresholds)}
        for j, h in enumerate(predictor.horizons)
        if str(h) in reference["forecasts"]
    }
    skill = realised_skill(candles, ends, forecasts, predictor.horizons, reference["errors"]["test"])
    report = {
        "symbol": symbol, "version": version.ref, "window": window,
        "span": [str(recent.index[0]), str(recent.index[-1])],
        "inputs": dict(sorted(inputs.items(), key=lambda kv: -kv[1]["psi"])),
        "forecasts": predictions, "skill": skill, "health": data_health(candles, window, now),
        "thresholds": asdict(thresholds), "missing": missing,
    }
    report["findings"] = findings(report, thresholds)
    report["status"] = max((f["level"] for f in report["findings"]), key=STATUSES.index, default="ok")
    return report


def stored_reference(version) -> tuple[dict, list[str]]:
    """The version's monitor.json; for a version written before it, what its metadata holds
    (the test errors) and the list of what is missing."""
    path = version.path / MONITOR_FILE
    if path.is_file():
        return json.loads(path.read_text()), []
    metrics = version.metadata.get("metrics", {}).get(version.model_type, {})
    errors = {str(h): {"rmse_ratio": float(row["rmse_ratio"])} for h, row in metrics.items()}
    return {"inputs": {}, "forecasts": {}, "errors": {"test": errors}}, [
        f"{MONITOR_FILE} (the version predates monitoring): no input or forecast drift; realised skill and data health only"
    ]


def limit(reference: dict, window: int, thresholds: Thresholds) -> float:
    """The PSI above which this input or forecast counts as drifted over `window` bars."""
    null = null_limit(reference, window)
    return thresholds.fallback_psi if null is None else null * thresholds.null_factor


def realised_skill(candles: Candles, ends: np.ndarray, forecasts: np.ndarray, horizons: tuple[int, ...], test_errors: dict) -> dict:
    """Per horizon, over the origins whose target bar is in the candles: RMSE/naive, the version's
    test RMSE/naive beside it, and the DM p-value of "worse than naive"."""
    close = candles.frame["close"].to_numpy(dtype=float)
    out = {}
    for j, h in enumerate(horizons):
        known = ends + h < len(close)
        if known.sum() <= h + 1:
            out[str(h)] = {"n": int(known.sum()), "rmse_ratio": math.nan, "test_rmse_ratio": test_errors[str(h)]["rmse_ratio"], "worse_pvalue": math.nan}
            continue
        origin, target = close[ends[known]], close[ends[known] + h]
        model_error = origin * np.exp(forecasts[known, j]) - target
        naive_error = origin - target
        worse = one_sided_pvalue(naive_error, model_error, h)  # p of "naive's errors are smaller"
        out[str(h)] = {
            "n": int(known.sum()),
            "rmse_ratio": float(np.sqrt(np.mean(model_error**2) / np.mean(naive_error**2))),
            "test_rmse_ratio": test_errors[str(h)]["rmse_ratio"],
            "worse_pvalue": float(worse),
        }
    return out


def data_health(candles: Candles, window: int, now: pd.Timestamp | None) -> dict:
    """Gaps in the window and, for live candles (`now` given), how many bars old the last one is."""
    frame, report = candles.frame, candles.report
    start = frame.index[-window]
    gaps = [g for g in report.gaps if g.before >= start]
    age = None if now is None else float((now - (frame.index[-1] + candles.bar_duration)) / candles.bar_duration)
    return {
        "gaps_in_window": len(gaps), "missing_bars_in_window": int(sum(g.missing_bars for g in gaps)),
        "last_bar": str(frame.index[-1]), "last_bar_age_bars": age,
        "partial_bar_dropped": None if report.partial_bar_dropped is None else str(report.partial_bar_dropped),
    }


def findings(report: dict, t: Thresholds) -> list[dict]:
    """Each threshold crossed, as {level, what}."""
    out = []
    drifted = [name for name, d in report["inputs"].items() if d["psi"] > d["limit"]]
    if drifted:
        share = len(drifted) / len(report["inputs"])
        major = any(report["inputs"][name]["psi"] > t.input_alert_factor * report["inputs"][name]["limit"] for name in drifted)
        level = "alert" if share >= t.input_share_alert or major else "warning"
        out.append({"level": level, "what": f"{len(drifted)} of {len(report['inputs'])} inputs drifted beyond what their training windows show: {drifted[:5]}"})
    for h, d in report["forecasts"].items():
        if d["psi"] > d["limit"]:
            out.append({"level": "warning", "what": f"h={h}: forecasts drifted from the validation forecasts (PSI {d['psi']:.2f} > {d['limit']:.2f})"})
    for h, s in report["skill"].items():
        if s["rmse_ratio"] > s["test_rmse_ratio"] * (1 + t.skill_margin) and s["worse_pvalue"] < t.skill_pvalue:
            out.append({"level": "alert", "what": f"h={h}: realised RMSE/naive {s['rmse_ratio']:.3f} vs {s['test_rmse_ratio']:.3f} on test, worse than naive (DM p {s['worse_pvalue']:.3f})"})
    health = report["health"]
    if health["last_bar_age_bars"] is not None and health["last_bar_age_bars"] > t.stale_bars:
        out.append({"level": "warning", "what": f"the last candle ({health['last_bar']}) is {health['last_bar_age_bars']:.0f} bars old"})
    if health["gaps_in_window"]:
        out.append({"level": "warning", "what": f"{health['gaps_in_window']} gap(s), {health['missing_bars_in_window']} missing bar(s) in the window"})
    return out


def send_alerts(report: dict, webhook: str | None = None, command: str | None = None, timeout: float = 10.0) -> list[str]:
    """POST the report as JSON to `webhook` and run `command` with it on stdin (status in
    ATB_MONITOR_STATUS); returns a line per delivery problem instead of raising."""
    problems = []
    body = json.dumps(report, default=str).encode()
    if webhook:
        request = urllib.request.Request(webhook, data=body, headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
        except (OSError, ValueError) as exc:
            problems.append(f"--alert-webhook {webhook}: {exc}")
    if command:
        try:
            done = subprocess.run(command, shell=True, input=body, timeout=timeout * 6, env={**os.environ, "ATB_MONITOR_STATUS": report["status"]}, capture_output=True)
            if done.returncode:
                problems.append(f"--alert-command exited {done.returncode}: {done.stderr.decode(errors='replace').strip()[:200]}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"--alert-command: {exc}")
    return problems
