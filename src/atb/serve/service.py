"""The forecasting service behind `atb serve`: loaded versions kept per symbol, swapped
atomically when the registry changes, champion/challenger arms, the candles each symbol
forecasts from, and the forecast log. No HTTP here (that is `serve.api`).

A symbol forecasts from the candles it was started with (`data`: a file per symbol, or
the bundled sample), replaced by the candles of the last request that brought some.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from atb.config import DataSpec
from atb.data import Candles, load_candles
from atb.data.sources import SAMPLE_SYMBOLS, parse_timestamps
from atb.data.validate import validate_ohlcv
from atb.registry import ModelRegistry, RegistryError
from atb.serve.ensemble import COMBINERS, EnsemblePredictor
from atb.serve.forecast_log import ForecastLog
from atb.serve.loader import resolve_version
from atb.serve.monitor import monitor
from atb.serve.predictor import Predictor, onnx_runtime_predict
from atb.serve.rollout import CHALLENGER, CHAMPION, answering_arm

logger = logging.getLogger(__name__)
Served = Predictor | EnsemblePredictor
CACHED_FORECASTS = 1000


class UnknownError(LookupError):
    """A symbol or version the service does not serve (HTTP 404)."""


@dataclass(frozen=True)
class SymbolState:
    """What one symbol serves; replaced whole, so a request sees one consistent state."""

    champion: Served
    rollout: dict | None = None
    challenger: Served | None = None
    signature: tuple = ()


class ForecastService:
    """Loads each symbol's champion (production, else latest) and its rollout challenger once,
    and swaps them when `refresh` sees the registry change."""

    def __init__(
        self,
        registry_dir: str | Path,
        symbols: list[str] | None = None,
        engine: str = "onnx",
        data: dict[str, Path] | None = None,
        log: ForecastLog | None = None,
        on_load: Callable[[str, str], None] | None = None,
        combiner: str = "stacking",
    ) -> None:
        if combiner not in COMBINERS:
            raise ValueError(f"combiner {combiner!r} is not one of {list(COMBINERS)}")
        self.registry = ModelRegistry(Path(registry_dir))
        self.engine = engine
        self.combiner = combiner
        self.log = log
        self.on_load = on_load or (lambda symbol, ref: None)
        self.symbols = symbols or [s for s in self.registry.symbols() if self.registry.list_versions(s)]
        self._states: dict[str, SymbolState] = {}
        self._candles: dict[str, Candles] = {}
        self._explicit: dict[str, Served] = {}
        self._computed: dict[tuple, tuple[Candles, list[dict]]] = {}  # (version, id of candles, origins) -> (those candles, forecasts)
        self._load_lock = threading.Lock()
        self._compute_locks = {symbol: threading.Lock() for symbol in self.symbols}
        for symbol in self.symbols:
            self.refresh(symbol)
            path = (data or {}).get(symbol)
            if path is not None or symbol in SAMPLE_SYMBOLS:
                self._candles[symbol] = load_candles(DataSpec(symbol=symbol, data_path=path))

    @property
    def ready(self) -> bool:
        return all(symbol in self._states for symbol in self.symbols)

    def refresh(self, symbol: str, force: bool = False) -> bool:
        """Load what the registry now says `symbol` serves, if it changed (or `force`); the
        new state replaces the old in one assignment, so requests in flight finish on the old."""
        with self._load_lock:
            signature = self.registry.serving_signature(symbol)
            current = self._states.get(symbol)
            if current is not None and current.signature == signature and not force:
                return False
            champion = self._load(self.registry.resolve_for_serving(symbol).ref)
            rollout = self.registry.read_rollout(symbol)
            challenger = self._load(rollout["challenger"]) if rollout else None
            self._states[symbol] = SymbolState(champion, rollout, challenger, signature)
        logger.info("%s serves %s%s", symbol, champion.name, f" with challenger {challenger.name}" if challenger else "")
        return True

    def refresh_all(self) -> None:
        for symbol in self.symbols:
            try:
                self.refresh(symbol)
            except (RegistryError, ValueError, OSError) as exc:  # keep serving the loaded state
                logger.warning("%s: could not reload, still serving the loaded version: %s", symbol, exc)

    def models(self) -> list[dict]:
        return [self.describe(symbol) for symbol in self.symbols if symbol in self._states]

    def describe(self, symbol: str) -> dict:
        state = self._state(symbol)
        return {
            "symbol": symbol,
            "champion": state.champion.name,
            "horizons": list(state.champion.horizons),
            "rollout": state.rollout,
            "candles_until": self._candles[symbol].frame.index[-1].isoformat() if symbol in self._candles else None,
        }

    def candles_from_rows(self, symbol: str, rows: list[dict]) -> Candles:
        """Request candles, validated exactly as a file is (same messages)."""
        frame = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])
        times = frame.pop("timestamp")
        if all(isinstance(t, (int, float)) for t in times):  # unix seconds or milliseconds
            times = times.astype(float)
        frame.index = parse_timestamps(times, "request candles")
        frame, report = validate_ohlcv(frame.astype(float), "request candles", drop_partial_last_bar=False)
        return Candles(frame=frame, report=report, symbol=symbol, source="request candles")

    def forecast(
        self,
        symbol: str,
        candles: Candles | None = None,
        model_type: str | None = None,
        version: str | None = None,
        key: str | None = None,
        origin_times: list | None = None,
    ) -> list[dict]:
        """Forecasts from `origin_times` (default: the newest bar), each with the arm and version
        that answered; logged (shadow forecasts too) before they are returned."""
        state = self._state(symbol)
        if candles is not None:
            self._candles[symbol] = candles
            self._computed = {key: value for key, value in self._computed.items() if not key[0].startswith(f"{symbol}/")}
        candles = self._candles.get(symbol)
        if candles is None:
            raise ValueError(f"candles: the service holds no candles for {symbol}; send them in the request")
        request_id = uuid.uuid4().hex
        if model_type is not None or version is not None:
            answers = [("explicit", True, self._explicit_version(symbol, model_type, version))]
        else:
            arm = answering_arm(state.rollout, symbol, key or request_id)
            answers = [(CHAMPION, arm == CHAMPION, state.champion)]
            if state.challenger is not None:
                answers.append((CHALLENGER, arm == CHALLENGER, state.challenger))
        with self._compute_locks[symbol]:
            computed = [(arm, returned, self._forecast_at(served, candles, origin_times)) for arm, returned, served in answers]
        results = []
        for i in range(len(computed[0][2])):
            per_arm = [(arm, returned, forecasts[i]) for arm, returned, forecasts in computed]
            if self.log is not None:
                self.log.append(f"{request_id}-{i}", symbol, candles_hash(candles), per_arm)
            arm, _, forecast = next(item for item in per_arm if item[1])
            rows = [{**row, "log_return": math.log(row["forecast"] / forecast["origin_close"])} for row in forecast["horizons"]]
            results.append({**forecast, "horizons": rows, "arm": arm, "request_id": f"{request_id}-{i}"})
        return results

    def monitor(self, symbol: str, window: int = 90, model_type: str | None = None) -> dict:
        """The monitoring report of the symbol's served version (or its `model_type` version) on the
        candles the service holds, with NaN as null (JSON)."""
        state = self._state(symbol)
        candles = self._candles.get(symbol)
        if candles is None:
            raise ValueError(f"candles: the service holds no candles for {symbol}; send some with a forecast first")
        ref = None if model_type else state.champion.name.split("/")[2]
        kind = model_type or state.champion.name.split("/")[1]
        return json_safe(monitor(self.registry, symbol, candles, window, kind, ref))

    def _forecast_at(self, served: Served, candles: Candles, origin_times: list | None) -> list[dict]:
        """The version's forecasts from these candles, computed once while the candles stay the same.
        Called under the symbol's compute lock: pandas is not safe for concurrent first reads of
        one frame (its index caches), and concurrent requests then wait for one computation."""
        key = (served.name, id(candles), tuple(origin_times) if origin_times else None)
        if key not in self._computed or self._computed[key][0] is not candles:
            if len(self._computed) > CACHED_FORECASTS:
                self._computed.clear()
            self._computed[key] = (candles, served.forecast_at(candles, origin_times))
        return self._computed[key][1]

    def _state(self, symbol: str) -> SymbolState:
        state = self._states.get(symbol)
        if state is None:
            raise UnknownError(f"symbol {symbol!r} is not served; served: {self.symbols}")
        return state

    def _explicit_version(self, symbol: str, model_type: str | None, version: str | None) -> Served:
        try:
            ref = resolve_version(self.registry, symbol, model_type, version).ref
        except RegistryError as exc:
            raise UnknownError(str(exc)) from None
        if ref not in self._explicit:
            with self._load_lock:
                self._explicit[ref] = self._load(ref)
        return self._explicit[ref]

    def _load(self, ref: str) -> Served:
        """A verified version, ONNX Runtime in front of a neural single model when the engine is onnx."""
        version = self.registry.get_ref(ref)
        if version.metadata.get("kind") == "ensemble":
            logged = (lambda: self.log.rows(version.symbol, version.ref)) if self.log is not None else None
            served: Served = EnsemblePredictor.from_version(version, self.registry, self.combiner, logged)
        else:
            served = Predictor.from_directory(version.path, name=version.ref)
            if served.transform.target.is_direction:
                raise ValueError(f"{ref} forecasts direction probabilities; the service serves price forecasts (`atb predict` shows it)")
            if self.engine == "onnx" and getattr(served.model, "onnx_exportable", False):
                served.predict_windows = onnx_runtime_predict(served.model)
        self.on_load(ref.split("/")[0], ref)
        return served


def candles_hash(candles: Candles) -> str:
    """SHA-256 of the candles a forecast was made from (the log's input hash)."""
    frame = candles.frame
    return hashlib.sha256(frame.index.asi8.tobytes() + frame.to_numpy(dtype=float).tobytes()).hexdigest()


def json_safe(value):
    """`value` with every non-finite float replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
