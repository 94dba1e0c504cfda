"""Watch the loss landscape while a model trains: a Keras callback plus a background recompute.

:class:`LandscapeWatcher` is a :class:`~.path.WeightPathRecorder` (it records the weights every
``k`` batches) that also

- every ``path_interval_s`` seconds hands the path, projected onto the current directions, to
  ``on_path`` (called on the training thread, inside ``fit``: keep it cheap);
- every ``recompute_s`` seconds (or ``recompute_every`` batches) starts a landscape recompute
  on a background :class:`~nbviz.worker.Worker`: directions around the *latest snapshot* (PCA
  of the path so far, or fixed-seed random directions renormalized to the snapshot), then
  :func:`~.grid.iter_grid` on a fixed, seeded data subset; the finished surface goes to
  ``on_surface``. A recompute that is due while one runs is skipped (latest wins), and the
  recompute is paused long enough that it uses at most ``max_duty`` of the wall time, so
  training is slowed as little as possible;
- at the end of training, computes the landscape around the final weights.

The background thread only ever sees numpy copies of the weights (the recorder's snapshots):
the model object is used for its structure and its stateless forward pass, never read or
written while ``fit`` updates it. Training results are identical with and without it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..worker import JobContext, LatestRequestLoop, Worker
from .data import checked_subset
from .directions import Directions
from .evaluator import prepare_for_background
from .grid import iter_grid
from .path import WeightPathRecorder, project_path
from .planes import PATH_MARGIN, PCA_MAX_SNAPSHOTS, GridSpec, PlanePlanner, auto_extent, thin_rows
from .surface import Surface
from .weights import WeightLayout, snapshot_weights

__all__ = [
    "LandscapeWatcher",
    "PathFrame",
    "SurfaceFrame",
    "auto_extent",
    "thin_rows",
    "PATH_MARGIN",
    "PCA_MAX_SNAPSHOTS",
]

WATCH_DIRECTIONS = ("pca", "random", "hessian")


@dataclass
class PathFrame:
    """The path so far, in the plane of ``directions`` (None before the first recompute)."""

    steps: np.ndarray  # global batch number of every snapshot
    coords: np.ndarray | None  # (n, 2) plane coordinates, or None without directions
    directions: Directions | None
    batch: int  # batches trained so far


@dataclass
class SurfaceFrame:
    """A landscape recomputed around a snapshot (possibly partial while it is computed)."""

    surface: Surface
    directions: Directions
    path: PathFrame  # the path projected onto these directions
    step: int  # the step of the snapshot used as origin
    done: int
    total: int
    elapsed_s: float  # since the recompute started (planning the directions included)
    final: bool = False  # computed around the weights at the end of training
    info: dict[str, Any] = field(default_factory=dict)
    eta_s: float | None = None  # seconds left, from the finished chunks' rate (None: unknown)

    def describe(self, recomputes: int) -> str:
        """One line for a status bar: which landscape, around which weights, how long."""
        where = "final weights" if self.final else f"step {self.step}"
        n = self.surface.metadata.get("n_examples", "?")
        kind = self.directions.kind
        if self.directions.metadata.get("instead_of") == "pca":
            kind = "PCA once the path has 3 snapshots; random until then"
        if self.done < self.total:
            return (
                f"live: computing landscape #{recomputes + 1} around {where} ({kind}, "
                f"{n} examples): {self.done}/{self.total} cells, {self.elapsed_s:.1f} s"
            )
        return (
            f"live: landscape #{recomputes} around {where} ({kind}, "
            f"{n} examples, {self.elapsed_s:.1f} s)"
        )


class LandscapeWatcher(WeightPathRecorder):
    """A Keras callback that records the path and recomputes the landscape in the background.

    Parameters
    ----------
    x, y:
        Data the landscape is computed on; a seeded subset of ``subset`` examples is taken
        once (``None``: all).
    directions:
        ``"pca"`` (axes of the path so far around its mean, plotted around the latest
        snapshot; random directions are used until the path has 3 snapshots), ``"random"``
        (filter-normalized, ``seed``) or ``"hessian"`` (the top-2 Hessian eigenvectors at the
        latest snapshot, on the subset; see :func:`~.curvature.hessian_directions`).
    resolution, extent, spacing:
        The grid: ``resolution`` x ``resolution`` points over ``[-extent, extent]``;
        ``extent=None`` fits PCA grids to the path and gives random ones 1.0.
    every_k_batches, memory_budget_mb, overflow:
        Path recording, see :class:`WeightPathRecorder`. Reading the weights costs about as
        much as a training step of a small MLP, hence every 4th batch by default.
    recompute_s, recompute_every:
        Recompute at most every ``recompute_s`` seconds, or every ``recompute_every`` batches
        when given (both: whichever comes later).
    max_duty:
        Fraction of wall time the recompute may use: after a recompute that took ``t``
        seconds the next waits at least ``t * (1 - max_duty) / max_duty``.
    path_interval_s:
        Seconds between ``on_path`` calls.
    on_path, on_surface, on_error, on_busy:
        ``on_path(PathFrame)`` on the training thread; ``on_surface(SurfaceFrame)``,
        ``on_error(exc, traceback)`` and ``on_busy(running)`` (True when a recompute starts,
        False when it ended) on background threads. Set traits only.
    loss, seed, order:
        The loss (default the model's), the seed of random directions and of the subset, and
        the grid's computing order.
    jit_compile:
        XLA for the grid function. Off by default: for the small grids and subsets of a watch,
        compiling with XLA costs more CPU (taken from training) than it saves.
    regularization:
        Include the model's regularization losses (default, as ``model.evaluate``).
    """

    def __init__(
        self,
        x: Any,
        y: Any,
        *,
        directions: str = "pca",
        resolution: int = 21,
        extent: float | None = None,
        spacing: str = "linear",
        subset: int | None = 256,
        every_k_batches: int = 4,
        recompute_s: float = 2.0,
        recompute_every: int | None = None,
        max_duty: float = 0.15,
        path_interval_s: float = 0.25,
        memory_budget_mb: float = 256.0,
        overflow: str = "thin",
        loss: Any = None,
        seed: int = 0,
        order: str = "coarse_to_fine",
        jit_compile: bool = False,
        regularization: bool = True,
        on_path: Callable[[PathFrame], None] | None = None,
        on_surface: Callable[[SurfaceFrame], None] | None = None,
        on_error: Callable[[BaseException, str], None] | None = None,
        on_busy: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__(
            every_k_batches=every_k_batches, memory_budget_mb=memory_budget_mb, overflow=overflow
        )
        if directions not in WATCH_DIRECTIONS:
            raise ValueError(
                f"directions must be one of {WATCH_DIRECTIONS} while watching, got {directions!r}."
            )
        if not 0.0 < max_duty <= 1.0:
            raise ValueError(f"max_duty must be in (0, 1], got {max_duty}.")
        self.x, self.y = x, y
        self.kind = directions
        self.resolution = int(resolution)
        self.extent = extent
        self.spacing = spacing
        self.subset = subset
        self.recompute_s = float(recompute_s)
        self.recompute_every = recompute_every
        self.max_duty = float(max_duty)
        self.path_interval_s = float(path_interval_s)
        self.loss = loss
        self.seed = int(seed)
        self.order = order
        self.jit_compile = jit_compile
        self.regularization = bool(regularization)
        self.on_path = on_path
        self.on_surface = on_surface
        self.on_error = on_error
        self.on_busy = on_busy
        self.recomputes = 0  # finished recomputes
        self.recompute_seconds: list[float] = []
        self.last: SurfaceFrame | None = None
        self.error: BaseException | None = None
        self._state = threading.Lock()
        self._dirs: Directions | None = None
        self._coords = np.zeros((0, 2))
        self._gen = -1
        self._next_recompute = 0.0
        self._last_recompute_batch = -(10**9)
        self._next_path = 0.0
        self._data: tuple[Any, Any] | None = None
        self.companions: list[Any] = []
        self._worker = Worker(
            on_frame=self._deliver, on_error=self._error, max_fps=8.0, name="nbviz-watch"
        )
        self._requests = LatestRequestLoop(self._worker, self._recompute_request)

    # -- Keras hooks -------------------------------------------------------------------------
    def set_model(self, model: Any) -> None:
        super().set_model(model)
        if self._data is None:
            x, y, _, _ = checked_subset(model, self.x, self.y, self.subset, self.seed)
            self._data = (x, y)
        for c in self.companions:
            c.set_model(model)

    def set_params(self, params: dict) -> None:
        super().set_params(params)
        for c in self.companions:
            c.set_params(params)

    def attach(self, callback: Any) -> None:
        """Drive another callback (e.g. a :class:`~.sharpness.SharpnessTracker`) from this
        one's training hooks, so that one object passed to ``fit`` does both; it is waited
        for and closed with this one."""
        self.companions.append(callback)

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        prepare_for_background(self.model)  # on the training thread, before any step
        self._publish_path(force=True)
        if self._dirs is None:
            self._request(final=False)
        for c in self.companions:
            c.on_train_begin(logs)

    # Work at the start of a batch, like the recorder: defining on_train_batch_end would make
    # Keras wait for every step's logs (it turns off asynchronous callback dispatch).
    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        super().on_train_batch_begin(batch, logs)
        now = time.monotonic()
        if now >= self._next_path:
            self._publish_path()
        if self._due(now):
            self._request(final=False)
        for c in self.companions:
            c.on_train_batch_begin(batch, logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        super().on_train_end(logs)
        self._publish_path(force=True)
        self._request(final=True)
        for c in self.companions:
            c.on_train_end(logs)

    # -- control -----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a recompute runs or is queued."""
        return self._requests.active or self._worker.running

    def wait(self, timeout: float | None = 60.0) -> bool:
        """Block until no recompute is running or queued. Returns True if idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not self._requests.active and self._worker.join(0.01):
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                return all(c.wait(left) for c in self.companions if hasattr(c, "wait"))
            if deadline is not None and time.monotonic() > deadline:
                return False
            self._worker.join(0.02)

    def stop(self, timeout: float = 10.0) -> bool:
        """Cancel the running recompute and drop any queued one."""
        self._requests.clear()
        return self._worker.stop(timeout)

    def close(self) -> None:
        """Stop the background thread (and companions') and delete any spill file."""
        self.stop()
        for c in self.companions:
            if hasattr(c, "close"):
                c.close()
        super().close()

    def path_frame(self) -> PathFrame:
        """The path projected onto the current directions (computed on the calling thread)."""
        with self._state:
            return self._project_locked()

    # -- path ----------------------------------------------------------------------------------
    def _project_locked(self) -> PathFrame:
        steps = self.steps
        dirs = self._dirs
        if dirs is None or self._store is None:
            return PathFrame(steps, None, None, self._batches)
        n = len(steps)
        if self.generation != self._gen:  # thinned: earlier rows moved
            self._coords, self._gen = np.zeros((0, 2)), self.generation
        if len(self._coords) < n:
            new, _ = project_path(self.snapshots(len(self._coords)), dirs)
            self._coords = np.concatenate([self._coords, new[:, :2]])
        return PathFrame(steps, self._coords[:n].copy(), dirs, self._batches)

    def _publish_path(self, force: bool = False) -> None:
        self._next_path = time.monotonic() + self.path_interval_s
        if self.on_path is None or (not force and not len(self)):
            return
        with self._state:
            frame = self._project_locked()
        try:
            self.on_path(frame)
        except Exception as exc:  # a broken view must never stop training
            self._error(exc, "")

    # -- recomputing ---------------------------------------------------------------------------
    def _due(self, now: float) -> bool:
        if self.running or now < self._next_recompute:
            return False
        if self.recompute_every is not None:
            return self._batches - self._last_recompute_batch >= self.recompute_every
        return True

    def prime(self, model: Any) -> None:
        """Compute a first landscape around ``model``'s current weights now, before ``fit``
        (which also traces the compiled grid function outside training). Call it only while
        the model is not training."""
        self.set_model(model)
        layout = WeightLayout.from_model(model)
        self._request(final=False, path=layout.flatten(snapshot_weights(model))[None])

    def _request(self, final: bool, path: np.ndarray | None = None) -> None:
        """Queue a recompute around the latest snapshot; a due one is skipped while one runs."""
        if self._data is None or (path is None and not len(self)):
            return
        self._last_recompute_batch = self._batches
        # While one runs a due one is skipped (the next due one catches up); the final one waits.
        self._requests.submit((path, final), only_if_idle=not final)

    def _read_path(self) -> tuple[np.ndarray, np.ndarray]:
        """A consistent copy of the recorded path and its steps (read on the worker thread:
        the recorder's numpy store, never the model's variables)."""
        while True:
            gen = self.generation
            path = self.snapshots()
            steps = self.steps[: len(path)]
            if gen == self.generation and len(steps) == len(path):
                return path, steps

    def _recompute_request(self, ctx: JobContext, request: tuple) -> None:
        path, final = request
        recorded = path is None
        if recorded:
            path, steps = self._read_path()
        else:
            steps = np.zeros(len(path), np.int64)
        t0 = time.monotonic()
        self._busy(True)
        try:
            self._recompute(ctx, path, steps, final, recorded, t0)
        finally:
            self._busy(False)
        took = time.monotonic() - t0
        self.recompute_seconds.append(took)
        pause = max(self.recompute_s, took * (1.0 - self.max_duty) / self.max_duty)
        self._next_recompute = time.monotonic() + pause

    def _busy(self, running: bool) -> None:
        if self.on_busy is not None:
            try:
                self.on_busy(running)
            except Exception as exc:  # a broken view must never stop the recompute
                self._error(exc, "")

    def make_directions(self, path: np.ndarray) -> Directions:
        """Directions around the last row of ``path`` (PCA once it has 3 rows, else random;
        or the top Hessian eigenvectors there, on the watched subset)."""
        layout = self.layout or WeightLayout.from_model(self.model)
        x, y = self._data if self._data is not None else (None, None)
        planner = PlanePlanner(self.model, x, y, loss=self.loss, regularization=self.regularization)
        return planner.directions(
            self.kind,
            n=2,
            path=path,
            seed=self.seed,
            subset=None,
            origin=layout.unflatten(path[-1]),
            live=True,
        )

    def _recompute(
        self,
        ctx: JobContext,
        path: np.ndarray,
        steps: np.ndarray,
        final: bool,
        recorded: bool,
        t0: float,
    ) -> None:
        dirs = self.make_directions(path)
        coords, _ = project_path(path, dirs)
        with self._state:  # from now on the live path is drawn in the new plane
            self._dirs = dirs
            if recorded:
                self._coords, self._gen = coords[:, :2], self.generation
            else:
                self._coords = np.zeros((0, 2))
        grid = GridSpec(self.resolution, self.extent, self.spacing)
        extent = grid.extent_for(coords, dirs.kind)
        xs = ys = grid.axis(coords, dirs.kind)
        assert self._data is not None  # checked when the job was submitted
        x, y = self._data
        path_frame = PathFrame(steps, coords[:, :2], dirs, int(steps[-1]))
        frame = None
        last_publish = time.monotonic()
        for update in iter_grid(
            self.model,
            x,
            y,
            dirs,
            xs,
            ys,
            loss=self.loss,
            order=self.order,
            stop_event=ctx.stop_event,
            jit_compile=self.jit_compile,
            regularization=self.regularization,
            origin="directions",
        ):  # training moves on meanwhile: intended
            frame = SurfaceFrame(
                update.surface,
                dirs,
                path_frame,
                int(steps[-1]),
                update.done,
                update.total,
                time.monotonic() - t0,  # the clock of the whole recompute, as the status says
                final,
                {"kind": dirs.kind, "extent": extent},
                update.eta_s,
            )
            # A quick recompute shows only its result; a slow one fills in live.
            if update.done < update.total and time.monotonic() - last_publish > 1.0:
                ctx.publish(frame)
                last_publish = time.monotonic()
        if frame is not None and frame.done == frame.total:
            self.recomputes += 1
            self.last = frame
            ctx.publish(frame)

    def _deliver(self, frame: SurfaceFrame) -> None:
        if self.on_surface is not None:
            self.on_surface(frame)

    def _error(self, exc: BaseException, tb: str) -> None:
        self.error = exc
        if self.on_error is not None:
            self.on_error(exc, tb)
