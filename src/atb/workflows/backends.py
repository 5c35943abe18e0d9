"""Where independent jobs run: one after another in this process (`local`), or as Ray tasks
(`ray`) on a local Ray started on demand or on an existing cluster (`address`).

A job is a picklable value and a module-level function of it; what comes back is an
`Outcome` per job, in order: its value, or the error that ended it (one job failing does not
stop the others). Ray moves jobs and small results between processes; anything large a job
makes goes to the registry, which every worker reaches through the same path.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atb.config import TrainingConfig

logger = logging.getLogger(__name__)

WORKER_DEATH_RETRIES = 2  # Ray runs a task again when its worker process dies; an exception is never retried


@dataclass
class Outcome:
    """A job's value, or why it failed (`error`: the exception's type and message)."""

    value: Any = None
    error: str | None = None


@dataclass(frozen=True)
class RayResources:
    """Where Ray runs and what each task declares."""

    address: str | None = None  # None: start a local Ray for this run (and stop it after)
    cpus: int = 1
    gpus: float = 0.0

    @classmethod
    def of(cls, config: TrainingConfig) -> RayResources:
        """The config's cluster and CPUs per task, and a GPU per task when fits run on CUDA."""
        compute = config.compute
        return cls(compute.ray_address, compute.ray_cpus, 1.0 if config.fit.device == "cuda" else 0.0)


def task_threads(config: TrainingConfig) -> int:
    """CPU threads of a fit inside a Ray task: the config's own, else the CPUs each task declares."""
    return config.fit.threads or config.compute.ray_cpus


def run_local(function: Callable[..., Any], jobs: Sequence[Any], **shared: Any) -> list[Outcome]:
    """`function(job, **shared)` for each job, in order, in this process."""
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(Outcome(value=function(job, **shared)))
        except Exception as exc:  # one job's failure is reported, the others run
            logger.debug("job %r failed:\n%s", job, traceback.format_exc())
            outcomes.append(Outcome(error=f"{type(exc).__name__}: {exc}"))
    return outcomes


@contextlib.contextmanager
def ray_session(resources: RayResources) -> Iterator[None]:
    """Ray for the block: the one already running, or one started here on `resources.address`
    (a local Ray when None) and stopped at the end."""
    import ray  # loaded only for --backend ray

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=resources.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        if started_here:
            ray.shutdown()


def run_ray(function: Callable[[Any], Any], jobs: Sequence[Any], resources: RayResources,
            on_done: Callable[[int, Outcome], None] = lambda index, outcome: None) -> list[Outcome]:
    """`function(job)` for each job as a Ray task declaring `resources`; `on_done(index, outcome)`
    as each finishes. A task whose worker dies (killed, out of memory, node lost) runs again, up
    to WORKER_DEATH_RETRIES times; one that raises, or keeps dying, is an error of that job only."""
    import ray

    with ray_session(resources):
        task = ray.remote(function).options(num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=WORKER_DEATH_RETRIES)
        pending = {task.remote(job): index for index, job in enumerate(jobs)}
        outcomes: list[Outcome | None] = [None] * len(jobs)
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(ready)
            try:
                outcomes[index] = Outcome(value=ray.get(ready))
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if exc.cause is not None else exc
                outcomes[index] = Outcome(error=f"{type(cause).__name__}: {cause}")
            except ray.exceptions.RayError as exc:  # the worker kept dying, the node was lost, ...
                outcomes[index] = Outcome(error=f"{type(exc).__name__}: {exc}")
            on_done(index, outcomes[index])
        return outcomes
