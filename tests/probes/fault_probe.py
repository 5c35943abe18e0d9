"""The fault probe: bad inputs and faults a demanding user tries, each run through the real
CLI, classified as a clear error, a traceback, a silent acceptance (no error or warning
where one is due) or an unclear error (an error that does not name what it must).

    .venv/bin/python tests/probes/fault_probe.py            # prints the table and the counts
    .venv/bin/python tests/probes/fault_probe.py -k csv     # only cases whose name holds "csv"

Each case runs in its own temporary folder (candles, registry and outputs land there).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from atb.cli import app
from atb.data import load_candles

ROOT = Path(__file__).parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "registry_024bb27"
TRAIN = ["train", "model", "--model-type", "naive", "--no-mlflow"]


@dataclass
class Case:
    name: str
    args: list[str]
    expect: str  # "error", "ok", or "warn"
    must_say: str = ""  # a substring the error or warning must contain
    setup: Callable[[Path], None] | None = None


# ---------------------------------------------------------------- file makers
def sample() -> pd.DataFrame:
    frame = load_candles().frame.reset_index()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%d")
    return frame


def csv(name: str, edit: Callable[[pd.DataFrame], pd.DataFrame] | None = None, text: str | bytes | None = None):
    def make(folder: Path) -> None:
        if text is not None:
            (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())
        else:
            frame = sample()
            (edit(frame) if edit else frame).to_csv(folder / name, index=False)
    return make


def cell(row: int, column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame):
        frame = frame.astype({column: object})
        frame.loc[row, column] = value
        return frame
    return edit


def flat(start: int, length: int, volume: float = 0.0):
    def edit(frame):
        price = frame.loc[start - 1, "close"]
        frame.loc[start : start + length - 1, ["open", "high", "low", "close"]] = price
        frame.loc[start : start + length - 1, "volume"] = volume
        return frame
    return edit


def parquet(name: str, edit: Callable[[pd.DataFrame], pd.DataFrame]):
    def make(folder: Path) -> None:
        edit(sample()).to_parquet(folder / name)
    return make


def registry(edit: Callable[[Path], None] | None = None):
    def make(folder: Path) -> None:
        shutil.copytree(FIXTURE, folder / "models")
        if edit:
            edit(folder / "models" / "BTCUSDT")
    return make


def tamper(relative: str, data: bytes | None = None):
    def edit(symbol_dir: Path) -> None:
        path = symbol_dir / relative
        if data is None:
            path.unlink()
        else:
            path.write_bytes(data)
    return edit


def both(*makers):
    def make(folder: Path) -> None:
        for maker in makers:
            maker(folder)
    return make


def yaml(text: str):
    def make(folder: Path) -> None:
        (folder / "config.yaml").write_text(text)
    return make


# ---------------------------------------------------------------------- cases
def cases() -> list[Case]:
    D = "candles.csv"
    out = [
        # candle files
        Case("csv: empty file", [*TRAIN, "--data", D], "error", D, csv(D, text="")),
        Case("csv: header only", [*TRAIN, "--data", D], "error", D, csv(D, text="timestamp,open,high,low,close,volume\n")),
        Case("csv: missing close column", [*TRAIN, "--data", D], "error", "close", csv(D, lambda f: f.drop(columns="close"))),
        Case("csv: non-numeric price", [*TRAIN, "--data", D], "error", "row", csv(D, cell(100, "close", "abc"))),
        Case("csv: duplicate timestamp", [*TRAIN, "--data", D], "error", "duplicate", csv(D, lambda f: pd.concat([f, f.iloc[[500]]]).sort_index())),
        Case("csv: timestamps out of order", [*TRAIN, "--data", D], "error", "row", csv(D, lambda f: f.iloc[list(range(0, 300)) + [301, 300] + list(range(302, len(f)))])),
        Case("csv: timestamp off the bar grid", [*TRAIN, "--data", D], "error", "row", csv(D, cell(400, "timestamp", "2018-09-20 05:00"))),
        Case("csv: NaN in part of a row", [*TRAIN, "--data", D], "error", "row", csv(D, cell(700, "high", np.nan))),
        Case("csv: negative price", [*TRAIN, "--data", D], "error", "row", csv(D, cell(800, "low", -5.0))),
        Case("csv: zero price", [*TRAIN, "--data", D], "error", "row", csv(D, lambda f: f.assign(open=f["open"].where(f.index != 801, 0.0), low=f["low"].where(f.index != 801, 0.0)))),
        Case("csv: negative volume", [*TRAIN, "--data", D], "error", "volume", csv(D, cell(900, "volume", -1.0))),
        Case("csv: high below low", [*TRAIN, "--data", D], "error", "row", csv(D, lambda f: f.assign(high=f["high"].where(f.index != 950, f["low"] - 1)))),
        Case("csv: close above high", [*TRAIN, "--data", D], "error", "[low, high]", csv(D, lambda f: f.assign(close=f["close"].where(f.index != 960, f["high"] + 10)))),
        Case("csv: open below low", [*TRAIN, "--data", D], "error", "[low, high]", csv(D, lambda f: f.assign(open=f["open"].where(f.index != 970, f["low"] - 10)))),
        Case("csv: infinite value", [*TRAIN, "--data", D], "error", "row", csv(D, cell(980, "close", "inf"))),
        Case("csv: unparsable date", [*TRAIN, "--data", D], "error", "row", csv(D, cell(990, "timestamp", "yesterday"))),
        Case("csv: binary garbage", [*TRAIN, "--data", D], "error", D, csv(D, text=bytes(range(256)) * 4)),
        Case("csv: semicolon separated", [*TRAIN, "--data", D], "error", "missing column", csv(D, text="timestamp;open;high;low;close;volume\n2024-01-01;1;2;0.5;1.5;3\n")),
        Case("file: unsupported extension", [*TRAIN, "--data", "candles.xlsx"], "error", "unsupported extension", csv("candles.xlsx")),
        Case("file: a folder", [*TRAIN, "--data", "folder"], "error", "is a folder", lambda f: (f / "folder").mkdir()),
        Case("file: missing", [*TRAIN, "--data", "nowhere.csv"], "error", "nowhere.csv does not exist"),
        Case("file: 50 rows", [*TRAIN, "--data", D], "error", "fewer than the", csv(D, lambda f: f.iloc[:50])),
        Case("file: 200 rows", [*TRAIN, "--data", D], "error", "fewer than the", csv(D, lambda f: f.iloc[:200])),
        Case("file: 499 rows", [*TRAIN, "--data", D], "error", "fewer than the", csv(D, lambda f: f.iloc[:499])),
        Case("file: unix seconds", [*TRAIN, "--data", D], "ok", "", csv(D, lambda f: f.assign(timestamp=pd.to_datetime(f["timestamp"]).astype("int64") // 10**9))),
        Case("file: unix milliseconds", [*TRAIN, "--data", D], "ok", "", csv(D, lambda f: f.assign(timestamp=pd.to_datetime(f["timestamp"]).astype("int64") // 10**6))),
        Case("file: rows with every price missing", [*TRAIN, "--data", D], "warn", "all prices missing", csv(D, lambda f: f.assign(**{c: f[c].where(~f.index.isin([600, 601]), np.nan) for c in ["open", "high", "low", "close"]}))),
        Case("parquet: string prices", [*TRAIN, "--data", "c.parquet"], "error", "c.parquet", parquet("c.parquet", lambda f: f.assign(close=f["close"].astype(str) + "x"))),
        Case("parquet: missing volume", [*TRAIN, "--data", "c.parquet"], "error", "volume", parquet("c.parquet", lambda f: f.drop(columns="volume"))),
        Case("parquet: valid", [*TRAIN, "--data", "c.parquet"], "ok", "", parquet("c.parquet", lambda f: f)),
        # data quality
        Case("data: 25-bar flat stretch", [*TRAIN, "--data", D], "warn", "without trades", csv(D, flat(1500, 25))),
        Case("data: 25-bar gap, filled", [*TRAIN, "--data", D], "warn", "without trades", csv(D, lambda f: f.drop(index=range(1500, 1525)))),
        Case("data: 25-bar gap, --gaps error", [*TRAIN, "--data", D, "--gaps", "error"], "error", "gap", csv(D, lambda f: f.drop(index=range(1500, 1525)))),
        Case("data: 25-bar gap, --gaps keep", [*TRAIN, "--data", D, "--gaps", "keep"], "warn", "gap", csv(D, lambda f: f.drop(index=range(1500, 1525)))),
        Case("data: constant price, 800 rows", [*TRAIN, "--data", D], "error", "nothing to learn", csv(D, lambda f: f.iloc[:800].assign(open=100.0, high=100.0, low=100.0, close=100.0))),
        Case("data: all-zero volume", [*TRAIN, "--data", D], "warn", "volume is 0", csv(D, lambda f: f.assign(volume=0.0))),
        Case("data: flat start of history (idle)", [*TRAIN, "--data", D], "warn", "without trades", csv(D, flat(1, 120))),
        Case("data: --days 100", [*TRAIN, "--days", "100"], "error", "--days"),
        Case("data: --days 1000", [*TRAIN, "--days", "1000"], "ok"),
        Case("data: --timeframe 1h on a daily file", [*TRAIN, "--data", D, "--timeframe", "1h"], "error", "timeframe", csv(D)),
        Case("data: --timeframe 1d on a daily file", [*TRAIN, "--data", D, "--timeframe", "1d"], "ok", "", csv(D)),
        Case("data: funding file missing", [*TRAIN, "--funding", "nofunding.csv"], "error", "nofunding.csv"),
        Case("data: funding file malformed", [*TRAIN, "--funding", "f.csv"], "error", "f.csv", csv("f.csv", text="when,rate\nx,y\n")),
        # flags
        Case("flag: unknown model type", ["train", "model", "--model-type", "prophet", "--no-mlflow"], "error", "prophet"),
        Case("flag: unknown variant", [*TRAIN[:2], "--model-type", "lstm", "--variant", "huge", "--no-mlflow"], "error", "huge"),
        Case("flag: epochs 0", [*TRAIN, "--epochs", "0"], "error", "epochs"),
        Case("flag: epochs -1", [*TRAIN, "--epochs", "-1"], "error", "epochs"),
        Case("flag: batch size 0", [*TRAIN, "--batch-size", "0"], "error", "batch_size"),
        Case("flag: lookback 1", [*TRAIN, "--lookback", "1"], "error", "lookback"),
        Case("flag: horizon 0", [*TRAIN, "--horizons", "0"], "error", "horizons"),
        Case("flag: horizons decreasing", [*TRAIN, "--horizons", "7,1"], "error", "horizons"),
        Case("flag: horizons not numbers", [*TRAIN, "--horizons", "a,b"], "error", "horizons"),
        Case("flag: horizons duplicated", [*TRAIN, "--horizons", "1,1"], "error", "horizons"),
        Case("flag: n-features 0", [*TRAIN, "--n-features", "0"], "error", "n_features"),
        Case("flag: patience 0", [*TRAIN, "--patience", "0"], "error", "patience"),
        Case("flag: negative learning rate", [*TRAIN, "--learning-rate", "-1"], "error", "learning_rate"),
        Case("flag: device tpu", [*TRAIN[:2], "--model-type", "lstm", "--device", "tpu", "--no-mlflow"], "error", "device"),
        Case("flag: device cuda without CUDA", [*TRAIN[:2], "--model-type", "lstm", "--device", "cuda", "--no-mlflow"], "error", "CUDA"),
        Case("flag: --set without =", [*TRAIN[:2], "--model-type", "lstm", "--set", "dropout", "--no-mlflow"], "error", "NAME=VALUE"),
        Case("flag: --set unknown hyperparameter", [*TRAIN[:2], "--model-type", "lstm", "--set", "wings=2", "--no-mlflow"], "error", "wings"),
        Case("flag: seeds 0", [*TRAIN, "--seeds", "0"], "error", "seeds"),
        Case("flag: --also missing file", [*TRAIN, "--also", "other.csv"], "error", "other.csv"),
        Case("flag: invalid tracking URI", [*TRAIN[:-1], "--tracking-uri", "foo://bar"], "error", "tracking URI"),
        Case("flag: unknown gap policy", [*TRAIN, "--gaps", "maybe"], "error", "gap_policy"),
        Case("flag: unknown timeframe", [*TRAIN, "--timeframe", "3x"], "error", "timeframe"),
        Case("flag: symbol with a slash", ["train", "model", "BTC/USD", "--data", D, "--model-type", "naive", "--no-mlflow"], "error", "symbol", csv(D)),
        Case("flag: symbol without a sample", ["train", "model", "DOGEUSDT", "--model-type", "naive", "--no-mlflow"], "error", "DOGEUSDT"),
        Case("flag: unknown exchange", [*TRAIN, "--exchange", "nosuchexchange"], "error", "nosuchexchange"),
        Case("config: missing file", [*TRAIN, "--config", "none.yaml"], "error", "none.yaml"),
        Case("config: invalid YAML", [*TRAIN, "--config", "config.yaml"], "error", "config.yaml", yaml("epochs: [1,\n")),
        Case("config: unknown key", [*TRAIN, "--config", "config.yaml"], "error", "wings", yaml("wings: 3\n")),
        Case("config: a list", [*TRAIN, "--config", "config.yaml"], "error", "mapping", yaml("- 1\n- 2\n")),
        Case("config: wrong type", [*TRAIN, "--config", "config.yaml"], "error", "epochs", yaml("epochs: many\n")),
        Case("config: output folder cannot be created", [*TRAIN, "--config", "config.yaml"], "error", "output_dir", yaml("output_dir: /proc/atb-out\n")),
        Case("registry: a file", [*TRAIN, "--registry", "reg"], "error", "registry", lambda f: (f / "reg").write_text("")),
        Case("registry: cannot be written", [*TRAIN, "--registry", "/proc/atb-reg"], "error", "registry"),
        Case("registry: symbol folder is a file", [*TRAIN], "error", "registry", lambda f: ((f / "models").mkdir(), (f / "models" / "BTCUSDT").write_text(""))),
        # production
        Case("production: unknown base model", ["train", "production", "--base-models", "naive,nosuch", "--no-mlflow"], "error", "nosuch"),
        Case("production: empty base models", ["train", "production", "--base-models", ",", "--no-mlflow"], "error", "base_models"),
        Case("production: --data count mismatch", ["train", "production", "--crypto", "BTC,ETH", "--data", D, "--no-mlflow"], "error", "--data", csv(D)),
        Case("production: wf-splits 0", ["train", "production", "--wf-splits", "0", "--no-mlflow"], "error", "wf_splits"),
        Case("production: mc-samples 0", ["train", "production", "--mc-samples", "0", "--no-mlflow"], "error", "mc_samples"),
        Case("production: tune-trials 0", ["train", "production", "--tune", "--tune-trials", "0", "--no-mlflow"], "error", "tune_trials"),
        Case("production: unknown symbol", ["train", "production", "--crypto", "DOGE", "--base-models", "naive", "--no-mlflow"], "error", "DOGEUSDT"),
        # registry and serving
        Case("predict: unknown symbol", ["predict", "ETHUSDT"], "error", "ETHUSDT", registry()),
        Case("predict: unknown model type", ["predict", "--model-type", "nosuch"], "error", "nosuch", registry()),
        Case("predict: unknown version", ["predict", "--model-type", "lstm", "--version", "v0099"], "error", "v0099", registry()),
        Case("predict: empty registry", ["predict"], "error", "BTCUSDT"),
        Case("predict: tampered weights", ["predict", "--model-type", "lstm"], "error", "corrupt", registry(tamper("lstm/v0001/model/weights.safetensors", b"\x00" * 64))),
        Case("predict: tampered ensemble base", ["predict"], "error", "lstm/v0001", registry(tamper("lstm/v0001/model/weights.safetensors", b"\x00" * 64))),
        Case("predict: missing ensemble base", ["predict"], "error", "lightgbm", registry(lambda s: shutil.rmtree(s / "lightgbm" / "v0001"))),
        Case("predict: missing transform", ["predict", "--model-type", "lstm"], "error", "transform.json", registry(tamper("lstm/v0001/transform.json"))),
        Case("predict: corrupt metadata", ["predict", "--model-type", "lstm"], "error", "metadata.json", registry(tamper("lstm/v0001/metadata.json", b"{not json"))),
        Case("predict: file planted in a version", ["predict", "--model-type", "lstm"], "error", "not in the manifest", registry(tamper("lstm/v0001/model/extra.pkl", b"x"))),
        Case("predict: pickle as weights", ["predict", "--model-type", "lstm"], "error", "weights", registry(tamper("lstm/v0001/model/weights.safetensors", b"\x80\x04\x95" + b"\x00" * 40))),
        Case("predict: 12h candles for a daily model", ["predict", "--model-type", "lstm", "--data", "h12.csv"], "error", "bars", both(registry(), csv("h12.csv", lambda f: f.assign(timestamp=pd.date_range("2020-01-01", periods=len(f), freq="12h").strftime("%Y-%m-%d %H:%M"))))),
        Case("predict: too little history", ["predict", "--model-type", "lstm", "--days", "30"], "error", "", registry()),
        Case("predict: unknown engine", ["predict", "--model-type", "lstm", "--engine", "tpu"], "error", "engine", registry()),
        Case("predict: onnx engine for an ensemble", ["predict", "--engine", "onnx"], "error", "ensemble", registry()),
        Case("predict: --json", ["predict", "--json"], "ok", "", registry()),
        Case("models: show unknown version", ["models", "show", "BTCUSDT", "lstm", "v0042"], "error", "v0042", registry()),
        Case("models: promote unknown version", ["models", "promote", "BTCUSDT", "lstm", "v0042"], "error", "v0042", registry()),
        Case("models: promote to an unknown stage", ["models", "promote", "BTCUSDT", "lstm", "v0001", "heaven"], "error", "heaven", registry()),
        Case("models: rollback without history", ["models", "rollback", "BTCUSDT"], "error", "production", registry()),
        Case("models: export a tree model", ["models", "export", "BTCUSDT", "lightgbm"], "error", "lightgbm", registry()),
        Case("models: export to an unwritable folder", ["models", "export", "BTCUSDT", "lstm", "-o", "/proc/atb/model.onnx"], "error", "--output", registry()),
        Case("models: compare unknown symbol", ["models", "compare", "ETHUSDT"], "error", "ETHUSDT", registry()),
        Case("models: list an empty registry", ["models", "list"], "ok"),
        # other commands
        Case("benchmark: missing file", ["benchmark", "nowhere.csv", "--models", "naive"], "error", "nowhere.csv"),
        Case("benchmark: unknown model", ["benchmark", "--models", "nosuch"], "error", "nosuch"),
        Case("benchmark: seeds 0", ["benchmark", "--models", "naive", "--seeds", "0"], "error", "seeds"),
        Case("benchmark: walk-forward -1", ["benchmark", "--models", "naive", "--walk-forward", "-1"], "error", "walk"),
        Case("features: bad file", ["features", "--data", D], "error", D, csv(D, cell(10, "close", "abc"))),
        Case("features: unwritable output", ["features", "-o", "/proc/atb/f.parquet"], "error", "/proc/atb"),
        Case("regimes: bad file", ["regimes", "--data", D], "error", D, csv(D, cell(10, "close", "abc"))),
        Case("data fetch: unknown exchange", ["data", "fetch", "BTCUSDT", "--exchange", "nosuchexchange"], "error", "nosuchexchange"),
        Case("validate-models: device tpu", ["validate-models", "--device", "tpu"], "error", "device"),
    ]
    return out


# ------------------------------------------------------------------ classify
def run_case(case: Case, runner: CliRunner) -> tuple[str, str]:
    """(outcome, the line that decided it)."""
    folder = Path(tempfile.mkdtemp(prefix="atb-probe-"))
    cwd = os.getcwd()
    try:
        os.chdir(folder)
        if case.setup:
            case.setup(folder)
        result = runner.invoke(app, case.args)
    finally:
        os.chdir(cwd)
        shutil.rmtree(folder, ignore_errors=True)
    output = result.output
    lines = [line for line in output.splitlines() if line.strip()]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return "traceback", f"{type(result.exception).__name__}: {result.exception}"[:160]
    if result.exit_code not in (0, 1, 2):
        return "traceback", f"exit code {result.exit_code}"
    if result.exit_code == 0:
        if case.expect == "error" or (case.expect == "warn" and case.must_say not in output):
            return "silent", (lines[-1] if lines else "")[:160]
        if case.args[:1] == ["predict"] and "--json" in case.args:
            json.loads(result.stdout)
        return "ok", (lines[-1] if lines else "")[:160]
    errors = [line for line in lines if line.startswith("error:") or "Error" in line or "Invalid value" in line]
    shown = " | ".join(errors)[:200] or (lines[-1] if lines else "")
    if case.expect == "ok":
        return "unclear", shown
    if result.exit_code == 1 and (len([line for line in lines if line.startswith("error:")]) != 1 or case.must_say not in output):
        return "unclear", shown
    if result.exit_code == 2 and case.must_say.strip("-") not in output:
        return "unclear", shown
    return "clear", shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default="", help="only cases whose name holds this text")
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    args = parser.parse_args()
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["COLUMNS"] = "200"
    runner = CliRunner()
    selected = [case for case in cases() if args.k in case.name]
    counts: Counter = Counter()
    rows = []
    for case in selected:
        tic = time.perf_counter()
        outcome, line = run_case(case, runner)
        counts[outcome] += 1
        rows.append({"case": case.name, "expected": case.expect, "outcome": outcome, "line": line, "seconds": round(time.perf_counter() - tic, 1)})
        print(f"{outcome:9s} {case.name:45s} {line}", flush=True)
    print(f"\n{len(selected)} cases: " + ", ".join(f"{counts[k]} {k}" for k in ("clear", "ok", "traceback", "silent", "unclear")))
    if args.json:
        args.json.write_text(json.dumps({"counts": dict(counts), "cases": rows}, indent=1))
    sys.exit(1 if counts["traceback"] or counts["silent"] or counts["unclear"] else 0)


if __name__ == "__main__":
    main()
