"""Round axis ticks, one rule for every nbviz plot (the 2-D landscape, the optvis curve, the
3-D surface): at most a few ticks at 1, 2, 2.5 or 5 times a power of ten."""

from __future__ import annotations

import numpy as np

__all__ = ["nice_ticks"]


def nice_ticks(lo: float, hi: float, at_most: int) -> np.ndarray:
    """At most ``at_most`` ticks in ``[lo, hi]`` at a round step (1, 2, 2.5 or 5 times a power
    of ten), exactly 0 when the range holds it: d3's own choice crowds a 300 px axis (16
    labels for -1.5..1.5) and bqplot's ``num_ticks`` splits the range evenly (``-1e-16``)."""
    lo, hi = float(min(lo, hi)), float(max(lo, hi))
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 0:
        return np.asarray([lo])
    raw = (hi - lo) / max(at_most - 1, 1)
    power = 10.0 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw * (1 - 1e-9))
    ticks = np.arange(np.ceil(lo / step - 1e-9), np.floor(hi / step + 1e-9) + 1) * step
    return np.round(ticks / step) * step + 0.0  # exact multiples; + 0.0 turns -0.0 into 0.0
