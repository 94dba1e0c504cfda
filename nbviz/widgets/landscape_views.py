"""The landscape widget's plots: the plane (heat map and contours) and the 1-D line.

Each view owns its bqplot marks and exposes update methods that set traits only, like the 3-D
view (:mod:`.surface3d`), so all three sit behind the same small interface
(:class:`LandscapeView`): ``.widget`` to display, ``set_*`` methods, ``.show_path`` where a
path is drawn, and ``close()``. They know nothing about computations. :class:`LandscapeViews`
holds the three and draws what a :class:`~nbviz.landscape.shown.ShownLandscape` holds; the
widget (:mod:`nbviz.widgets.landscape`) tells it when.

Drawing is cheap because a live grid redraws a few times a second: the heat map is one
canvas picture, the iso-lines one ``Lines`` mark, the path a line of a few segments coloured
by step with a marker at each joint (not a marker per snapshot), and the invisible read-out
tiles (one SVG element each, at most ``HOVER_PER_AXIS`` a side) are sent only for a finished
or stopped grid. A hidden view is not in
the page at all (bqplot lays out a hidden figure at zero size and logs errors) and is not
sent anything; it is drawn when it is shown again. The 3-D view, the most costly to redraw
(a picture rendered in the kernel, or in WebGL with ipyvolume), follows live updates at most
every ``SURFACE3D_EVERY_S`` seconds, one picture per update.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import bqplot
import ipywidgets as widgets
import numpy as np

from ..landscape.contours import bilinear, contour_lines
from ..landscape.directions import Directions
from ..landscape.shown import ShownLandscape
from ..landscape.surface import Line
from ..worker import Throttle
from .closing import close_widget_tree
from .surface3d import Kind, SurfaceView, make_surface_view
from .ticks import nice_ticks

__all__ = [
    "LandscapeView",
    "LandscapeViews",
    "LineView",
    "PlaneView",
    "Redraw",
    "axis_labels",
    "end_rows_at_a_point",
    "nice_ticks",
    "path_segments",
    "shown_values",
]

#: The path's colours by step: matplotlib's perceptually ordered plasma from 0.25 to 0.95
#: (purple to yellow; not from near black, so the start stays visible on a dark heat map).
PATH_COLORS = ["#7e03a8", "#ad2793", "#d24f71", "#ed7a52", "#fdab33", "#f7e425"]
#: Segments (and joints marked) of a path drawn in the plane.
PATH_SEGMENTS = 12
#: Read-out tiles per axis at most. The read-out was a Scatter of invisible squares, three SVG
#: elements each (marker group, path, label): at 21 a side 40% of the page's elements, and
#: bqplot's drawing of them (forced style recalculations in its d3 transition) blocked the page
#: 0.2-0.35 s when a grid ended. Tiles of a GridHeatMap are one element each.
HOVER_PER_AXIS = 11
#: A fully transparent colour (the read-out tiles).
CLEAR = "#00000000"
#: The heat map's colours: matplotlib's viridis at 9 stops (bqplot interpolates between them).
#: bqplot's ``scheme="viridis"`` colour bar is a gradient of 256 stops, rebuilt whenever the
#: range changes, i.e. at every live update.
VIRIDIS_9 = ["#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80", "#5ec962",
             "#addc30", "#fde725"]  # fmt: skip
#: Seconds between live redraws of the 3-D view (about 0.1 s of the kernel's time for a
#: matplotlib picture; ipyvolume's WebGL redraw blocks a page without a GPU 0.4-0.6 s). A
#: redraw that is not live draws at once.
SURFACE3D_EVERY_S = 2.0


class LandscapeView(Protocol):
    """What the widget needs from each of its plots (the 3-D view has it too)."""

    @property
    def widget(self) -> widgets.Widget: ...

    def close(self) -> None: ...


def shown_values(z: np.ndarray, level_scale: str) -> np.ndarray:
    """What the colours and the 3-D height show: log10 of the loss on the log scale (``z``
    itself otherwise, or when a value is not positive)."""
    if level_scale == "log" and np.nanmin(z, initial=np.inf) > 0:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log10(z)
    return z


def path_segments(
    a: np.ndarray, b: np.ndarray, steps: np.ndarray, n: int = PATH_SEGMENTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split the path ``(a, b)`` into at most ``n`` consecutive pieces of about equal numbers
    of snapshots, each sharing its first point with the previous one's last.

    Returns ``(x, y, joints, mid_steps)``: ``x``/``y`` of shape (pieces, longest), rows of
    one ``Lines`` mark padded with their last point (:func:`end_rows_at_a_point`), the indices of the joints (first, every piece's end),
    and each piece's middle step (its colour)."""
    m = len(a)
    joints = np.unique(np.linspace(0, m - 1, min(n, max(m - 1, 1)) + 1).round().astype(int))
    if len(joints) < 2:  # one snapshot: a piece of one point
        joints = np.asarray([0, 0])
    starts, ends = joints[:-1], joints[1:]
    width = max(int((ends - starts).max()) + 1, 2)  # bqplot squeezes a (1, 1) array to 0-d
    x = np.full((len(starts), width), np.nan)
    y = np.full((len(starts), width), np.nan)
    for k, (i, j) in enumerate(zip(starts, ends, strict=True)):
        x[k, : j - i + 1], y[k, : j - i + 1] = a[i : j + 1], b[i : j + 1]
    mid = steps[(starts + ends) // 2].astype(float)
    return (*end_rows_at_a_point(x, y), joints, mid)


def end_rows_at_a_point(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a ``Lines`` mark with their NaN padding replaced by the row's last point.

    bqplot puts a (hidden) label at the last point of every row, at every redraw; a row that
    ends in NaN logs ``<g> attribute transform: translate(undefined,undefined)`` in the
    browser's console each time. A repeated point draws nothing more."""
    x, y = np.array(x, float), np.array(y, float)
    for k in range(len(x)):
        finite = np.nonzero(np.isfinite(x[k]) & np.isfinite(y[k]))[0]
        if len(finite):
            last = finite[-1]
            x[k, last + 1 :], y[k, last + 1 :] = x[k, last], y[k, last]
    return x, y


def _ramp(values: np.ndarray, lo: float, hi: float) -> list[str]:
    """The ``PATH_COLORS`` colour of each value on ``[lo, hi]`` (nearest of the six)."""
    t = np.clip((np.asarray(values, float) - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return [PATH_COLORS[int(round(v * (len(PATH_COLORS) - 1)))] for v in t]


def axis_labels(dirs: Directions) -> list[str]:
    """Axis titles for directions: PCA ones with their explained variance; random ones that
    stand in for a live PCA plane (the path is too short yet) say so."""
    if dirs.kind == "pca" and dirs.explained_variance is not None:
        what = (
            "of path moment about the end"
            if dirs.metadata.get("center") == "final"
            else "of path variance"
        )
        return [f"PC{i + 1} ({ev:.1%} {what})" for i, ev in enumerate(dirs.explained_variance)]
    if dirs.kind == "random" and dirs.metadata.get("instead_of") == "pca":
        return [
            f"PC{i + 1} pending: random direction {i + 1} until 3 snapshots" for i in range(dirs.n)
        ]
    if dirs.kind == "random":
        norm = dirs.normalization or "no"
        return [
            f"random direction {i + 1} (seed {dirs.seed}, {norm}-normalized)" for i in range(dirs.n)
        ]
    if dirs.kind == "hessian":
        lam = dirs.metadata.get("eigenvalues") or []
        norm = dirs.normalization or "no"
        return [
            f"Hessian eigenvector {i + 1} (λ = {lam[i]:.3g}, {norm}-normalized)"
            if i < len(lam)
            else f"Hessian eigenvector {i + 1}"
            for i in range(dirs.n)
        ]
    if dirs.kind == "interpolation":
        return ["t (0 = this model, 1 = other)"]
    return [f"direction {i + 1} ({dirs.kind})" for i in range(dirs.n)]


class PlaneView:
    """The plane: a canvas heat map of the grid, iso-lines in one ``Lines`` mark, a colour bar,
    the training path as a line coloured by step with its joints marked, the final weights
    marked, and a hover read-out of ``(a, b, loss)`` (invisible tiles, sent only when asked:
    a finished grid)."""

    def __init__(self) -> None:
        self.x_scale, self.y_scale = bqplot.LinearScale(), bqplot.LinearScale()
        self.color_scale = bqplot.ColorScale(colors=VIRIDIS_9)
        self.step_scale = bqplot.ColorScale(colors=PATH_COLORS)
        self.hover_scale = bqplot.ColorScale(colors=[CLEAR, CLEAR])
        xy = {"x": self.x_scale, "y": self.y_scale}
        self.heatmap = bqplot.HeatMap(
            x=np.zeros(2), y=np.zeros(2), color=np.full((2, 2), np.nan),
            scales={**xy, "color": self.color_scale}, null_color="#eeeeee",
        )  # fmt: skip
        # the read-out: invisible tiles (transparent colours: bqplot's GridHeatMap allows no
        # opacity under 0.2), each starting at the cell it reports
        self.hover = bqplot.GridHeatMap(
            row=np.arange(2.0), column=np.arange(2.0), color=np.full((2, 2), np.nan),
            scales={"row": self.y_scale, "column": self.x_scale, "color": self.hover_scale},
            row_align="start", column_align="start", null_color=CLEAR, stroke=None,
            tooltip=bqplot.Tooltip(
                fields=["column", "row", "color"], labels=["a", "b", "loss"],
                formats=[".4g", ".4g", ".5g"],
            ),
        )  # fmt: skip
        self.contours = bqplot.Lines(
            x=np.zeros((1, 0)), y=np.zeros((1, 0)), scales=xy, colors=["white"],
            stroke_width=1.0, opacities=[0.85],
        )  # fmt: skip
        self.path_line = bqplot.Lines(
            x=np.zeros((1, 0)), y=np.zeros((1, 0)), scales=xy, colors=PATH_COLORS[:1],
            stroke_width=2.5,
        )  # fmt: skip
        self.path_points = bqplot.Scatter(
            x=np.zeros(0), y=np.zeros(0), color=np.zeros(0),
            scales={**xy, "color": self.step_scale}, default_size=28, stroke="white",
            stroke_width=0.8,
            tooltip=bqplot.Tooltip(
                fields=["x", "y", "color"], labels=["a", "b", "step"],
                formats=[".4g", ".4g", "d"],
            ),
        )  # fmt: skip
        self.final_mark = bqplot.Scatter(
            x=np.zeros(0), y=np.zeros(0), scales=xy, marker="diamond", colors=["red"],
            default_size=90, stroke="white",
            tooltip=bqplot.Tooltip(fields=["x", "y"], labels=["a (final)", "b (final)"]),
        )  # fmt: skip
        self.x_axis = bqplot.Axis(scale=self.x_scale, label="a", tick_format=".3~g")
        self.y_axis = bqplot.Axis(scale=self.y_scale, side="left", label="b", tick_format=".3~g")
        self.color_axis = bqplot.ColorAxis(
            scale=self.color_scale, side="right", label="log10 loss", tick_format=".3~g"
        )
        self.figure = bqplot.Figure(
            marks=[
                self.heatmap, self.hover, self.contours, self.path_line, self.path_points,
                self.final_mark,
            ],
            axes=[self.x_axis, self.y_axis, self.color_axis], animation_duration=0,
            title="loss landscape", padding_x=0.0, padding_y=0.0,
            # bqplot centres a vertical colour bar's label on the bar, margin/2 - 10 px right of
            # the plot: 100 px keeps "log10 loss" off the heatmap.
            fig_margin={"top": 40, "bottom": 45, "left": 60, "right": 100},
            layout=widgets.Layout(width="520px", height="460px"),
        )  # fmt: skip
        self.contour_levels = np.zeros(0)
        self._show_path = True
        self._has_path = False

    @property
    def widget(self) -> bqplot.Figure:
        return self.figure

    @property
    def path_marks(self) -> tuple[bqplot.Mark, ...]:
        return (self.path_line, self.path_points, self.final_mark)

    @property
    def show_path(self) -> bool:
        """Whether the path is drawn (when there is one)."""
        return self._show_path

    @show_path.setter
    def show_path(self, value: bool) -> None:
        self._show_path = bool(value)
        for mark in self.path_marks:
            mark.visible = self._show_path and self._has_path

    def set_surface(
        self,
        xs: np.ndarray,
        ys: np.ndarray,
        loss: np.ndarray,
        *,
        levels: int = 20,
        level_scale: str = "log",
        hover: bool = True,
    ) -> None:
        """Show a grid (ascending ``xs``, ``ys``; NaN for missing cells) with ``levels``
        contour levels on a ``"log"`` or ``"linear"`` scale; ``hover``: also the read-out
        squares (one per cell: too many to resend at every live update)."""
        z = np.where(np.isfinite(loss), loss, np.nan)
        v = shown_values(z, level_scale)
        finite = np.isfinite(v)
        with self.heatmap.hold_sync():
            self.heatmap.x, self.heatmap.y, self.heatmap.color = xs, ys, v
        if finite.any():
            lo, hi = float(v[finite].min()), float(v[finite].max())
            self.color_scale.min, self.color_scale.max = lo, max(hi, lo + 1e-12)
            self.color_axis.tick_values = nice_ticks(lo, hi, 6)
        self.color_axis.label = "log10 loss" if v is not z else "loss"
        self.x_scale.min, self.x_scale.max = float(xs[0]), float(xs[-1])
        self.y_scale.min, self.y_scale.max = float(ys[0]), float(ys[-1])
        self.x_axis.tick_values = nice_ticks(xs[0], xs[-1], 7)
        self.y_axis.tick_values = nice_ticks(ys[0], ys[-1], 9)
        if hover:
            self.set_hover(xs, ys, z)
        self.set_contours(xs, ys, loss, levels, level_scale)

    def set_hover(self, xs: np.ndarray, ys: np.ndarray, z: np.ndarray) -> None:
        """The read-out: an invisible tile from every ``k``-th cell (every cell of a grid of
        at most ``HOVER_PER_AXIS`` a side) to the next, its tooltip the cell's ``(a, b, loss)``
        (a missing cell: no loss)."""
        k = max(1, -(-max(len(xs), len(ys)) // HOVER_PER_AXIS))
        xs, ys, z = xs[::k], ys[::k], z[::k, ::k]
        # rows, columns and colours are checked against each other: set them together
        with self.hover.hold_sync(), self.hover.hold_trait_notifications():
            self.hover.row, self.hover.column = np.asarray(ys, float), np.asarray(xs, float)
            self.hover.color = np.where(np.isfinite(z), z, np.nan)

    def set_contours(
        self, xs: np.ndarray, ys: np.ndarray, loss: np.ndarray, levels: int, level_scale: str
    ) -> None:
        """Draw the iso-lines of ``loss`` (kept in :attr:`contour_levels`)."""
        lines = contour_lines(xs, ys, loss, levels, level_scale)
        self.contour_levels = lines.levels
        with self.contours.hold_sync():
            if lines.n_levels:
                self.contours.x, self.contours.y = end_rows_at_a_point(lines.x, lines.y)
                self.contours.colors = ["white"]
            else:
                self.contours.x, self.contours.y = np.zeros((1, 0)), np.zeros((1, 0))

    def set_path(self, a: np.ndarray, b: np.ndarray, steps: np.ndarray | None = None) -> None:
        """Draw the path at plane coordinates ``(a, b)`` as a line coloured by ``steps``
        (default the snapshot index; ``PATH_COLORS``, early to late) with its joints
        marked (tooltip: the step), its last point marked; an empty path hides the marks."""
        self._has_path = len(a) > 0
        self.show_path = self._show_path
        if not self._has_path:
            return
        steps = np.arange(len(a)) if steps is None else np.asarray(steps)[: len(a)]
        lo, hi = float(steps.min()), float(max(steps.max(), steps.min() + 1))
        x, y, joints, mid = path_segments(np.asarray(a), np.asarray(b), steps)
        with self.path_line.hold_sync():
            self.path_line.x, self.path_line.y = x, y
            self.path_line.colors = _ramp(mid, lo, hi)
        self.step_scale.min, self.step_scale.max = lo, hi
        with self.path_points.hold_sync():
            self.path_points.x, self.path_points.y = a[joints], b[joints]
            self.path_points.color = steps[joints]
        with self.final_mark.hold_sync():
            self.final_mark.x, self.final_mark.y = a[-1:], b[-1:]

    def set_axis_labels(self, names: list[str]) -> None:
        """Title the axes (one name: the x axis only)."""
        self.x_axis.label = names[0]
        if len(names) > 1:
            self.y_axis.label = names[1]

    def close(self) -> None:
        close_widget_tree(self.figure)


class LineView:
    """The loss along a line, with this model's point (and the other's) marked."""

    def __init__(self) -> None:
        self.x_scale, self.y_scale = bqplot.LinearScale(), bqplot.LinearScale()
        xy = {"x": self.x_scale, "y": self.y_scale}
        self.line_mark = bqplot.Lines(
            x=np.zeros(0), y=np.zeros(0), scales=xy, colors=["#1f77b4"], marker="circle",
            marker_size=12,
        )  # fmt: skip
        self.anchors = bqplot.Scatter(
            x=np.zeros(0), y=np.zeros(0), scales=xy, marker="diamond", colors=["red"],
            default_size=80,
        )  # fmt: skip
        self.figure = bqplot.Figure(
            marks=[self.line_mark, self.anchors],
            axes=[
                bqplot.Axis(scale=self.x_scale, label="t", tick_format=".3~g"),
                bqplot.Axis(scale=self.y_scale, side="left", label="loss", tick_format=".3~g"),
            ],
            animation_duration=0, title="loss along a line",
            layout=widgets.Layout(width="520px", height="360px"),
        )  # fmt: skip

    @property
    def widget(self) -> bqplot.Figure:
        return self.figure

    def set_line(self, line: Line) -> None:
        """Show ``line``; its anchors (``t`` of each model on it, else 0) are marked."""
        with self.line_mark.hold_sync():
            self.line_mark.x, self.line_mark.y = line.ts, line.loss
        x_axis, y_axis = self.figure.axes
        x_axis.tick_values = nice_ticks(float(np.min(line.ts)), float(np.max(line.ts)), 7)
        finite = np.asarray(line.loss, float)[np.isfinite(line.loss)]
        if len(finite):  # round ticks inside the data's range (bqplot pads it a little)
            y_axis.tick_values = nice_ticks(float(finite.min()), float(finite.max()), 7)
        anchors = (line.metadata.get("directions") or {}).get("anchors") or {}
        ts = [p[0] for p in anchors.values() if len(p) == 1] or [0.0]
        z = np.interp(ts, line.ts, np.nan_to_num(line.loss, nan=np.nanmax(line.loss, initial=0)))
        with self.anchors.hold_sync():
            self.anchors.x, self.anchors.y = np.asarray(ts, float), z
        kind = line.directions.kind if line.directions is not None else ""
        self.figure.axes[0].label = (
            "t (0 = this model, 1 = other)" if kind == "interpolation"
            else "t (along a random direction)"
        )  # fmt: skip

    def close(self) -> None:
        close_widget_tree(self.figure)


class LandscapeViews:
    """The plane, the line and (unless ``view3d`` is None) the 3-D surface, drawn together from
    a :class:`~nbviz.landscape.shown.ShownLandscape`; 2-D mode shows the plane and the 3-D
    view, 1-D mode the line. The colours and heights are log10 of the loss on the log scale."""

    def __init__(self, view3d: Kind | None = "auto") -> None:
        self.plane = PlaneView()
        self.line = LineView()
        self.surface3d: SurfaceView | None = None
        if view3d is not None:
            self.surface3d = make_surface_view(
                view3d, width=380, height=380, xlabel="a", ylabel="b", zlabel="loss"
            )
        self.two_d = True
        self._last3d = -float("inf")
        #: The plots row: the shown views only (a hidden one is not in the page).
        self.box = widgets.HBox([v.widget for v in self.shown_views()])

    def all(self) -> list[LandscapeView]:
        views: list[LandscapeView] = [self.plane, self.line]
        return views if self.surface3d is None else [*views, self.surface3d]

    def shown_views(self) -> list[LandscapeView]:
        """The views of the current mode: plane and 3-D, or the line."""
        return [v for v in self.all() if (v is self.line) != self.two_d]

    def show_mode(self, two_d: bool) -> None:
        """Show the 2-D views (plane, 3-D) or the line; the others leave the page."""
        self.two_d = bool(two_d)
        self.box.children = [v.widget for v in self.shown_views()]

    def draw_surface(
        self,
        shown: ShownLandscape,
        levels: int,
        level_scale: str,
        show_path: bool,
        *,
        hover: bool = True,
        live: bool = False,
    ) -> None:
        """Draw the surface (and, in 3-D, the path on it) and title the plane (2-D mode only:
        hidden views are drawn when shown); ``hover``: the plane's read-out squares too;
        ``live``: an update of a running computation (the 3-D view may skip it)."""
        if shown.surface is None or not self.two_d:
            return
        s = shown.surface.ascending()  # a loaded file's grid may come in any order
        self.plane.set_surface(
            s.xs, s.ys, s.loss, levels=levels, level_scale=level_scale, hover=hover
        )
        view3d = self.surface3d
        if view3d is not None and len(s.xs) > 1 and len(s.ys) > 1 and self._may_draw_3d(live):
            z = np.where(np.isfinite(s.loss), s.loss, np.nan)
            heights = shown_values(z, level_scale)
            with view3d.batch():  # one picture for surface, label and path
                view3d.set_height_label("log10 loss" if heights is not z else "loss")
                view3d.set_surface(s.xs, s.ys, heights)
                self._draw_path3d(shown, level_scale, show_path)
        self.plane.figure.title = shown.title()

    def draw_path(
        self, shown: ShownLandscape, level_scale: str, show_path: bool, *, live: bool = False
    ) -> None:
        """Draw the path in the plane (hidden unless ``show_path``) and on the 3-D surface
        (2-D mode only; ``live``: the 3-D view may skip it)."""
        if not self.two_d:
            return
        coords = shown.path_coords
        self.plane.show_path = show_path
        if coords is None or not len(coords):
            self.plane.set_path(np.zeros(0), np.zeros(0))
            return
        self.plane.set_path(coords[:, 0], coords[:, 1], shown.path_steps)
        if self._may_draw_3d(live):
            self._draw_path3d(shown, level_scale, show_path)

    def _may_draw_3d(self, live: bool) -> bool:
        """Whether the 3-D view is drawn now: always when not ``live``, else at most every
        ``SURFACE3D_EVERY_S`` seconds."""
        if self.surface3d is None:
            return False
        now = time.monotonic()
        if live and now - self._last3d < SURFACE3D_EVERY_S:
            return False
        self._last3d = now
        return True

    def draw_line(self, shown: ShownLandscape) -> None:
        """Draw the line (1-D mode only)."""
        if shown.line is not None and not self.two_d:
            self.line.set_line(shown.line)

    def _draw_path3d(self, shown: ShownLandscape, level_scale: str, show_path: bool) -> None:
        s, coords = shown.surface, shown.path_coords
        if self.surface3d is None or s is None or coords is None or not len(coords):
            return
        a, b = coords[:, 0], coords[:, 1]
        with self.surface3d.batch():
            self.surface3d.set_path(
                a, b, bilinear(s.xs, s.ys, shown_values(s.loss, level_scale), a, b)
            )
            self.surface3d.show_path = bool(show_path)

    def close(self) -> None:
        for view in self.all():
            view.close()


#: What :class:`Redraw` draws from: the shown landscape, the contour levels and their scale,
#: whether the path is shown; None once the widget is closed.
DrawState = tuple[ShownLandscape, int, str, bool] | None


class Redraw:
    """Draws what changed on :class:`LandscapeViews`: at once, or (``live``) at most
    ``max_fps`` times a second, latest first, through one trailing
    :class:`~nbviz.worker.Throttle`: a live update only marks what it changed, so a burst of
    grid chunks or path steps costs the page a few redraws, and the last is never lost.

    ``redraw(surface=..., path=..., hover=..., line=..., live=...)`` marks and draws;
    ``state()`` gives what to draw from (None: closed); ``lock`` guards it (the widget's).
    """

    def __init__(
        self,
        views: LandscapeViews,
        state: Callable[[], DrawState],
        lock: threading.RLock,
        max_fps: float,
    ) -> None:
        self.views, self.state, self.lock = views, state, lock
        self.dirty: set[str] = set()  # what changed and is not drawn yet
        self.throttle = Throttle(self._draw, max_fps, trailing=True, name="nbviz-landscape-draw")

    def __call__(self, *, live: bool = False, **what: bool) -> None:
        with self.lock:
            self.dirty.update(name for name, on in what.items() if on)
        if live:
            self.throttle.offer(True)
        else:
            self._draw(False)

    def flush(self) -> None:
        """Draw a waiting live update now (after one being drawn on another thread)."""
        self.throttle.flush()

    def close(self) -> None:
        """Drop a waiting update and its timer."""
        self.throttle.reset()

    def _draw(self, live: bool) -> None:
        with self.lock:
            dirty, self.dirty = self.dirty, set()
            state = self.state()
            if state is None or not dirty:
                return
            shown, levels, level_scale, show_path = state
            if dirty & {"surface", "hover"}:  # the read-out squares: when a grid ends
                hover = "hover" in dirty
                self.views.draw_surface(
                    shown, levels, level_scale, show_path, hover=hover, live=live
                )
            if "path" in dirty:
                self.views.draw_path(shown, level_scale, show_path, live=live)
            if "line" in dirty:
                self.views.draw_line(shown)
