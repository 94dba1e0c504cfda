"""``LossLandscapeWidget``: the loss landscape of a Keras model around its weights, live.

The widget is trait declarations and wiring. Its parts live in modules of their own: the
plots (:mod:`.landscape_views`: heat map and contours, the 1-D line; the 3-D surface in
:mod:`.surface3d`), the controls (:mod:`.landscape_controls`), which plane to compute
(:mod:`nbviz.landscape.planes`, shared with the training watcher) and what is shown, saved
and exported (:mod:`nbviz.landscape.shown`). Live watching of training:
:meth:`LossLandscapeWidget.watch` / :func:`watch`.

All TensorFlow work runs on the widget's :class:`~nbviz.worker.Worker` thread through
:func:`nbviz.landscape.iter_grid` / :func:`~nbviz.landscape.evaluate_line`; the frames it
publishes (the :class:`~nbviz.landscape.planes.Plane`, grid updates, the line) are drawn
(latest wins, live ones by :class:`~.landscape_views.Redraw`). Weights are never modified.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Any

import ipywidgets as widgets
import traitlets

from .. import export
from ..errors import NbvizError, PathError
from ..landscape import (
    Directions,
    as_path_matrix,
)
from ..landscape.planes import (
    NO_PATH_HELP,
    GridSpec,
    Plane,
    PlanePlanner,
    PlaneRequest,
    plane_request,
)
from ..landscape.shown import ShownLandscape
from ..landscape.surface import GridUpdate, Line
from ..landscape.watch import LandscapeWatcher
from ..landscape.weights import WeightLayout
from ..worker import JobContext, Worker
from .closing import close_widget_tree
from .landscape_controls import LandscapeControls, direction_kinds, grid_extent
from .landscape_files import SurfaceFiles
from .landscape_live import WATCH_OPTIONS, LiveTraining
from .landscape_views import DrawState, LandscapeViews, Redraw, axis_labels, nice_ticks
from .static_picture import StaticPicture, close_picture
from .surface3d import Kind

__all__ = ["LossLandscapeWidget", "axis_labels", "nice_ticks", "watch"]

DIRECTION_KINDS = ("pca", "random", "hessian", "interpolation", "custom")


class _hybridmethod:
    """A method that works on the class (``cls, None, ...``) and on an instance (``cls, self``)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.__doc__ = fn.__doc__

    def __get__(self, obj: Any, cls: type) -> Any:
        def bound(*args: Any, **kwargs: Any) -> Any:
            return self.fn(cls, obj, *args, **kwargs)

        bound.__doc__ = self.fn.__doc__
        return bound


def _with_parts(**owners: str) -> Any:
    """Class decorator: read-only attributes ``self.<owner>.<name>`` for each of the
    space-separated names given per owner (``alias=name`` where they differ). The widget's marks,
    controls and results keep the names they had before its views, controls and shown state
    became objects of their own."""

    def part(owner: str, name: str) -> property:
        return property(lambda self: getattr(getattr(self, owner), name), doc=f"{owner}.{name}")

    def install(cls: type) -> type:
        for owner, names in owners.items():
            for entry in names.split():
                alias, _, name = entry.partition("=")
                setattr(cls, alias, part(owner, name or alias))
        return cls

    return install


@_with_parts(
    plane_view="figure x_axis y_axis color_axis x_scale y_scale color_scale step_scale "
    "hover_scale heatmap hover contours contour_levels path_line path_points final_mark",
    line_view="line_figure=figure line_x_scale=x_scale line_y_scale=y_scale line_mark "
    "line_anchor=anchors",
    controls="directions_dropdown extent_box auto_box resolution_slider spacing_buttons "
    "subset_box levels_slider scale_buttons order_dropdown mode_buttons path_box "
    "compute_button stop_button progress progress_label status",
    shown="surface line current_directions=directions last_update path_coords path_steps "
    "path_residual",
)
class LossLandscapeWidget(StaticPicture, widgets.VBox):
    """Interactive loss landscape of ``model`` on ``(x, y)``.

    Parameters
    ----------
    model, x, y:
        A built, compiled Keras model (or pass ``loss=``) and data to evaluate the loss on.
    path:
        The training path: a :class:`~nbviz.landscape.WeightPathRecorder`, a list of
        ``model.get_weights()`` snapshots or an (n, n_params) matrix. Needed for
        ``directions="pca"``; drawn on the plot when given.
    directions:
        ``"pca"`` (axes of the path around its mean, plotted around its last snapshot),
        ``"random"`` (filter-normalized, ``seed``), ``"hessian"`` (the top Hessian
        eigenvectors on ``subset`` examples, 256 when all; filter-normalized),
        ``"interpolation"`` (1-D, towards ``other``) or a
        :class:`~nbviz.landscape.Directions` object.
    other:
        A second model (or weight list) for the interpolation line.
    extent, resolution, spacing:
        The grid: ``resolution`` points per axis over ``[-extent, extent]``, ``"linear"`` or
        ``"cubed"`` (the seed's, dense near the centre). ``extent=None``: fit PCA grids to the
        path, 1.0 for random directions.
    subset, seed:
        Evaluate on a seeded subset of ``subset`` examples (None: all).
    levels, level_scale:
        Number of contour levels, ``"log"`` (the seed's) or ``"linear"`` spacing.
    order:
        ``"coarse_to_fine"`` (an early stop still covers the plane) or ``"raster"``.
    mode:
        ``"2d"`` (heat map and contours) or ``"1d"`` (a line slice).
    view3d:
        The 3-D view's renderer (``"auto"``, ``"ipyvolume"``, ``"matplotlib"``) or None for none.
    autostart:
        Compute right away.
    loss, max_chunk, max_fps:
        The loss (default the model's), grid points per chunk and live redraws per second.
    regularization:
        Include the model's regularization losses in the loss, as ``model.evaluate`` does
        (default); ``False`` for the data loss alone.
    executor:
        Optional ``dask.distributed`` Client, ``concurrent.futures.Executor`` or
        :class:`nbviz.landscape.distributed.Remote`: 2-D grids are evaluated there and the
        contours fill in as remote chunks finish.

    Notes
    -----
    Errors while computing are shown in :attr:`status` and kept in :attr:`error`. Call
    :meth:`close` to stop the worker.
    """

    directions = traitlets.Unicode("pca")
    extent = traitlets.Float(1.0)
    auto_extent = traitlets.Bool(True)
    resolution = traitlets.Int(21)
    spacing = traitlets.Enum(["linear", "cubed"], default_value="linear")
    subset = traitlets.Int(0)  # 0: all examples
    seed = traitlets.Int(0)
    levels = traitlets.Int(20)
    level_scale = traitlets.Enum(["log", "linear"], default_value="log")
    order = traitlets.Enum(["coarse_to_fine", "raster"], default_value="coarse_to_fine")
    mode = traitlets.Enum(["2d", "1d"], default_value="2d")
    show_path = traitlets.Bool(True)

    def __init__(
        self,
        model: Any,
        x: Any,
        y: Any,
        path: Any = None,
        directions: str | Directions = "pca",
        *,
        other: Any = None,
        extent: float | None = None,
        resolution: int = 21,
        spacing: str = "linear",
        subset: int | None = None,
        seed: int = 0,
        levels: int = 20,
        level_scale: str = "log",
        order: str = "coarse_to_fine",
        mode: str = "2d",
        view3d: Kind | None = "auto",
        autostart: bool = False,
        loss: Any = None,
        max_chunk: int = 256,
        max_fps: float = 4.0,
        executor: Any = None,
        regularization: bool = True,
    ) -> None:
        WeightLayout.from_model(model)  # an unbuilt model fails here, with the fix
        self.model, self.x, self.y = model, x, y
        self.path, self.other, self.loss = path, other, loss
        self.regularization = bool(regularization)
        self.max_chunk, self.executor = int(max_chunk), executor
        self.error: BaseException | None = None
        self.shown = ShownLandscape()  # what is drawn: surface, line, plane, path
        self.live = LiveTraining(self)  # the watch() callback and its frames
        self.files = SurfaceFiles(self)  # save/load and the file a computation resumes
        self._custom: Directions | None = directions if isinstance(directions, Directions) else None
        self._lock = threading.RLock()
        self._closed = self._quiet = False
        self._worker = Worker(
            on_frame=self._on_frame,
            on_error=self._on_worker_error,
            on_done=self._on_done,
            max_fps=max_fps,
            name="nbviz-landscape",
        )

        self._build_view(direction_kinds(other is not None, self._custom is not None), view3d)
        self._draw = Redraw(self.views, self._draw_state, self._lock, max_fps)

        kind = "custom" if self._custom is not None else str(directions)
        self._quiet_set(
            directions=kind,
            auto_extent=extent is None,
            extent=1.0 if extent is None else float(extent),
            resolution=int(resolution),
            spacing=spacing,
            subset=int(subset or 0),
            seed=int(seed),
            levels=int(levels),
            level_scale=level_scale,
            order=order,
            mode=mode,
        )
        self._links = [
            traitlets.link((self, name), (control, "value"))
            for name, control in self._controls.items()
        ]
        self.observe(
            self._on_grid_setting,
            ["directions", "extent", "auto_extent", "resolution", "spacing", "subset", "seed"],
        )
        self.observe(self._on_levels, ["levels", "level_scale"])
        self.observe(self._on_mode, "mode")
        self.observe(self._on_show_path, "show_path")
        self._on_mode({"new": self.mode})
        if path is not None:
            try:
                as_path_matrix(path, WeightLayout.from_model(model))  # a bad path fails now
            except Exception:
                self.close()
                raise
        if kind == "pca" and path is None:
            if autostart:
                self.close()
                raise PathError(NO_PATH_HELP)
            self.controls.set_status(
                "no training path yet: use <code>widget.watch()</code> as a fit callback, pass "
                "<code>path=</code>, or choose random directions."
            )
        elif autostart:
            self.compute()

    # -- view construction -------------------------------------------------------------------
    def _build_view(self, kinds: list, view3d: Kind | None) -> None:
        self.views = LandscapeViews(view3d)
        self.plane_view, self.line_view = self.views.plane, self.views.line
        self.view3d = self.views.surface3d
        self.controls = LandscapeControls(kinds)
        self._controls = self.controls.by_trait()
        self.controls.compute_button.on_click(lambda _b: self.compute())
        self.controls.stop_button.on_click(lambda _b: self.stop(wait=False))
        super().__init__(children=self.controls.panel([self.views.box]))

    # -- public API --------------------------------------------------------------------------
    def compute(self) -> bool:
        """Start computing the current settings on the worker (the grid fills in live).

        Compute restarts a running computation (a ``watch`` recompute too). Returns False (and
        says why in :attr:`status`) when the settings cannot work (e.g. PCA without a path).
        """
        if self._closed:
            return False
        try:
            request = self._make_request()
        except Exception as exc:
            self._show_error(exc)
            return False
        if self.computing and not self.stop(wait=True, timeout=30.0):
            self.controls.set_status("still stopping the running computation: press Compute again.")
            return False
        self.error = None
        self.controls.show_running(True)
        self.controls.set_status("computing ...")
        self._worker.start(lambda ctx: self._job(ctx, request))
        return True

    def stop(self, wait: bool = True, timeout: float = 30.0) -> bool:
        """Stop computing after the current chunk; finished cells are kept."""
        self._worker.stop(timeout if wait else 0.0)
        if self.watcher is not None:
            self.watcher.stop(timeout if wait else 0.0)
        return not self.computing

    @property
    def watcher(self) -> LandscapeWatcher | None:
        """The live-training callback made by the last :meth:`watch`, or None."""
        return self.live.watcher

    @property
    def computing(self) -> bool:
        """True while a grid, a line or a watch recompute is running."""
        return self._worker.running or (self.watcher is not None and self.watcher.running)

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until nothing is computing (for scripts and tests). True if idle."""
        deadline = time.monotonic() + timeout
        ok = self._worker.join(timeout)
        if self.watcher is not None:
            ok = self.watcher.wait(max(0.0, deadline - time.monotonic())) and ok
        ok = ok and self._worker.join(max(0.0, deadline - time.monotonic()))
        self._draw.flush()  # what the last live update changed is on screen now
        return ok

    def watch(
        self,
        *,
        every_k_batches: int = 4,
        recompute_s: float = 2.0,
        recompute_every: int | None = None,
        subset: int | None = 256,
        resolution: int | None = None,
        max_duty: float = 0.15,
        prime: bool = True,
        **kwargs: Any,
    ) -> LandscapeWatcher:
        """A Keras callback that shows training live: ``model.fit(..., callbacks=[w.watch()])``.

        The path grows on the plot as it is recorded (every ``every_k_batches`` batches:
        reading the weights costs about a training step of a small MLP, so not every batch);
        every ``recompute_s`` seconds (or ``recompute_every`` batches) the landscape is
        recomputed in the background on a ``subset`` of the data around the latest weights
        (PCA of the path so far, or fixed random directions), using at most ``max_duty`` of the
        wall time. With ``prime`` a first landscape around the current weights is computed now,
        before ``fit`` (that also compiles the grid function outside training). The model's
        training is not changed. Afterwards the widget keeps the recorded path (``path``).
        """
        watcher = self.live.start(
            every_k_batches=every_k_batches,
            recompute_s=recompute_s,
            recompute_every=recompute_every,
            subset=subset,
            resolution=resolution,
            max_duty=max_duty,
            **kwargs,
        )
        self.path = watcher
        self._quiet_set(mode="2d")
        if prime:
            watcher.prime(self.model)
        self.controls.set_status(
            "watching: pass this callback to <code>model.fit(callbacks=[...])</code>."
        )
        return watcher

    def save(self, path: str | os.PathLike) -> str:
        """Write the current surface (finished cells, directions, path) to a resumable
        :class:`~nbviz.landscape.SurfaceFile` (overwritten). Returns the path."""
        return self.files.save(path)

    @_hybridmethod
    def load(
        cls,
        self: LossLandscapeWidget | None,
        path: str | os.PathLike,
        model: Any = None,
        x: Any = None,
        y: Any = None,
        **kwargs: Any,
    ) -> LossLandscapeWidget:
        """Show a saved surface file; :meth:`compute` then resumes its missing cells.

        ``LossLandscapeWidget.load(path, model, x, y, **options)`` makes a new widget;
        ``widget.load(path)`` loads into this one. The subset and its seed are taken from the
        file, so that a resumed computation evaluates the same data.
        """
        if self is None:
            if model is None:
                raise NbvizError(
                    "LossLandscapeWidget.load(path, model, x, y): the model is needed."
                )
            widget = cls(model, x, y, directions="random", **kwargs)
            try:
                widget.files.load(path)
            except Exception:
                widget.close()
                raise
            return widget
        self.files.load(path)
        return self

    def export_png(self, path: str | os.PathLike | None = None, dpi: int = 120) -> bytes:
        """A PNG of the current plot (matplotlib: contours and path, or the line); written to
        ``path`` when given. Returns the PNG bytes."""
        with self._lock:
            shown = dataclasses.replace(self.shown)
        data = shown.png(
            line=self.mode == "1d",
            levels=self.levels,
            log=self.level_scale == "log",
            show_path=self.show_path,
            labels=(self.plane_view.x_axis.label, self.plane_view.y_axis.label),
            dpi=dpi,
        )
        return export.write_bytes(data, path)

    def _picture_key(self) -> Any:
        view = (self.mode, self.levels, self.level_scale, self.show_path)
        return None if self.shown.version() is None else (self.shown.version(), view)

    def _picture_png(self) -> bytes:
        return self.export_png(dpi=80)

    def close(self) -> None:
        """Stop the worker and any watcher; close every child widget (safe to call twice)."""
        if getattr(self, "_closed", True):
            return
        close_picture(self)
        self._closed = True
        self._worker.stop(timeout=30.0)
        self._draw.close()
        self.live.close()
        for link in self._links:
            link.unlink()
        self.views.close()
        close_widget_tree(self)

    # -- requests and the job ----------------------------------------------------------------
    def _make_request(self) -> PlaneRequest:
        """Everything the job needs, taken on the calling thread (weights read here, not in
        the worker, so a later ``fit`` in another cell cannot race with it)."""
        grid = GridSpec(self.resolution, None if self.auto_extent else self.extent, self.spacing)
        return plane_request(
            self.model,
            self.directions,
            n=1 if self.mode == "1d" else 2,
            grid=grid,
            path=self.path,
            other=self.other,
            given=self._custom,
            seed=self.seed,
            subset=self.subset or None,
            order=self.order,
            resume=self.files.resume,
        )

    def _job(self, ctx: JobContext, request: PlaneRequest) -> None:
        planner = PlanePlanner(
            self.model, self.x, self.y, loss=self.loss, regularization=self.regularization
        )
        for frame in planner.frames(
            request, stop_event=ctx.stop_event, max_chunk=self.max_chunk, executor=self.executor
        ):
            ctx.publish(frame)

    # -- worker callbacks (delivery thread): set traits only ----------------------------------
    def _on_frame(self, frame: Plane | GridUpdate | Line) -> None:
        if self._closed:
            return
        with self._lock:
            self.shown.take(frame)
            if isinstance(frame, Plane):
                self.plane_view.set_axis_labels(axis_labels(frame.directions))
                self._draw(path=True, live=True)
            elif isinstance(frame, GridUpdate):
                self._draw(surface=True, live=True)
                self.controls.show_progress(frame.done, frame.total, None, frame.eta_s)
            else:
                self._draw(line=True)

    def _on_done(self, result: Any, stopped: bool) -> None:
        if self._closed:
            return
        self._draw(hover=True)  # and the read-out squares of a finished or stopped grid
        self.controls.show_done(self.shown, stopped, self.error is not None, self.mode == "1d")

    def _on_worker_error(self, exc: BaseException, tb: str) -> None:
        self._show_error(exc)

    def _draw_state(self) -> DrawState:  # what Redraw draws from
        if self.auto_extent and self.shown.surface is not None and not self._closed:  # in use
            self._quiet_set(extent=grid_extent(self.shown.surface))
        return None if self._closed else (self.shown, self.levels, self.level_scale, self.show_path)

    # -- observers -----------------------------------------------------------------------------
    def _on_grid_setting(self, change: dict) -> None:
        if self._quiet:
            return
        with self._lock:
            keeps_file = change["name"] == "directions" and change["new"] == "custom"
            if not keeps_file:
                self.files.resume = None  # another grid: the file is not resumed any more
        self.controls.set_status("settings changed: press Compute.")

    def _on_levels(self, change: dict) -> None:
        if self._quiet:
            return
        with self._lock:
            self._draw(surface=True)

    def _on_mode(self, change: dict) -> None:
        self.views.show_mode(change["new"] == "2d")
        self._draw(surface=True, path=True, hover=True, line=True)  # nothing sent while hidden

    def _on_show_path(self, change: dict) -> None:
        with self._lock:
            self._draw(path=True)  # the plane's and the 3-D view's path (shown or hidden)

    @traitlets.validate("directions")
    def _valid_directions(self, proposal: dict) -> str:
        value = proposal["value"]
        allowed = {v for _, v in self.controls.directions_dropdown.options}
        if value not in allowed:
            exc = NbvizError(
                f"Unknown directions {value!r}; use one of {sorted(allowed)} or pass a "
                "Directions object (interpolation needs other=<model>)."
            )
            raise self._show_error(exc)
        return value

    @traitlets.validate("resolution")
    def _valid_resolution(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if not 2 <= value <= 501:
            raise self._show_error(
                NbvizError(f"resolution must be between 2 and 501, got {value}.")
            )
        if hasattr(self, "controls"):
            self.controls.widen_resolution(value)  # show what is computed
        return value

    # -- helpers -----------------------------------------------------------------------------
    def _quiet_set(self, **values: Any) -> None:
        quiet, self._quiet = self._quiet, True
        try:
            for k, v in values.items():
                setattr(self, k, v)
        finally:
            self._quiet = quiet

    def _show_error(self, exc: BaseException) -> BaseException:
        """Keep ``exc`` in :attr:`error` and show it in the status line; returns it."""
        self.error = exc
        self.controls.show_error(exc)
        return exc


def watch(
    model: Any, x: Any, y: Any, *, display: bool = True, sharpness: Any = False, **kwargs: Any
) -> LandscapeWatcher:
    """Show the loss landscape of ``model`` live while it trains; returns the Keras callback.

    ``model.fit(x, y, callbacks=[nbviz.watch(model, x, y)])``. Widget options (``directions``,
    ``resolution``, ``extent``, ``levels`` ...) and :meth:`LossLandscapeWidget.watch` options
    (``every_k_batches``, ``recompute_s``, ``subset`` ...) may be mixed in ``kwargs``. The
    widget is ``callback.widget``. With ``sharpness`` (True, a number of batches between
    estimates, or a dict of :class:`~nbviz.landscape.sharpness.SharpnessTracker` options) the
    top Hessian eigenvalue is estimated live and plotted below the landscape with the
    stability line of the model's optimizer (``callback.sharpness``, the tracker).
    """
    watch_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in WATCH_OPTIONS}
    widget = LossLandscapeWidget(model, x, y, **kwargs)
    callback = widget.watch(**watch_kw)
    callback.widget = widget
    callback.sharpness = None
    if sharpness:
        from .sharpness_view import add_sharpness

        add_sharpness(widget, callback, sharpness)
    if display:
        from IPython.display import display as show

        show(widget)
    return callback
