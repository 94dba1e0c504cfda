"""Static matplotlib figures like the seed article's: contours, the training path, 3-D surface.

Each function draws into ``ax`` when given and returns the Axes; without ``ax`` it makes its
own :class:`matplotlib.figure.Figure` (no pyplot, no global "current figure": safe from
threads). In a notebook, show a new figure with ``display(ax.figure)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .surface import Line, Surface


def _new_axes(projection: str | None = None, figsize: tuple[float, float] = (5.0, 4.0)) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained").add_subplot(projection=projection)


def contour_levels(
    z: np.ndarray, levels: int = 20, log: bool | None = None
) -> tuple[np.ndarray, bool]:
    """Contour levels over the finite values of ``z``: log-spaced like the seed's when all are
    positive (``log=None`` decides), else linear. Returns ``(levels, is_log)``."""
    finite = z[np.isfinite(z)]
    lo, hi = float(finite.min()), float(finite.max())
    use_log = (lo > 0) if log is None else (log and lo > 0)
    if hi <= lo:
        hi = lo + (abs(lo) * 1e-6 or 1e-12)
    if use_log:
        return np.exp(np.linspace(np.log(lo), np.log(hi), levels)), True
    return np.linspace(lo, hi, levels), False


def _mark_anchors(ax: Any, metadata: dict, two_d: bool) -> None:
    anchors = (metadata.get("directions") or {}).get("anchors") or {}
    for name, pos in anchors.items():
        if two_d and len(pos) == 2:
            ax.plot(pos[0], pos[1], "k^", ms=6)
            ax.annotate(name, pos, textcoords="offset points", xytext=(4, 4), fontsize=8)
        elif not two_d and len(pos) == 1:
            ax.axvline(pos[0], color="0.6", lw=0.8, ls="--")


def plot_contour(
    surface: Surface,
    ax: Any = None,
    levels: int = 20,
    log: bool | None = None,
    cmap: str = "viridis",
    clabel: bool = True,
    mark_nonfinite: bool = True,
    title: str | None = "The Loss Surface",
) -> Any:
    """Contour lines of the loss (``surface.loss[iy, ix]`` over ``xs`` x ``ys``).

    Levels are log-spaced between the smallest and largest finite loss (the seed's recipe)
    when all losses are positive, with inline labels. Missing cells are left blank;
    computed cells whose loss was NaN/inf are marked with red crosses.
    """
    from matplotlib.colors import LogNorm

    ax = _new_axes() if ax is None else ax
    surface = surface.ascending()  # any evaluation order; contours and limits need ascending
    z = np.ma.masked_invalid(surface.loss)
    if np.isfinite(surface.loss).sum() >= 4 and len(surface.xs) > 1 and len(surface.ys) > 1:
        lv, is_log = contour_levels(surface.loss, levels, log)
        norm = LogNorm(vmin=lv[0], vmax=lv[-1] * 2.0) if is_log else None
        cs = ax.contour(surface.xs, surface.ys, z, levels=lv, cmap=cmap, norm=norm)
        if clabel and len(cs.levels):
            ax.clabel(cs, inline=True, fontsize=8, fmt="%1.2f")
    if mark_nonfinite:
        iy, ix = np.nonzero(surface.nonfinite)
        if len(iy):
            ax.plot(surface.xs[ix], surface.ys[iy], "rx", ms=5, label="non-finite loss")
            ax.legend(loc="upper right", fontsize=8)
    _mark_anchors(ax, surface.metadata, two_d=True)
    if len(surface.xs) > 1 and len(surface.ys) > 1:
        ax.set_xlim(surface.xs[0], surface.xs[-1])
        ax.set_ylim(surface.ys[0], surface.ys[-1])
    if title:
        ax.set_title(title)
    return ax


def plot_path(
    coords: np.ndarray,
    ax: Any = None,
    steps: np.ndarray | None = None,
    cmap: str = "cividis",
    end: int | None = None,
    s: float = 4.0,
) -> Any:
    """The training path in plane coordinates, each point coloured by its step (the seed's
    ``plot_training_path``). ``coords`` (n, 2) from :func:`project_path`; ``steps`` the
    colour values (default 0..n-1); ``end`` the top of the colour scale."""
    from matplotlib.colors import Normalize

    coords = np.asarray(coords, float)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords must have shape (n, 2), got {coords.shape}.")
    ax = _new_axes() if ax is None else ax
    colors = np.arange(len(coords)) if steps is None else np.asarray(steps)
    top = (colors.max() if len(colors) else 1) if end is None else end
    ax.scatter(coords[:, 0], coords[:, 1], s=s, c=colors, cmap=cmap, norm=Normalize(0, top))
    if len(coords):
        ax.plot(coords[-1, 0], coords[-1, 1], "o", mfc="none", mec="k", ms=6)
    return ax


def plot_surface(
    surface: Surface,
    ax: Any = None,
    cmap: str = "viridis",
    log: bool = False,
    title: str | None = "The Loss Surface",
) -> Any:
    """A 3-D surface of the loss (``log`` plots log10 of it). ``ax`` must be a 3-D Axes."""
    ax = _new_axes("3d", (6.0, 5.0)) if ax is None else ax
    if not hasattr(ax, "plot_surface"):
        raise ValueError("plot_surface needs a 3-D Axes: fig.add_subplot(projection='3d').")
    surface = surface.ascending()
    z = np.array(surface.loss, dtype=float)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(z > 0, np.log10(z), np.nan)
    X, Y = np.meshgrid(surface.xs, surface.ys)  # noqa: N806
    if np.isfinite(z).any():
        ax.plot_surface(X, Y, np.ma.masked_invalid(z), cmap=cmap, linewidth=0, antialiased=True)
    ax.set_xlabel("a")
    ax.set_ylabel("b")
    ax.set_zlabel("log10 loss" if log else "loss")
    if title:
        ax.set_title(title)
    return ax


def plot_line(line: Line, ax: Any = None, title: str | None = None) -> Any:
    """A 1-D loss profile, with a +-1 standard-error band when a subset was used."""
    ax = _new_axes() if ax is None else ax
    ax.plot(line.ts, line.loss, "-", color="C0", label=line.metadata.get("loss", "loss"))
    if line.stderr is not None:
        ax.fill_between(
            line.ts, line.loss - line.stderr, line.loss + line.stderr, color="C0", alpha=0.25, lw=0
        )
    bad = ~np.isfinite(line.loss)
    if bad.any():
        ax.plot(line.ts[bad], np.zeros(bad.sum()), "rx", label="non-finite loss")
    _mark_anchors(ax, line.metadata, two_d=False)
    ax.set_xlabel("t")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    return ax
