"""Tests for the versioned model registry."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
from pathlib import Path

import pytest

from atb.registry import ModelRegistry, RegistryError, flatten_metrics

SYMBOL = "BTCUSDT"


def _writer(payload: str):
    """A populate callback writing a weights file, a scaler and a nested plot."""

    def populate(directory: Path) -> None:
        (directory / "weights.bin").write_bytes(payload.encode() * 10)
        (directory / "scaler.json").write_text(json.dumps({"payload": payload}))
        (directory / "plots").mkdir()
        (directory / "plots" / "forecast.txt").write_text(payload)

    return populate


def _create(registry: ModelRegistry, model_type: str, payload: str, **metadata):
    return registry.create_version(SYMBOL, model_type, _writer(payload), metadata)


def _create_versions(root: str, writer: int, count: int, barrier) -> None:
    """Worker for the two-process test: create `count` versions as fast as possible."""
    registry = ModelRegistry(Path(root))
    barrier.wait()
    for i in range(count):
        registry.create_version(SYMBOL, "lstm", _writer(f"w{writer}-{i}"), {"writer": writer, "index": i})


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "models")


def test_create_list_get_verify(registry: ModelRegistry) -> None:
    first = _create(registry, "lstm", "a", metrics={"lstm": {1: {"rmse": 2.0}}})
    second = _create(registry, "lstm", "b")
    light = _create(registry, "lightgbm", "c")

    assert (first.version, second.version, light.version) == ("v0001", "v0002", "v0001")
    assert second.path == registry.root / SYMBOL / "lstm" / "v0002"
    assert (second.path / "plots" / "forecast.txt").read_text() == "b"
    meta = first.metadata
    assert (meta["symbol"], meta["model_type"], meta["version"]) == (SYMBOL, "lstm", "v0001")
    assert meta["created_at"].endswith("+00:00")
    assert meta["metrics"] == {"lstm": {"1": {"rmse": 2.0}}}
    assert sorted(meta["files"]) == ["plots/forecast.txt", "scaler.json", "weights.bin"]

    listed = registry.list_versions()
    assert [(m.model_type, m.version) for m in listed] == [("lightgbm", "v0001"), ("lstm", "v0001"), ("lstm", "v0002")]
    assert [m.version for m in registry.list_versions(SYMBOL, "lstm")] == ["v0001", "v0002"]
    assert registry.list_versions("ETHUSDT") == []

    assert registry.get(SYMBOL).ref == f"{SYMBOL}/lightgbm/v0001"
    assert registry.get(SYMBOL, "lstm").version == "v0002"
    assert registry.get(SYMBOL, "lstm", "v0001").metadata == first.metadata
    assert registry.get(SYMBOL, ref="v0002").model_type == "lstm"
    assert registry.get(SYMBOL, ref="dev").ref == light.ref
    registry.verify(second)


def test_new_version_takes_dev_stage(registry: ModelRegistry) -> None:
    _create(registry, "lstm", "a")
    _create(registry, "lstm", "b")
    stages = {m.version: m.stage for m in registry.list_versions(SYMBOL, "lstm")}
    assert stages == {"v0001": None, "v0002": "dev"}
    assert registry.rollback(SYMBOL, "dev").version == "v0001"


def test_get_unknown_names_what_exists(registry: ModelRegistry) -> None:
    _create(registry, "lstm", "a")
    _create(registry, "lightgbm", "b")
    with pytest.raises(RegistryError, match=r"unknown symbol 'ETHUSDT'.*\['BTCUSDT'\]"):
        registry.get("ETHUSDT")
    with pytest.raises(RegistryError, match=r"unknown model type 'tcn'.*\['lightgbm', 'lstm'\]"):
        registry.get(SYMBOL, "tcn")
    with pytest.raises(RegistryError, match=r"no version 'v0009' of lstm.*'lstm': \['v0001'\]"):
        registry.get(SYMBOL, "lstm", "v0009")
    with pytest.raises(RegistryError, match="several model types"):
        registry.get(SYMBOL, ref="v0001")
    with pytest.raises(RegistryError, match="no version is in stage 'production'"):
        registry.get(SYMBOL, ref="production")
    with pytest.raises(RegistryError, match="'newest' is not 'latest', a stage"):
        registry.get(SYMBOL, ref="newest")


def test_invalid_names_and_metadata_are_refused(registry: ModelRegistry) -> None:
    with pytest.raises(RegistryError, match="'BTC/USDT' is not a valid registry name"):
        registry.create_version("BTC/USDT", "lstm", _writer("a"), {})
    with pytest.raises(RegistryError, match="'..' is not a valid registry name"):
        registry.get("..")
    with pytest.raises(RegistryError, match=r"\['version'\] are written by the registry"):
        registry.create_version(SYMBOL, "lstm", _writer("a"), {"version": "v0042"})
    with pytest.raises(RegistryError, match="not JSON-serialisable"):
        registry.create_version(SYMBOL, "lstm", _writer("a"), {"callback": print})
    with pytest.raises(RegistryError, match="populate wrote metadata.json"):
        registry.create_version(SYMBOL, "lstm", lambda d: (d / "metadata.json").write_text("{}"), {})
    assert registry.list_versions() == []
    assert list((registry.root / ".staging").iterdir()) == []


def _killed_mid_build(root: str) -> None:
    """Worker: dies by SIGKILL while its version is being written (no cleanup can run)."""

    def populate(directory: Path) -> None:
        (directory / "weights.bin").write_bytes(b"partial")
        os.kill(os.getpid(), signal.SIGKILL)

    ModelRegistry(Path(root)).create_version(SYMBOL, "lstm", populate, {})


def test_build_left_by_a_killed_process_is_removed_by_the_next_build(registry: ModelRegistry) -> None:
    worker = multiprocessing.get_context("spawn").Process(target=_killed_mid_build, args=(str(registry.root),))
    worker.start()
    worker.join(60)
    assert worker.exitcode == -signal.SIGKILL
    staging = registry.root / ".staging"
    [abandoned] = staging.iterdir()
    assert (abandoned / "weights.bin").read_bytes() == b"partial"
    host = socket.gethostname().replace(".", "-")
    running = staging / f"{host}.{os.getpid()}~{SYMBOL}-lstm-live"  # a build of a process still running
    elsewhere = staging / f"otherhost.{worker.pid}~{SYMBOL}-lstm-remote"  # another host's: cannot be checked
    unknown = staging / "not-a-build"
    for directory in (running, elsewhere, unknown):
        directory.mkdir()

    _create(registry, "lstm", "a")

    assert sorted(staging.iterdir()) == sorted([running, elsewhere, unknown])
    assert [m.version for m in registry.list_versions()] == ["v0001"]


def test_metadata_may_repeat_symbol_and_type(registry: ModelRegistry) -> None:
    version = registry.create_version(SYMBOL, "lstm", _writer("a"), {"symbol": SYMBOL, "model_type": "lstm", "seed": 1})
    assert version.metadata["seed"] == 1


def test_failing_populate_leaves_nothing(registry: ModelRegistry) -> None:
    kept = _create(registry, "lstm", "a")

    def broken(directory: Path) -> None:
        (directory / "weights.bin").write_bytes(b"partial")
        raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError, match="training diverged"):
        registry.create_version(SYMBOL, "lstm", broken, {})

    assert [m.version for m in registry.list_versions()] == ["v0001"]
    assert list((registry.root / ".staging").iterdir()) == []
    assert registry.get(SYMBOL, "lstm").ref == kept.ref
    assert registry.get(SYMBOL).ref == kept.ref
    assert _create(registry, "lstm", "b").version == "v0002"


def test_two_processes_writing_at_once_keep_every_version(registry: ModelRegistry) -> None:
    per_writer = 6
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_create_versions, args=(str(registry.root), w, per_writer, barrier)) for w in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]

    versions = registry.list_versions(SYMBOL, "lstm")
    assert [m.version for m in versions] == [f"v{i:04d}" for i in range(1, 2 * per_writer + 1)]
    written = {(m.metadata["writer"], m.metadata["index"]) for m in versions}
    assert written == {(w, i) for w in range(2) for i in range(per_writer)}
    for model in versions:
        registry.verify(model)
        payload = f"w{model.metadata['writer']}-{model.metadata['index']}"
        assert (model.path / "plots" / "forecast.txt").read_text() == payload
    latest = registry.get(SYMBOL, "lstm")
    assert latest.version == f"v{2 * per_writer:04d}"
    assert registry.get(SYMBOL).ref == latest.ref
    assert registry.get(SYMBOL, ref="dev").ref == latest.ref
    assert list((registry.root / ".staging").iterdir()) == []


def test_promote_and_rollback_round_trip(registry: ModelRegistry) -> None:
    old = _create(registry, "lstm", "a")
    new = _create(registry, "lightgbm", "b")
    assert registry.resolve_for_serving(SYMBOL).ref == new.ref

    assert registry.promote(SYMBOL, "lstm", "v0001", "production").stage == "production"
    assert registry.resolve_for_serving(SYMBOL).ref == old.ref
    registry.promote(SYMBOL, "lightgbm", "v0001", "production")
    assert registry.get(SYMBOL, ref="production").ref == new.ref
    assert registry.get(SYMBOL, "lstm", "v0001").stage is None

    restored = registry.rollback(SYMBOL, "production")
    assert restored.ref == old.ref and restored.stage == "production"
    assert registry.resolve_for_serving(SYMBOL).ref == old.ref
    assert registry.get(SYMBOL, "lightgbm").stage == "dev"
    with pytest.raises(RegistryError, match="stage 'production' has no earlier holder"):
        registry.rollback(SYMBOL, "production")
    with pytest.raises(RegistryError, match="stage 'live' is not one of"):
        registry.promote(SYMBOL, "lstm", "v0001", "live")
    with pytest.raises(RegistryError, match="stage 'production' holds lstm/v0001, not a lightgbm model"):
        registry.get(SYMBOL, "lightgbm", "production")


def test_promote_refuses_corrupt_version(registry: ModelRegistry) -> None:
    version = _create(registry, "lstm", "a")
    (version.path / "weights.bin").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="weights.bin: corrupt"):
        registry.promote(SYMBOL, "lstm", "v0001", "production")
    assert registry.get(SYMBOL, "lstm", verify=False).stage == "dev"


def test_corrupt_file_is_named(registry: ModelRegistry) -> None:
    version = _create(registry, "lstm", "a")
    data = bytearray((version.path / "weights.bin").read_bytes())
    data[3] ^= 0xFF
    (version.path / "weights.bin").write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=r"BTCUSDT/lstm/v0001 .* weights.bin: corrupt \(SHA-256"):
        registry.get(SYMBOL, "lstm")
    assert registry.get(SYMBOL, "lstm", verify=False).version == "v0001"


def test_missing_file_is_named(registry: ModelRegistry) -> None:
    version = _create(registry, "lstm", "a")
    (version.path / "plots" / "forecast.txt").unlink()
    with pytest.raises(RegistryError, match="plots/forecast.txt: missing"):
        registry.verify(version)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"), ('{"symbol": "BTCUSDT"}', "missing field")],
)
def test_corrupt_metadata_is_reported(registry: ModelRegistry, content: str, message: str) -> None:
    version = _create(registry, "lstm", "a")
    (version.path / "metadata.json").write_text(content)
    with pytest.raises(RegistryError, match=rf"corrupt .*v0001/metadata.json: {message}"):
        registry.get(SYMBOL, "lstm")


def test_metadata_from_another_location_is_reported(registry: ModelRegistry) -> None:
    first = _create(registry, "lstm", "a")
    second = _create(registry, "lstm", "b")
    (second.path / "metadata.json").write_bytes((first.path / "metadata.json").read_bytes())
    with pytest.raises(RegistryError, match=r"\{'version': 'v0001'\} does not match its location"):
        registry.get(SYMBOL, "lstm", "v0002")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("garbage", "not valid JSON"),
        ('{"live": {"current": null, "history": []}}', r"unknown stage\(s\) \['live'\]"),
        ('{"dev": {"current": "v0001", "history": []}}', "stage 'dev' must hold"),
    ],
)
def test_corrupt_stages_file_is_reported(registry: ModelRegistry, content: str, message: str) -> None:
    _create(registry, "lstm", "a")
    (registry.root / SYMBOL / "stages.json").write_text(content)
    with pytest.raises(RegistryError, match=rf"corrupt .*stages.json: {message}"):
        registry.get(SYMBOL, "lstm")
    with pytest.raises(RegistryError, match="stages.json"):
        registry.promote(SYMBOL, "lstm", "v0001", "production")
    with pytest.raises(RegistryError, match="stages.json"):
        _create(registry, "lstm", "b")
    assert [p.name for p in (registry.root / SYMBOL / "lstm").iterdir() if p.is_dir()] == ["v0001"]
    assert list((registry.root / ".staging").iterdir()) == []


def test_corrupt_latest_pointer_is_reported(registry: ModelRegistry) -> None:
    _create(registry, "lstm", "a")
    (registry.root / SYMBOL / "lstm" / "latest").write_text('{"version": 3}')
    with pytest.raises(RegistryError, match="corrupt latest pointer .*lstm/latest"):
        registry.get(SYMBOL, "lstm")


def test_compare_flattens_metrics(registry: ModelRegistry) -> None:
    _create(registry, "lstm", "a", metrics={"lstm": {1: {"rmse_ratio": 0.98}, 7: {"rmse_ratio": 1.01}}})
    _create(registry, "lightgbm", "b", metrics={"lightgbm": {"1": {"rmse_ratio": 0.97}}, "fit_seconds": 3.5})
    registry.promote(SYMBOL, "lstm", "v0001", "staging")

    rows = registry.compare(SYMBOL)
    assert [(r["model_type"], r["version"], r["stage"]) for r in rows] == [("lightgbm", "v0001", "dev"), ("lstm", "v0001", "staging")]
    assert rows[0]["lightgbm.h1.rmse_ratio"] == 0.97 and rows[0]["fit_seconds"] == 3.5
    assert rows[1]["lstm.h7.rmse_ratio"] == 1.01 and "created_at" in rows[1]
    _create(registry, "tcn", "c", metrics={"tcn": {1: {"rmse_ratio": 1.0}}}, validation_metrics={"tcn": {1: {"rmse_ratio": 0.99}}})
    assert registry.compare(SYMBOL)[-1]["val.tcn.h1.rmse_ratio"] == 0.99
    only = registry.compare(SYMBOL, [("lstm", "v0001")])
    assert [r["model_type"] for r in only] == ["lstm"]
    with pytest.raises(RegistryError, match="unknown symbol"):
        registry.compare("ETHUSDT")


def test_flatten_metrics_names() -> None:
    nested = {"ensemble": {30: {"mase": 0.9, "da": 0.55}}, "note": "x", "fold": {"a": 1}}
    assert flatten_metrics(nested) == {"ensemble.h30.mase": 0.9, "ensemble.h30.da": 0.55, "note": "x", "fold.a": 1}
    assert flatten_metrics({"lstm": {"7": {"rmse": 1}}}, sep="/") == {"lstm/h7/rmse": 1}


def test_a_file_added_to_a_published_version_is_refused(tmp_path):
    registry = ModelRegistry(tmp_path)
    version = registry.create_version("BTCUSDT", "lstm", lambda d: (d / "weights.bin").write_bytes(b"w"), metadata={})
    (version.path / "planted.pkl").write_bytes(b"x")
    with pytest.raises(RegistryError, match=r"planted.pkl: not in the manifest"):
        registry.get("BTCUSDT", "lstm", "v0001")


def test_version_folders_follow_the_umask_not_0700(tmp_path):
    previous = os.umask(0o022)
    try:
        version = ModelRegistry(tmp_path).create_version("BTCUSDT", "lstm", lambda d: (d / "weights.bin").write_bytes(b"w"), metadata={})
    finally:
        os.umask(previous)
    assert version.path.stat().st_mode & 0o777 == 0o755
