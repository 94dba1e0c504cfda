"""Which plane (or line) to look at: directions by kind, the path in it, and its grid.

The landscape widget (:class:`~nbviz.widgets.LossLandscapeWidget`) and the training watcher
(:class:`~.watch.LandscapeWatcher`) both turn a few settings into a plane: directions of a
kind (``"pca"``, ``"random"``, ``"hessian"``, ``"interpolation"`` or given ones), the
training path projected onto them, and grid coordinates (a fixed extent, or one fitted to
the path). They plan it here, with one :class:`PlanePlanner`, so the two cannot drift apart.

Planning has two halves, because of threads. :func:`plane_request` runs on the thread that
owns the model (the kernel's): everything read from the model or the path (weights, the
path matrix, random or interpolation directions) is copied into a frozen
:class:`PlaneRequest`, so that a later ``fit`` cannot race with the background work.
:meth:`PlanePlanner.plane` then runs on a worker thread and does the slow part (PCA of the
path, Lanczos for Hessian directions) from the request alone; :meth:`PlanePlanner.frames`
goes on to evaluate the grid or line there. This module imports no widget.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import NbvizError, PathError
from .coords import grid_coords
from .curvature import hessian_directions
from .directions import Directions, interpolation_directions, random_directions
from .evaluator import prepare_for_background
from .grid import evaluate_line, iter_grid
from .path import WeightPathRecorder, as_path_matrix, project_path
from .pca import pca_directions
from .surface import GridUpdate, Line
from .weights import WeightLayout, snapshot_weights

__all__ = [
    "GridSpec",
    "Plane",
    "PlanePlanner",
    "PlaneRequest",
    "ResumeGrid",
    "auto_extent",
    "plane_request",
    "thin_rows",
]

PATH_MARGIN = 1.3  # the automatic extent of PCA grids: the path's extent times this
PCA_MAX_SNAPSHOTS = 96  # live PCA of an evenly thinned path: the plane barely moves, the cost does
HESSIAN_SUBSET = 256  # examples the Hessian directions are computed on when the grid uses all
NO_PATH_HELP = (
    "directions='pca' needs a training path. Fix: record one with "
    "nbviz.landscape.WeightPathRecorder during fit and pass path=recorder, use widget.watch() "
    "as a fit callback, or choose directions='random'."
)


def thin_rows(n: int, most: int) -> np.ndarray:
    """At most ``most`` evenly spaced row indices of ``n``, always the first and the last."""
    if n <= most:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, most).round().astype(np.int64))


def auto_extent(coords: np.ndarray | None, kind: str) -> float:
    """Half-width of a grid that shows the whole path (PCA) or 1.0 (normalized random)."""
    if kind != "pca" or coords is None or not len(coords):
        return 1.0
    reach = float(np.max(np.abs(coords)))
    return max(PATH_MARGIN * reach, 1e-3)


@dataclass(frozen=True)
class GridSpec:
    """The grid of a plane: ``resolution`` points per axis over ``[-extent, extent]``,
    ``"linear"`` or ``"cubed"`` spacing; ``extent=None`` fits PCA grids to the path and gives
    other directions 1.0."""

    resolution: int = 21
    extent: float | None = None
    spacing: str = "linear"

    def extent_for(self, coords: np.ndarray | None, kind: str) -> float:
        """The half-width for a plane of ``kind`` with the path at ``coords``."""
        return self.extent if self.extent is not None else auto_extent(coords, kind)

    def axis(self, coords: np.ndarray | None, kind: str) -> np.ndarray:
        """The coordinates of both axes of a square grid."""
        return grid_coords(self.resolution, self.extent_for(coords, kind), self.spacing)

    def line(self, kind: str) -> np.ndarray:
        """The points of a 1-D line: interpolation lines reach past both ends (``[-0.5, 1.5]``,
        or ``extent`` beyond each), other lines span ``[-extent, extent]``."""
        if kind == "interpolation":
            if self.extent is None:
                return np.linspace(-0.5, 1.5, self.resolution)
            return np.linspace(-self.extent, 1.0 + self.extent, self.resolution)
        return grid_coords(self.resolution, self.extent or 1.0, self.spacing)


@dataclass(frozen=True)
class ResumeGrid:
    """A surface file whose missing cells a computation resumes, and its grid."""

    file: str
    xs: np.ndarray
    ys: np.ndarray


@dataclass(frozen=True, eq=False)
class PlaneRequest:
    """Everything the background half of planning needs, read on the model's thread.

    ``directions`` are set when they are cheap and read the weights (random, interpolation,
    given); PCA and Hessian directions are computed later from ``path`` / ``origin``.
    """

    kind: str  # "pca", "random", "hessian", "interpolation" or "custom"
    n: int  # 1 (a line) or 2 (a plane)
    grid: GridSpec
    subset: int | None = None  # examples of a seeded subset (None: all)
    seed: int = 0
    order: str = "coarse_to_fine"
    path: np.ndarray | None = None  # (n_snapshots, n_params) training path
    steps: np.ndarray | None = None  # the path's step numbers
    directions: Directions | None = None
    origin: list[np.ndarray] | None = None  # Hessian directions: the weights when asked
    resume: ResumeGrid | None = None

    @property
    def is_line(self) -> bool:
        """True for a 1-D line."""
        return self.n == 1


@dataclass(eq=False)
class Plane:
    """Planned directions with the training path in their plane (the widget's first frame)."""

    directions: Directions
    coords: np.ndarray | None  # (n, 2) path coordinates, None without a path or for a line
    steps: np.ndarray | None
    residual: np.ndarray | None  # the path's relative distance off the plane


def plane_request(
    model: Any,
    kind: str,
    *,
    n: int,
    grid: GridSpec,
    path: Any = None,
    other: Any = None,
    given: Directions | None = None,
    seed: int = 0,
    subset: int | None = None,
    order: str = "coarse_to_fine",
    resume: ResumeGrid | None = None,
) -> PlaneRequest:
    """A :class:`PlaneRequest` for directions of ``kind`` (``n`` of them); call it on the
    thread that owns ``model`` (it reads the weights and the path, and prepares the model's
    forward pass for a background thread). Raises an nbviz error when the settings cannot
    work (PCA without a path, interpolation as a plane, too few given directions)."""
    matrix = steps = directions = origin = None
    if path is not None:
        matrix = as_path_matrix(path, WeightLayout.from_model(model))
        steps = path.steps if isinstance(path, WeightPathRecorder) else np.arange(len(matrix))
    if kind == "pca":
        if matrix is None:
            raise PathError(NO_PATH_HELP)
    elif kind == "random":
        directions = random_directions(model, n=n, seed=seed)
    elif kind == "hessian":
        origin = snapshot_weights(model)
    elif kind == "interpolation":
        if n != 1:
            raise NbvizError("Interpolation is a line: switch to 1-D mode (mode='1d').")
        directions = interpolation_directions(model, other)
    elif kind == "custom":
        if given is None:
            raise NbvizError("No directions were given. Fix: choose 'pca' or 'random'.")
        if given.n < n:
            raise NbvizError(
                f"The given directions have {given.n} direction(s); "
                f"{'1-D' if n == 1 else '2-D'} mode needs {n}."
            )
        directions = given
    prepare_for_background(model)  # on the model's thread, before a worker runs
    return PlaneRequest(
        kind, n, grid, subset, seed, order, matrix, steps, directions, origin, resume
    )


class PlanePlanner:
    """Plans planes for one model and data set (the data only matter for Hessian directions).

    ``loss`` and ``regularization`` are those the landscape is computed with.
    """

    def __init__(
        self, model: Any, x: Any, y: Any, *, loss: Any = None, regularization: bool = True
    ) -> None:
        self.model, self.x, self.y = model, x, y
        self.loss = loss
        self.regularization = bool(regularization)

    def directions(
        self,
        kind: str,
        *,
        n: int = 2,
        path: np.ndarray | None = None,
        origin: list[np.ndarray] | None = None,
        seed: int = 0,
        subset: int | None = None,
        stop_event: threading.Event | None = None,
        live: bool = False,
    ) -> Directions:
        """Directions of ``kind`` around ``origin`` (default the model's weights).

        ``"pca"``: the axes of ``path`` (plotted around its last row); ``live`` (a path still
        being recorded) thins it to :data:`PCA_MAX_SNAPSHOTS` and falls back to random
        directions until the weights have moved in two independent directions (marked
        ``metadata["instead_of"] = "pca"``, so that views say so). ``"hessian"``:
        the top eigenvectors on ``subset`` examples. ``"random"``: seeded, filter-normalized.
        """
        if kind == "hessian":
            return hessian_directions(
                self.model,
                self.x,
                self.y,
                n=n,
                loss=self.loss,
                subset=subset,
                seed=seed,
                origin=origin,
                regularization=self.regularization,
                stop_event=stop_event,
            )
        if kind == "pca" and path is not None and not live:
            return pca_directions(path, self.model, n_components=n)
        if kind == "pca" and path is not None and len(path) >= 3:
            rows = thin_rows(len(path), PCA_MAX_SNAPSHOTS)
            try:
                return pca_directions(path[rows], self.model, n_components=n)
            except PathError:  # the weights have not moved in 2 independent directions yet
                pass
        if kind not in ("pca", "random"):
            raise NbvizError(
                f"Directions of kind {kind!r} cannot be planned here; "
                "use 'pca', 'random' or 'hessian'."
            )
        dirs = random_directions(self.model, n=n, seed=seed, origin=origin)
        if kind == "pca":  # a live PCA plane before the path allows one: say so on the axes
            dirs.metadata["instead_of"] = "pca"
        return dirs

    def plane(self, request: PlaneRequest, stop_event: threading.Event | None = None) -> Plane:
        """The directions of ``request`` (the slow part of PCA and Hessian runs here), at most
        two for a plane, with the path projected onto them."""
        dirs = request.directions
        if dirs is None:
            subset = (request.subset or HESSIAN_SUBSET) if request.kind == "hessian" else None
            dirs = self.directions(
                request.kind,
                n=request.n,
                path=request.path,
                origin=request.origin,
                seed=request.seed,
                subset=subset,
                stop_event=stop_event,
            )
        if not request.is_line and dirs.n > 2:
            dirs = Directions(
                dirs.vectors[:2],
                dirs.origin,
                dirs.layout,
                dirs.kind,
                dirs.seed,
                dirs.normalization,
                dirs.explained_variance,
                dirs.metadata,
            )
        coords = residual = None
        if request.path is not None and dirs.n == 2:
            coords, residual = project_path(request.path, dirs)
        return Plane(dirs, coords, request.steps, residual)

    @staticmethod
    def grid(request: PlaneRequest, plane: Plane) -> tuple[np.ndarray, np.ndarray, str | None]:
        """``(xs, ys, store)`` of a 2-D grid: a resumed file's grid and path (given directions
        only), or a square grid over the request's extent."""
        resume = request.resume
        if resume is not None and request.kind == "custom":
            return resume.xs, resume.ys, resume.file
        xs = request.grid.axis(plane.coords, plane.directions.kind)
        return xs, xs, None

    def frames(
        self,
        request: PlaneRequest,
        *,
        stop_event: threading.Event | None = None,
        max_chunk: int = 256,
        executor: Any = None,
    ) -> Iterator[Plane | GridUpdate | Line]:
        """Plan ``request`` and evaluate it: yields the :class:`Plane` first, then every
        :class:`~.surface.GridUpdate` of the grid (evaluated on ``executor`` when given), or
        the finished :class:`~.surface.Line`. Stops early when ``stop_event`` is set."""
        plane = self.plane(request, stop_event)
        yield plane
        kw = {"loss": self.loss, "subset": request.subset, "seed": request.seed,
              "stop_event": stop_event, "max_chunk": max_chunk,
              "regularization": self.regularization}  # fmt: skip
        if request.is_line:
            ts = request.grid.line(plane.directions.kind)
            yield evaluate_line(self.model, self.x, self.y, plane.directions, ts, **kw)
            return
        xs, ys, store = self.grid(request, plane)
        yield from iter_grid(
            self.model,
            self.x,
            self.y,
            plane.directions,
            xs,
            ys,
            order=request.order,
            store=store,
            executor=executor,
            **kw,
        )
