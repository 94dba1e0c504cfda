"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import os


def load_average() -> str:
    """The machine's load average, printed beside timings: other processes make them noisy."""
    try:
        return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "load average n/a"
