"""Each test process gets its share of the CPU cores: with N processes (pytest-xdist `-n N`) on C
cores, C // N threads for torch and LightGBM, through OMP_NUM_THREADS (which both read, as do the
CLI subprocesses the tests start). More threads than cores makes OpenMP spin: two LightGBM fits
side by side on two cores took 24 s each with two threads apiece, 13.5 s with one. An
OMP_NUM_THREADS already set wins."""

import os


def pytest_configure(config):
    """Runs in the controlling process before it starts the test processes, which inherit the variable."""
    processes = getattr(config.option, "numprocesses", None) or 1
    cores = len(os.sched_getaffinity(0))  # the cores this process may run on, not the machine's
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, cores // processes)))
