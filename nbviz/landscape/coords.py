"""Grid coordinates and the order in which cells are computed."""

from __future__ import annotations

import numpy as np

SPACINGS = ("linear", "cubed")
ORDERS = ("raster", "coarse_to_fine")


def grid_coords(
    n: int, extent: float | tuple[float, float] = 1.0, spacing: str = "linear"
) -> np.ndarray:
    """``n`` coordinates over ``[-extent, extent]`` (or ``(lo, hi)``).

    ``"linear"``: evenly spaced; an odd ``n`` includes 0. ``"cubed"``: the seed article's
    ``linspace(-1, 1, n)**3 * extent``, dense near the centre (only for a symmetric extent;
    an odd ``n`` includes 0, an even one never does).
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"A grid needs n >= 1 points, got {n}.")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}.")
    if isinstance(extent, (int, float, np.integer, np.floating)):
        lo, hi = -float(extent), float(extent)
    else:
        lo, hi = map(float, extent)
    if not hi > lo and n > 1:
        raise ValueError(f"The grid's extent must satisfy lo < hi, got ({lo}, {hi}).")
    if n == 1:
        return np.array([(lo + hi) / 2.0])
    t = np.linspace(-1.0, 1.0, n)
    if spacing == "cubed":
        if not np.isclose(lo, -hi):
            raise ValueError("Cubed spacing needs a symmetric extent (-r, r); pass a number.")
        return t**3 * hi
    if n % 2:
        t[n // 2] = 0.0  # exactly, not 1e-17
    return lo + (t + 1.0) * (hi - lo) / 2.0


def _level(i: np.ndarray, n: int) -> np.ndarray:
    """Coarseness of index ``i``: the power of two dividing it (ends count as coarsest)."""
    big = 1 << 30
    lv = np.where(i == 0, big, i & -i)
    return np.where(i == n - 1, big, lv)


def cell_order(ny: int, nx: int, order: str = "raster") -> np.ndarray:
    """Flat indices (``iy * nx + ix``) of all cells in computing order.

    ``"raster"``: row by row. ``"coarse_to_fine"``: first the corners and a coarse subgrid
    (indices divisible by large powers of two), then ever finer ones, so an early stop still
    covers the whole plane.
    """
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}.")
    flat = np.arange(ny * nx)
    if order == "raster":
        return flat
    iy, ix = np.divmod(flat, nx)
    level = np.minimum(_level(iy, ny), _level(ix, nx))
    return flat[np.argsort(-level, kind="stable")]


def ascending(
    xs: np.ndarray, ys: np.ndarray, *grids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """``xs`` and ``ys`` sorted ascending, and each ``grid[iy, ix]`` permuted to match (the
    inputs themselves when already ascending). Contour tracing, interpolation and axis limits
    assume ascending coordinates; a grid may be evaluated in any order."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    ox, oy = np.argsort(xs, kind="stable"), np.argsort(ys, kind="stable")
    if np.all(np.diff(ox) > 0) and np.all(np.diff(oy) > 0):
        return xs, ys, list(grids)
    return xs[ox], ys[oy], [None if g is None else np.asarray(g)[np.ix_(oy, ox)] for g in grids]
