"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def load_average() -> str:
    """The machine's load average, printed beside timings: other processes make them noisy."""
    try:
        return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "load average n/a"


def interleaved_rates(
    runners: dict[str, Callable[[int], object]], steps: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """Best (wall-clock steps/s, steps per CPU-second of this process) of each runner over
    ``repeats`` runs, interleaved so that load from other processes hits all runners alike
    (the best run is the least disturbed, as ``timeit`` does). CPU time barely depends on
    other processes' load: with ``--threads 1`` it estimates an idle machine's wall time."""
    wall: dict[str, list[float]] = {k: [] for k in runners}
    cpu: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(repeats):
        for name, go in runners.items():
            t0, c0 = time.perf_counter(), time.process_time()
            go(steps)
            wall[name].append(steps / (time.perf_counter() - t0))
            cpu[name].append(steps / max(time.process_time() - c0, 1e-9))
    return {k: (max(wall[k]), max(cpu[k])) for k in runners}
