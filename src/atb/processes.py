"""Which process owns a folder or a run, and whether it still lives: what lets the next
run remove what a killed one left behind (build and scratch folders, RUNNING MLflow runs);
and how a SIGTERM ends a run (as an exit, never in the middle of a tracking write).

An owner is `{host}.{pid}`; only owners on this host are ever judged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

OWNER_END = "~"  # owned folder names: "{host}.{pid}~{rest}"
SCRATCH_PREFIX = "atb-"
_blocks = threading.local()  # per thread: depth of uninterrupted() blocks, the signal they hold back


def exit_on_signal(signum: int, frame: object) -> None:
    """The CLI's SIGTERM handler: unwind like an exit (temporary folders removed, an MLflow run
    ended KILLED), at once, or inside `uninterrupted()` when that block ends."""
    if getattr(_blocks, "depth", 0):
        _blocks.held = signum
        return
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A block a SIGTERM does not cut in two (a write to the tracking store, which an exit raised
    inside it could leave locked): the exit waits for the block's end."""
    _blocks.depth = getattr(_blocks, "depth", 0) + 1
    try:
        yield
    finally:
        _blocks.depth -= 1
        held = getattr(_blocks, "held", None)
        if not _blocks.depth and held is not None:
            _blocks.held = None
            raise SystemExit(128 + held)


def host() -> str:
    """This machine's name with only letters, digits and '-' (no '.' or '~')."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())


def owner() -> str:
    """`{host}.{pid}` of this process."""
    return f"{host()}.{os.getpid()}"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def owner_exited(owner_name: str) -> bool:
    """True when `owner_name` is a process of this host that has exited."""
    owner_host, _, pid = owner_name.rpartition(".")
    return owner_host == host() and pid.isdigit() and not process_alive(int(pid))


def remove_abandoned(directory: Path, prefix: str = "") -> None:
    """Delete the folders `{prefix}{owner}~...` in `directory` whose owner has exited."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if not path.name.startswith(prefix):
            continue
        owner_name, separator, _ = path.name[len(prefix) :].partition(OWNER_END)
        if separator and path.is_dir() and owner_exited(owner_name):
            logger.warning("removing %s, left by a process that exited", path)
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def scratch_directory(purpose: str) -> Iterator[Path]:
    """A temporary folder owned by this process, removed on exit; folders a killed run
    left in the temp directory are swept first."""
    root = Path(tempfile.gettempdir())
    remove_abandoned(root, SCRATCH_PREFIX)
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{owner()}{OWNER_END}{purpose}-") as path:
        yield Path(path)
