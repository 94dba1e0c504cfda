"""Iso-lines of a (possibly partial) loss grid as plain arrays, for plotting libraries without a
contour mark (bqplot).

:func:`contour_lines` runs contourpy (``ChunkCombinedNan``: one polyline per level, pieces
separated by NaN) and packs every level into one NaN-padded rectangular pair of arrays
``(n_levels, max_len)``, which a single bqplot ``Lines`` mark draws (it breaks lines at NaN).
Missing cells (NaN) are masked, so contours cover only what has been computed so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .coords import ascending
from .plot import contour_levels

SCALES = ("log", "linear")
MIN_FINITE_CELLS = 4  # fewer finite cells than this give no meaningful iso-line


@dataclass
class ContourLines:
    """Iso-lines: row ``k`` of ``x``/``y`` is level ``levels[k]`` (NaN-padded, NaN-separated)."""

    x: np.ndarray  # (n_levels, max_len) float64
    y: np.ndarray
    levels: np.ndarray  # (n_levels,)
    log: bool  # whether the levels are log-spaced

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    def segments(self, k: int) -> list[np.ndarray]:
        """The pieces of level ``k`` as (m, 2) arrays (NaN separators and padding removed)."""
        xy = np.stack([self.x[k], self.y[k]], axis=1)
        pieces = (p[~np.isnan(p[:, 0])] for p in np.split(xy, np.nonzero(np.isnan(xy[:, 0]))[0]))
        return [p for p in pieces if len(p)]

    @classmethod
    def empty(cls, log: bool = False) -> ContourLines:
        return cls(np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0), log)


def choose_levels(z: np.ndarray, n_levels: int = 20, scale: str = "log") -> tuple[np.ndarray, bool]:
    """``n_levels`` levels between the smallest and largest finite value of ``z``.

    ``"log"`` spaces them geometrically like the seed article (falls back to linear when a
    value is <= 0); ``"linear"`` evenly. Returns ``(levels, is_log)``; no levels when ``z`` has
    no finite value.
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}.")
    if int(n_levels) < 1:
        raise ValueError(f"n_levels must be >= 1, got {n_levels}.")
    if not np.isfinite(z).any():
        return np.zeros(0), scale == "log"
    return contour_levels(np.asarray(z, float), int(n_levels), log=scale == "log")


def contour_lines(
    xs: np.ndarray, ys: np.ndarray, z: np.ndarray, levels: int | np.ndarray = 20, scale: str = "log"
) -> ContourLines:
    """Iso-lines of ``z[iy, ix]`` over ``(xs[ix], ys[iy])`` as NaN-padded arrays.

    ``levels``: a count (chosen by :func:`choose_levels` from the finite cells) or explicit
    values. NaN cells are masked. With fewer than :data:`MIN_FINITE_CELLS` finite cells, or a
    grid thinner than 2x2, there are no lines. Levels that cross nothing are dropped.
    """
    import contourpy

    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    z = np.asarray(z, float)
    if z.shape != (len(ys), len(xs)):
        raise ValueError(
            f"z must have shape (len(ys), len(xs)) = ({len(ys)}, {len(xs)}), got {z.shape}."
        )
    xs, ys, (z,) = ascending(xs, ys, z)
    if np.ndim(levels) == 0:
        lv, is_log = choose_levels(z, int(levels), scale)
    else:
        lv, is_log = np.asarray(levels, float), scale == "log"
    finite = np.isfinite(z)
    if len(xs) < 2 or len(ys) < 2 or finite.sum() < MIN_FINITE_CELLS or not len(lv):
        return ContourLines.empty(is_log)
    gen = contourpy.contour_generator(
        xs, ys, np.ma.masked_array(z, ~finite), line_type="ChunkCombinedNan"
    )
    rows, kept = [], []
    for level in lv:
        pieces = [p for p in gen.lines(float(level))[0] if p is not None and len(p)]
        if pieces:
            rows.append(
                np.concatenate([np.concatenate([p, np.full((1, 2), np.nan)]) for p in pieces])[:-1]
            )
            kept.append(level)
    if not rows:
        return ContourLines.empty(is_log)
    width = max(len(r) for r in rows)
    x = np.full((len(rows), width), np.nan)
    y = np.full((len(rows), width), np.nan)
    for k, r in enumerate(rows):
        x[k, : len(r)], y[k, : len(r)] = r[:, 0], r[:, 1]
    return ContourLines(x, y, np.asarray(kept, float), is_log)


def bilinear(
    xs: np.ndarray, ys: np.ndarray, z: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """``z`` interpolated bilinearly at points ``(a[i], b[i])``; NaN outside the grid or next
    to a missing cell (used to lift a training path onto a 3-D surface)."""
    xs, ys, (z,) = ascending(xs, ys, np.asarray(z, float))
    a, b = np.asarray(a, float).reshape(-1), np.asarray(b, float).reshape(-1)
    out = np.full(len(a), np.nan)
    if len(xs) < 2 or len(ys) < 2 or not len(a):
        return out
    inside = (a >= xs[0]) & (a <= xs[-1]) & (b >= ys[0]) & (b <= ys[-1])
    ix = np.clip(np.searchsorted(xs, a, side="right") - 1, 0, len(xs) - 2)
    iy = np.clip(np.searchsorted(ys, b, side="right") - 1, 0, len(ys) - 2)
    tx = (a - xs[ix]) / (xs[ix + 1] - xs[ix])
    ty = (b - ys[iy]) / (ys[iy + 1] - ys[iy])
    v = (
        (1 - tx) * (1 - ty) * z[iy, ix]
        + tx * (1 - ty) * z[iy, ix + 1]
        + (1 - tx) * ty * z[iy + 1, ix]
        + tx * ty * z[iy + 1, ix + 1]
    )
    out[inside] = v[inside]
    return out
