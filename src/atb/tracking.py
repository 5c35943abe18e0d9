"""MLflow run tracking that becomes a no-op when disabled or when MLflow is not installed.

By default runs go to a local SQLite store, `sqlite:///<local_dir>/mlflow.db`,
with artifacts under `<local_dir>/artifacts`; `MLFLOW_TRACKING_URI` or an
explicit URI points elsewhere. A store that cannot be opened stops the run
before any training starts (`TrackingError`, one line naming the URI); a logging
call that fails later is logged as a warning and skipped, so a tracking hiccup
never throws away a trained model. A run left by an interrupt ends KILLED; one
whose process was killed outright (SIGKILL) is marked KILLED by the next run of
its experiment on the same host.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Callable
from urllib.parse import urlparse

from atb.processes import owner, owner_exited, uninterrupted
from atb.registry import flatten_metrics

logger = logging.getLogger(__name__)

# MLflow reads these when it is imported; a user's own setting wins.
_QUIET_ENVIRONMENT = {"MLFLOW_DISABLE_TELEMETRY": "true"}
_LOCAL_SCHEMES = ("", "file", "sqlite")
_SCHEMES = (*_LOCAL_SCHEMES, "http", "https", "postgresql", "mysql", "mssql", "databricks")
_OWNER_TAG = "atb.owner"


class TrackingError(ValueError):
    """The tracking store cannot be used; the message names the URI and the remedy."""


def check_tracking_uri(uri: str) -> None:
    """Refuse a URI MLflow cannot store runs at: an unknown scheme, or a local store in a
    folder that cannot be written."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+")[0]
    if scheme not in _SCHEMES:
        raise TrackingError(f"tracking URI {uri!r}: scheme {parsed.scheme!r} is not one of {list(_SCHEMES)}; fix --tracking-uri or use --no-mlflow")
    if scheme in ("sqlite", "file") and parsed.path:
        folder = Path(parsed.path).parent if scheme == "sqlite" else Path(parsed.path)
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
            raise TrackingError(f"tracking URI {uri!r}: {existing or folder} is not a writable folder; fix --tracking-uri or use --no-mlflow")

_INVALID_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def default_tracking_uri(local_dir: str | Path = Path("mlruns")) -> str:
    """`MLFLOW_TRACKING_URI` if set, else a SQLite store inside `local_dir`."""
    from_environment = os.environ.get("MLFLOW_TRACKING_URI")
    if from_environment:
        return from_environment
    return f"sqlite:///{Path(local_dir).resolve() / 'mlflow.db'}"


class Tracker:
    """One MLflow run, used as `with Tracker(...) as tracker:`.

    When `enabled` is False or MLflow cannot be imported, every method does
    nothing and `run_id` is None. Leaving the block through an exception ends
    the run with status FAILED, otherwise FINISHED.
    """

    def __init__(
        self,
        enabled: bool = True,
        tracking_uri: str | None = None,
        experiment: str = "atb",
        run_name: str | None = None,
        local_dir: str | Path = Path("mlruns"),
    ) -> None:
        self.enabled = enabled
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.local_dir = Path(local_dir)
        self._client: Any = None
        self._run_id: str | None = None
        self._errors: tuple[type[BaseException], ...] = ()
        self._state = "new"

    @property
    def run_id(self) -> str | None:
        return self._run_id

    def __enter__(self) -> Tracker:
        if self._state == "running":
            raise RuntimeError(f"tracker for run {self._run_id} is already running")
        if not self.enabled:
            self._turn_off("tracking is disabled")
            return self
        for name, value in _QUIET_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        try:
            import mlflow
        except ImportError as exc:
            self._turn_off(f"MLflow cannot be imported ({exc})")
            return self
        uri = self.tracking_uri or default_tracking_uri(self.local_dir)
        check_tracking_uri(uri)
        self._errors = (mlflow.MlflowException, OSError)
        try:
            if _is_local(uri):
                self.local_dir.mkdir(parents=True, exist_ok=True)
            self._client = mlflow.MlflowClient(tracking_uri=uri)
            experiment_id = self._experiment_id(uri)
            self._mark_abandoned_runs(experiment_id)
            run = self._client.create_run(experiment_id, run_name=self.run_name, tags={_OWNER_TAG: owner()})
        except Exception as exc:  # MLflow raises many kinds; each means "this store cannot be used"
            raise TrackingError(f"MLflow tracking at {uri!r} cannot be used: {type(exc).__name__}: {str(exc).splitlines()[0]}; fix --tracking-uri or use --no-mlflow") from exc
        self._run_id = run.info.run_id
        self._state = "running"
        logger.info("MLflow run %s in experiment %r at %s", self._run_id, self.experiment, uri)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._state != "running":
            return
        interrupted = exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, SystemExit))
        status = "FINISHED" if exc_type is None else "KILLED" if interrupted else "FAILED"
        self._state = "ended"
        self._safely("end the run", self._client.set_terminated, self._run_id, status)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters: nested dicts are flattened, lists stringified, long values truncated."""
        if not self._running():
            return
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

        entries = [Param(_key(k), _as_text(v)[:MAX_PARAM_VAL_LENGTH]) for k, v in flatten_metrics(params).items()]
        self._safely("log params", self._client.log_batch, self._run_id, params=entries, synchronous=True)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numbers under flattened names such as `lstm.h7.rmse_ratio`; None, NaN and inf are skipped."""
        if not self._running():
            return
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        entries = []
        for name, value in flatten_metrics(metrics).items():
            number = _finite_number(value)
            if number is None:
                logger.debug("metric %s=%r is not a finite number; not logged", name, value)
                continue
            entries.append(Metric(_key(name), number, timestamp, step or 0))
        if entries:
            self._safely("log metrics", self._client.log_batch, self._run_id, metrics=entries, synchronous=True)

    def log_epoch(self, metrics: Mapping[str, Any], step: int) -> None:
        """Log one epoch's metrics (losses, learning rate) at `step`, building their history."""
        self.log_metrics(metrics, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self._running():
            self._safely(f"log artifact {path}", self._client.log_artifact, self._run_id, str(path), artifact_path)

    def log_artifacts(self, directory: str | Path, artifact_path: str | None = None) -> None:
        if self._running():
            self._safely(f"log artifacts of {directory}", self._client.log_artifacts, self._run_id, str(directory), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self._running():
            return
        from mlflow.entities import RunTag
        from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

        entries = [RunTag(_key(k), _as_text(v)[:MAX_TAG_VAL_LENGTH]) for k, v in tags.items()]
        self._safely("set tags", self._client.log_batch, self._run_id, tags=entries, synchronous=True)

    # ---------------------------------------------------------------- internals

    def _turn_off(self, reason: str) -> None:
        self._state = "off"
        logger.info("MLflow tracking off: %s", reason)

    def _running(self) -> bool:
        """True inside a live run, False when tracking is off; misuse is an error."""
        if not self.enabled or self._state == "off":
            return False
        if self._state != "running":
            raise RuntimeError(f"Tracker is {self._state}: log inside `with Tracker(...) as tracker:`")
        return True

    def _experiment_id(self, uri: str) -> str:
        """Find or create the experiment; a new local one keeps artifacts under `local_dir/artifacts`."""
        experiment = self._client.get_experiment_by_name(self.experiment)
        if experiment is None:
            location = (self.local_dir.resolve() / "artifacts").as_uri() if _is_local(uri) else None
            try:
                return self._client.create_experiment(self.experiment, artifact_location=location)
            except self._errors:
                experiment = self._client.get_experiment_by_name(self.experiment)  # made meanwhile by another run
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            logger.info("restoring deleted MLflow experiment %r", self.experiment)
            self._client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def _mark_abandoned_runs(self, experiment_id: str) -> None:
        """End as KILLED the RUNNING runs whose owning process on this host has exited."""
        for run in self._client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=100):
            if owner_exited(run.data.tags.get(_OWNER_TAG, "")):
                logger.warning("MLflow run %s was left running by a process that exited; marked KILLED", run.info.run_id)
                self._safely("end an abandoned run", self._client.set_terminated, run.info.run_id, "KILLED")

    def _safely(self, action: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            with uninterrupted():
                call(*args, **kwargs)
        except self._errors as exc:
            logger.warning("MLflow could not %s for run %s: %s", action, self._run_id, exc)


def _is_local(uri: str) -> bool:
    return urlparse(uri).scheme in _LOCAL_SCHEMES


def _key(name: Any) -> str:
    """An MLflow-valid param/metric/tag name (other characters become '_')."""
    return _INVALID_KEY_CHARS.sub("_", str(name))


def _as_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), default=str)
    return str(value)


def _finite_number(value: Any) -> float | None:
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
