"""Versioned on-disk model store with stages and checksums.

Layout::

    {root}/.staging/                     versions being built (never read)
    {root}/{SYMBOL}/.lock                 flock held while versions or stages change
    {root}/{SYMBOL}/latest.json           newest version across model types
    {root}/{SYMBOL}/stages.json           per stage: current holder and history
    {root}/{SYMBOL}/{model_type}/latest   newest version of this type
    {root}/{SYMBOL}/{model_type}/v0001/   the caller's files + metadata.json

A version directory is complete the moment it appears: it is built under
`.staging/`, given a `metadata.json` whose `files` manifest holds the SHA-256
of every file, and renamed into place under the symbol lock. Pointers and
stages are small JSON files replaced atomically, so readers need no lock.

A build directory is named after its host and process id. A process killed
mid-build (SIGKILL, power loss) leaves it behind; the next build on the same
host removes it once that process is gone. Builds of other hosts sharing the
registry are left alone: their processes cannot be checked from here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from atb.io import atomic_write_json
from atb.layout import METADATA_FILE
from atb.processes import OWNER_END, owner, remove_abandoned

logger = logging.getLogger(__name__)

STAGES = ("dev", "staging", "production")
REGISTRY_FIELDS = ("symbol", "model_type", "version", "created_at", "files")

_STAGING_DIR = ".staging"
_LOCK_FILE = ".lock"
_TYPE_POINTER = "latest"
_SYMBOL_POINTER = "latest.json"
_STAGES_FILE = "stages.json"
_ROLLOUT_FILE = "rollout.json"  # a champion/challenger rollout of the symbol, read by running servers
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_VERSION = re.compile(r"v(\d{4,})")


class RegistryError(Exception):
    """The registry cannot do what was asked; the message names the symbol, type, version or file."""


@dataclass(frozen=True)
class ModelVersion:
    """One stored model version; `stage` is the highest stage it holds, if any."""

    symbol: str
    model_type: str
    version: str
    path: Path
    metadata: dict[str, Any]
    stage: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.symbol}/{self.model_type}/{self.version}"

    @property
    def created_at(self) -> str:
        return self.metadata["created_at"]


class ModelRegistry:
    """Versioned model store rooted at `root` (see the module docstring for the layout)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ---------------------------------------------------------------- writing

    def create_version(
        self,
        symbol: str,
        model_type: str,
        populate: Callable[[Path], None],
        metadata: Mapping[str, Any],
    ) -> ModelVersion:
        """Store a new version: `populate(dir)` writes the files, the registry adds metadata.json.

        The version gets the next number for (symbol, model_type), becomes the
        latest of its type and of its symbol, and enters stage "dev". If
        `populate` raises, nothing is kept and the error propagates.
        """
        check_name("symbol", symbol)
        check_name("model_type", model_type)
        _check_reserved_fields(metadata, symbol, model_type)
        staging = self.root / _STAGING_DIR
        staging.mkdir(parents=True, exist_ok=True)
        remove_abandoned(staging)
        build_dir = Path(tempfile.mkdtemp(prefix=f"{owner()}{OWNER_END}{symbol}-{model_type}-", dir=staging))
        build_dir.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; a registry is shared like any folder
        try:
            populate(build_dir)
            if (build_dir / METADATA_FILE).exists():
                raise RegistryError(f"{symbol}/{model_type}: populate wrote {METADATA_FILE}, which the registry writes; pass it as `metadata`")
            files = _manifest(build_dir)
            version = self._publish(symbol, model_type, build_dir, {**metadata, "files": files})
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise
        logger.info("registered %s/%s/%s in %s", symbol, model_type, version, self.root)
        return self._load(symbol, model_type, version)

    def promote(self, symbol: str, model_type: str, version: str, stage: str) -> ModelVersion:
        """Make a verified version the holder of `stage`; the previous holder goes on its history."""
        _check_stage(stage)
        self._require_symbol(symbol)
        self._require_model_type(symbol, model_type)
        with self._locked(symbol):
            self.verify(self._load(symbol, model_type, version))
            stages = self._read_stages(symbol)
            if _set_holder(stages, stage, model_type, version):
                atomic_write_json(self._stages_path(symbol), stages)
        logger.info("promoted %s/%s/%s to %s", symbol, model_type, version, stage)
        return self._load(symbol, model_type, version)

    def rollback(self, symbol: str, stage: str) -> ModelVersion:
        """Give `stage` back to its previous holder; returns that version."""
        _check_stage(stage)
        self._require_symbol(symbol)
        with self._locked(symbol):
            stages = self._read_stages(symbol)
            entry = stages.get(stage)
            if not entry or not entry["history"]:
                raise RegistryError(f"{symbol}: stage {stage!r} has no earlier holder to roll back to")
            previous = entry["history"][-1]
            self._load(symbol, previous["model_type"], previous["version"])
            entry["history"].pop()
            entry["current"] = {**previous, "since": _utc_now()}
            atomic_write_json(self._stages_path(symbol), stages)
        logger.info("rolled %s stage %s back to %s/%s", symbol, stage, previous["model_type"], previous["version"])
        return self._load(symbol, previous["model_type"], previous["version"])

    # ---------------------------------------------------------------- reading

    def symbols(self) -> list[str]:
        return _subdirectory_names(self.root)

    def model_types(self, symbol: str) -> list[str]:
        return _subdirectory_names(self.root / symbol)

    def list_versions(self, symbol: str | None = None, model_type: str | None = None) -> list[ModelVersion]:
        """Every stored version (optionally of one symbol and/or type), sorted by symbol, type, version."""
        found = []
        for sym in [symbol] if symbol is not None else self.symbols():
            stages = self._read_stages(sym)
            for mt in [model_type] if model_type is not None else self.model_types(sym):
                found.extend(self._load(sym, mt, v, stages) for v in self._version_ids(sym, mt))
        return found

    def get(self, symbol: str, model_type: str | None = None, ref: str = "latest", *, verify: bool = True) -> ModelVersion:
        """Look up a version by `ref`: "latest", a stage name, or a version id such as "v0003".

        Without `model_type`, "latest" means latest across types and a version id
        must exist for exactly one type. The files are checked against the
        manifest unless `verify=False`.
        """
        self._require_symbol(symbol)
        if model_type is not None:
            self._require_model_type(symbol, model_type)
        if ref == "latest":
            found_type, version = self._latest(symbol, model_type)
        elif ref in STAGES:
            found_type, version = self._stage_holder(symbol, ref, model_type)
        elif _VERSION.fullmatch(ref):
            found_type, version = self._find_version(symbol, model_type, ref)
        else:
            raise RegistryError(f"{symbol}: ref {ref!r} is not 'latest', a stage {list(STAGES)} or a version id like 'v0003'")
        model = self._load(symbol, found_type, version)
        if verify:
            self.verify(model)
        return model

    def get_ref(self, ref: str, *, verify: bool = True) -> ModelVersion:
        """The version a reference "SYMBOL/model_type/vNNNN" (`ModelVersion.ref`) names."""
        parts = ref.split("/")
        if len(parts) != 3 or not _VERSION.fullmatch(parts[2]):
            raise RegistryError(f"{ref!r} is not a version reference like 'BTCUSDT/lstm/v0003'")
        symbol, model_type, version = parts
        return self.get(symbol, model_type, version, verify=verify)

    def has_stage(self, symbol: str, stage: str) -> bool:
        """Whether some version of `symbol` holds `stage`."""
        return bool(self._read_stages(symbol).get(stage, {}).get("current"))

    def resolve_for_serving(self, symbol: str) -> ModelVersion:
        """The production version of `symbol` if there is one, else its latest version."""
        self._require_symbol(symbol)
        stage = "production" if self.has_stage(symbol, "production") else "latest"
        return self.get(symbol, ref=stage)

    def verify(self, model: ModelVersion) -> None:
        """Check that every manifest file exists with its recorded SHA-256 and that nothing
        was added beside them (a version is immutable once published)."""
        problems = []
        for name, entry in model.metadata["files"].items():
            path = model.path / name
            if not path.is_file():
                problems.append(f"{name}: missing")
                continue
            digest = _sha256(path)
            if digest != entry["sha256"]:
                problems.append(f"{name}: corrupt (SHA-256 {digest[:12]}..., expected {entry['sha256'][:12]}...)")
        present = {path.relative_to(model.path).as_posix() for path in model.path.rglob("*") if path.is_file() or path.is_symlink()}
        for name in sorted(present - set(model.metadata["files"]) - {METADATA_FILE}):
            problems.append(f"{name}: not in the manifest (added after publishing; remove it)")
        if problems:
            raise RegistryError(f"{model.ref} at {model.path} failed verification: " + "; ".join(problems))

    def compare(self, symbol: str, refs: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
        """One row per version (all of `symbol`, or the (model_type, version) pairs in `refs`).

        A row holds model_type, version, stage, created_at, variant (an ensemble's
        method), target (its kind: log_return, price or direction), fit_seconds (None
        where not recorded), the flattened
        `metadata["metrics"]` (e.g. `lstm.h7.rmse_ratio`) and the flattened
        `metadata["validation_metrics"]` with a `val.` prefix.
        """
        self._require_symbol(symbol)
        if refs is None:
            models = self.list_versions(symbol)
        else:
            models = [self.get(symbol, model_type, version, verify=False) for model_type, version in refs]
        return [
            {
                "model_type": m.model_type,
                "version": m.version,
                "stage": m.stage,
                "created_at": m.created_at,
                "variant": m.metadata.get("variant") or m.metadata.get("method"),
                "target": m.metadata.get("target", "log_return"),
                "fit_seconds": m.metadata.get("fit_seconds"),
                **flatten_metrics(m.metadata.get("metrics", {})),
                **flatten_metrics({"val": m.metadata.get("validation_metrics", {})}),
            }
            for m in models
        ]

    # ---------------------------------------------------------------- internals

    def _version_dir(self, symbol: str, model_type: str, version: str) -> Path:
        return self.root / symbol / model_type / version

    def serving_signature(self, symbol: str) -> tuple:
        """Changes whenever what `symbol` serves may have changed (a new version, a promotion,
        a rollback, a rollout started or stopped): cheap enough to poll."""
        out = []
        for name in (_STAGES_FILE, _SYMBOL_POINTER, _ROLLOUT_FILE):
            try:
                stat = (self.root / symbol / name).stat()
                out.append((name, stat.st_mtime_ns, stat.st_size))
            except FileNotFoundError:
                out.append((name, None, None))
        return tuple(out)

    def read_rollout(self, symbol: str) -> dict | None:
        """The symbol's rollout (`challenger` ref, `mode`, `share`, `started_at`), or None."""
        path = self.root / symbol / _ROLLOUT_FILE
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise RegistryError(f"{path} is corrupt: {exc}") from exc

    def write_rollout(self, symbol: str, rollout: dict | None) -> None:
        """Start (or replace) the symbol's rollout, or stop it with None; written atomically."""
        self._require_symbol(symbol)
        with self._locked(symbol):
            path = self.root / symbol / _ROLLOUT_FILE
            if rollout is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write_json(path, rollout)

    def _stages_path(self, symbol: str) -> Path:
        return self.root / symbol / _STAGES_FILE

    @contextmanager
    def _locked(self, symbol: str) -> Iterator[None]:
        """Hold the exclusive lock of `symbol` (released when the file closes)."""
        with open(self.root / symbol / _LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            yield

    def _publish(self, symbol: str, model_type: str, build_dir: Path, metadata: dict[str, Any]) -> str:
        """Under the symbol lock: number the built version, move it into place, update pointers and "dev"."""
        (self.root / symbol).mkdir(exist_ok=True)
        with self._locked(symbol):
            stages = self._read_stages(symbol)
            version = _version_id(self._next_number(symbol, model_type))
            created_at = _utc_now()
            registry_fields = {"symbol": symbol, "model_type": model_type, "version": version, "created_at": created_at}
            _write_metadata(build_dir / METADATA_FILE, {**registry_fields, **metadata})
            final_dir = self._version_dir(symbol, model_type, version)
            final_dir.parent.mkdir(exist_ok=True)
            os.rename(build_dir, final_dir)
            _fsync_dir(final_dir.parent)
            pointer = {"model_type": model_type, "version": version, "created_at": created_at}
            atomic_write_json(final_dir.parent / _TYPE_POINTER, pointer)
            atomic_write_json(self.root / symbol / _SYMBOL_POINTER, pointer)
            _set_holder(stages, "dev", model_type, version)
            atomic_write_json(self._stages_path(symbol), stages)
        return version

    def _version_ids(self, symbol: str, model_type: str) -> list[str]:
        type_dir = self.root / symbol / model_type
        if not type_dir.is_dir():
            return []
        ids = [p.name for p in type_dir.iterdir() if p.is_dir() and _VERSION.fullmatch(p.name)]
        return sorted(ids, key=_version_number)

    def _next_number(self, symbol: str, model_type: str) -> int:
        ids = self._version_ids(symbol, model_type)
        return _version_number(ids[-1]) + 1 if ids else 1

    def _require_symbol(self, symbol: str) -> None:
        check_name("symbol", symbol)
        if not (self.root / symbol).is_dir():
            raise RegistryError(f"unknown symbol {symbol!r} in registry {self.root}; symbols: {self.symbols()}")

    def _require_model_type(self, symbol: str, model_type: str) -> None:
        check_name("model_type", model_type)
        if not (self.root / symbol / model_type).is_dir():
            raise RegistryError(f"{symbol}: unknown model type {model_type!r}; model types: {self.model_types(symbol)}")

    def _latest(self, symbol: str, model_type: str | None) -> tuple[str, str]:
        if model_type is None:
            pointer_path = self.root / symbol / _SYMBOL_POINTER
        else:
            pointer_path = self.root / symbol / model_type / _TYPE_POINTER
        if not pointer_path.is_file():
            raise RegistryError(f"{symbol}: latest pointer {pointer_path} is missing; versions: {self._inventory(symbol)}")
        pointer = _read_json(pointer_path)
        if not _is_holder(pointer):
            raise RegistryError(f"corrupt latest pointer {pointer_path}: expected model_type and version, found {pointer!r}")
        return pointer["model_type"], pointer["version"]

    def _stage_holder(self, symbol: str, stage: str, model_type: str | None) -> tuple[str, str]:
        stages = self._read_stages(symbol)
        holder = stages.get(stage, {}).get("current")
        if holder is None:
            held = {name: f"{e['current']['model_type']}/{e['current']['version']}" for name, e in stages.items() if e["current"]}
            raise RegistryError(f"{symbol}: no version is in stage {stage!r}; stages held: {held}")
        if model_type is not None and holder["model_type"] != model_type:
            raise RegistryError(f"{symbol}: stage {stage!r} holds {holder['model_type']}/{holder['version']}, not a {model_type} model")
        return holder["model_type"], holder["version"]

    def _find_version(self, symbol: str, model_type: str | None, version: str) -> tuple[str, str]:
        types = [model_type] if model_type is not None else self.model_types(symbol)
        matches = [mt for mt in types if version in self._version_ids(symbol, mt)]
        if not matches:
            raise RegistryError(f"{symbol}: no version {version!r}" + (f" of {model_type}" if model_type else "") + f"; versions: {self._inventory(symbol)}")
        if len(matches) > 1:
            raise RegistryError(f"{symbol}: version {version!r} exists for several model types {matches}; name the model type")
        return matches[0], version

    def _inventory(self, symbol: str) -> dict[str, list[str]]:
        return {mt: self._version_ids(symbol, mt) for mt in self.model_types(symbol)}

    def _load(self, symbol: str, model_type: str, version: str, stages: dict[str, Any] | None = None) -> ModelVersion:
        """One version; `stages` is the symbol's stages.json when the caller has read it already."""
        if not _VERSION.fullmatch(version):
            raise RegistryError(f"{symbol}/{model_type}: {version!r} is not a version id like 'v0003'")
        path = self._version_dir(symbol, model_type, version)
        if not path.is_dir():
            raise RegistryError(f"{symbol}/{model_type}/{version} does not exist; versions: {self._inventory(symbol)}")
        metadata = _read_json(path / METADATA_FILE)
        _check_metadata(path / METADATA_FILE, metadata, symbol, model_type, version)
        stages = self._read_stages(symbol) if stages is None else stages
        return ModelVersion(symbol, model_type, version, path, metadata, _stage_of(stages, model_type, version))

    def _read_stages(self, symbol: str) -> dict[str, Any]:
        path = self._stages_path(symbol)
        if not path.is_file():
            return {}
        stages = _read_json(path)
        _check_stages(path, stages)
        return stages


# -------------------------------------------------------------------- helpers


def flatten_metrics(nested: Mapping[str, Any], sep: str = ".") -> dict[str, Any]:
    """`{"lstm": {7: {"rmse_ratio": 0.9}}}` -> `{"lstm.h7.rmse_ratio": 0.9}`.

    Integer keys (and digit strings, which is what JSON makes of them) are
    horizons and get an `h` prefix; other keys are kept as they are.
    """
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"h{key}" if isinstance(key, int) or str(key).isdigit() else str(key)
        if isinstance(value, Mapping):
            flat.update({f"{name}{sep}{sub}": v for sub, v in flatten_metrics(value, sep).items()})
        else:
            flat[name] = value
    return flat


ROLLOUT_MODES = ("shadow", "canary")


def rollout_record(challenger_ref: str, mode: str, share: float) -> dict:
    """A validated rollout: shadow (the challenger is logged, never returned) or canary
    (`share` of request keys are answered by the challenger)."""
    if mode not in ROLLOUT_MODES:
        raise ValueError(f"--mode {mode!r} is not one of {list(ROLLOUT_MODES)}")
    if not 0.0 < share <= 1.0:
        raise ValueError(f"--share {share} must be in (0, 1]")
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"challenger": challenger_ref, "mode": mode, "share": float(share), "started_at": started}


def check_name(kind: str, name: str) -> None:
    """Refuse a name that cannot be a registry folder (symbols, model types)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise RegistryError(f"{kind} {name!r} is not a valid registry name: use letters, digits, '_' and '-' (e.g. 'BTCUSDT')")


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise RegistryError(f"stage {stage!r} is not one of {list(STAGES)}")


def _check_reserved_fields(metadata: Mapping[str, Any], symbol: str, model_type: str) -> None:
    """Callers may repeat symbol/model_type, but never contradict a field the registry owns."""
    allowed = {"symbol": symbol, "model_type": model_type}
    clashes = [k for k in REGISTRY_FIELDS if k in metadata and (k not in allowed or metadata[k] != allowed[k])]
    if clashes:
        raise RegistryError(f"{symbol}/{model_type}: metadata field(s) {clashes} are written by the registry; remove them")


def _version_id(number: int) -> str:
    return f"v{number:04d}"


def _version_number(version: str) -> int:
    return int(version[1:])


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _subdirectory_names(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and _NAME.fullmatch(p.name))


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _manifest(directory: Path) -> dict[str, dict[str, Any]]:
    """SHA-256 and size of every file under `directory`, each flushed to disk first."""
    files = {}
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            raise RegistryError(f"{path.relative_to(directory)} is a symbolic link; a model version must hold plain files")
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
            files[path.relative_to(directory).as_posix()] = {"sha256": digest, "bytes": path.stat().st_size}
    return files


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_metadata(path: Path, record: dict[str, Any]) -> None:
    try:
        atomic_write_json(path, record)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{record['symbol']}/{record['model_type']}: metadata is not JSON-serialisable: {exc}") from exc


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"corrupt {path}: not valid JSON ({exc})") from None


def _stage_of(stages: dict[str, Any], model_type: str, version: str) -> str | None:
    """The highest stage that `model_type`/`version` currently holds, if any."""
    held = [s for s in STAGES if _holds(stages.get(s, {}).get("current"), model_type, version)]
    return held[-1] if held else None


def _holds(holder: dict[str, Any] | None, model_type: str, version: str) -> bool:
    return holder is not None and (holder["model_type"], holder["version"]) == (model_type, version)


def _is_holder(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("model_type"), str) and isinstance(value.get("version"), str)


def _check_metadata(path: Path, metadata: Any, symbol: str, model_type: str, version: str) -> None:
    if not isinstance(metadata, dict):
        raise RegistryError(f"corrupt {path}: expected a JSON object, found {type(metadata).__name__}")
    missing = [k for k in REGISTRY_FIELDS if k not in metadata]
    if missing:
        raise RegistryError(f"corrupt {path}: missing field(s) {missing}")
    expected = {"symbol": symbol, "model_type": model_type, "version": version}
    wrong = {k: metadata[k] for k, v in expected.items() if metadata[k] != v}
    if wrong:
        raise RegistryError(f"corrupt {path}: {wrong} does not match its location {symbol}/{model_type}/{version}")
    files = metadata["files"]
    if not isinstance(files, dict) or not all(isinstance(e, dict) and isinstance(e.get("sha256"), str) for e in files.values()):
        raise RegistryError(f"corrupt {path}: 'files' must map each file name to its sha256")


def _check_stages(path: Path, stages: Any) -> None:
    if not isinstance(stages, dict):
        raise RegistryError(f"corrupt {path}: expected a JSON object of stages, found {type(stages).__name__}")
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise RegistryError(f"corrupt {path}: unknown stage(s) {unknown}; stages are {list(STAGES)}")
    for name, entry in stages.items():
        valid = (
            isinstance(entry, dict)
            and (entry.get("current") is None or _is_holder(entry["current"]))
            and isinstance(entry.get("history"), list)
            and all(_is_holder(h) for h in entry["history"])
        )
        if not valid:
            raise RegistryError(f"corrupt {path}: stage {name!r} must hold 'current' (model_type, version) and a 'history' list")


def _set_holder(stages: dict[str, Any], stage: str, model_type: str, version: str) -> bool:
    """Make (model_type, version) the holder of `stage`; returns False if it already was."""
    entry = stages.setdefault(stage, {"current": None, "history": []})
    current = entry["current"]
    if _holds(current, model_type, version):
        return False
    if current is not None:
        entry["history"].append(current)
    entry["current"] = {"model_type": model_type, "version": version, "since": _utc_now()}
    return True
