"""The 3-D loss-surface view, behind one small interface so the renderer can be swapped.

:func:`make_surface_view` returns a :class:`SurfaceView`: ``.widget`` to display,
``.set_surface(xs, ys, Z)``, ``.set_path(a, b, z)``, ``.show_path`` and ``.close()``.
Two renderers implement it:

* ``"ipyvolume"``: an interactive WebGL mesh (rotate/zoom in the browser). Built from
  ``ipyvolume.Figure`` / ``Mesh`` / ``Scatter`` objects directly; ``ipyvolume.pylab`` is not
  used, because its ``figure()`` / ``plot_surface()`` keep a module-global "current figure"
  that two views in one kernel would fight over.
* ``"matplotlib"``: a 3-D surface rendered server-side (``matplotlib.figure.Figure`` on the
  Agg canvas, no pyplot) into an ``ipywidgets.Image``, with elevation/azimuth sliders.
  Works wherever images do (JupyterLab, Voila, VS Code, static exports).

Missing grid cells (NaN in ``Z``, e.g. a surface still being computed) are masked: every
triangle that touches a NaN vertex is dropped, so the surface grows as cells arrive.
Both renderers share that triangulation (:func:`grid_triangles`).

``kind="auto"`` picks matplotlib, whose live updates cost the page only an image decode.
ipyvolume is the choice for rotating by mouse, at a price during live updates: its front end
rebuilds the mesh and compiles fresh shaders at every update (ipyvolume 0.6.3 gives each
update's depth material a random ``alphaTest``, so no compiled program is reused); in a browser
without a GPU one such update blocked the page 0.4-0.6 s (traced, see
``benchmarks/browser_smoothness.py``). The environment variable ``NBVIZ_SURFACE3D``
(``ipyvolume`` or ``matplotlib``) overrides ``"auto"``.
"""

from __future__ import annotations

import html
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np

from nbviz.errors import DataError, PathError

from .closing import close_widget_tree
from .ticks import nice_ticks

# ipyvolume 0.6.3's front end renders in JupyterLab 4. Upstream built it for
# JupyterLab 3, so we prove it in a real browser (Chromium + SwiftShader WebGL, JupyterLab
# 4.6, Voila 0.5): tests/browser/test_render_stack.py::test_ipyvolume_plot_surface_renders,
# tests/browser/test_surface3d_browser.py (static view, and live updates of surface and
# path after display) and tests/browser/test_voila.py all see the mesh's colours on the
# canvas. The front end logs "Unsatisfied version 6.0.12 of shared singleton module
# @jupyter-widgets/base (required ^1.0 || ... || ^4.0)", and pylab's Vue legend panel
# raises "this.$set is not a function"; our view has no legend panel and raises nothing.

Kind = Literal["auto", "ipyvolume", "matplotlib"]
KINDS = ("auto", "ipyvolume", "matplotlib")
ENV_VAR = "NBVIZ_SURFACE3D"


# -- shared geometry -----------------------------------------------------------------------


def check_surface(xs, ys, Z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a grid surface; returns float64 ``xs`` (nx,), ``ys`` (ny,), ``Z`` (ny, nx)."""
    xs = np.asarray(xs, dtype=np.float64).reshape(-1)
    ys = np.asarray(ys, dtype=np.float64).reshape(-1)
    Z = np.asarray(Z, dtype=np.float64)
    if xs.size < 2 or ys.size < 2:
        raise DataError(
            f"A surface needs at least 2 grid coordinates per axis, got {xs.size} x values "
            f"and {ys.size} y values. Pass 1-D coordinate arrays of the grid's columns and rows."
        )
    if Z.shape != (ys.size, xs.size):
        hint = " (it looks transposed: pass Z.T)" if Z.shape == (xs.size, ys.size) else ""
        raise DataError(
            f"Z has shape {Z.shape} but the grid needs (len(ys), len(xs)) = "
            f"({ys.size}, {xs.size}): Z[iy, ix] is the value at (xs[ix], ys[iy]){hint}."
        )
    if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
        raise DataError("Grid coordinates xs and ys must be finite (no NaN/inf).")
    if np.isinf(Z).any():
        raise DataError(
            "Z contains inf values; use NaN for missing or diverged cells (they are masked)."
        )
    return xs, ys, Z


def check_path(a, b, z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a path on the surface: three 1-D arrays of equal length."""
    arrs = [np.asarray(v, dtype=np.float64).reshape(-1) for v in (a, b, z)]
    lengths = {v.size for v in arrs}
    if len(lengths) != 1:
        raise PathError(
            f"Path coordinates a, b, z have lengths {[v.size for v in arrs]}; they must be "
            "equal (one (a, b, loss) point per snapshot)."
        )
    return arrs[0], arrs[1], arrs[2]


def grid_triangles(finite: np.ndarray) -> np.ndarray:
    """Triangles (M, 3) over an (ny, nx) grid whose vertices are all finite.

    Vertex ``iy * nx + ix`` is grid cell ``(iy, ix)``. Each grid square is split into two
    triangles; a triangle is kept only if its three vertices are finite, so NaN cells cut
    holes instead of dragging the surface to zero.
    """
    ny, nx = finite.shape
    iy, ix = np.meshgrid(np.arange(ny - 1), np.arange(nx - 1), indexing="ij")
    v00 = (iy * nx + ix).reshape(-1)
    v01, v10 = v00 + 1, v00 + nx
    v11 = v10 + 1
    tris = np.concatenate([np.stack([v00, v01, v11], 1), np.stack([v00, v11, v10], 1)])
    ok = finite.reshape(-1)[tris].all(axis=1)
    return tris[ok].astype(np.uint32)


def resample(values: np.ndarray, n: int) -> np.ndarray:
    """``n`` points spread evenly (by index, linearly interpolated) along ``values``."""
    values = np.asarray(values, float)
    return np.interp(np.linspace(0, len(values) - 1, n), np.arange(len(values)), values)


def z_limits(Z: np.ndarray, path_z: np.ndarray | None = None) -> tuple[float, float]:
    """Finite (min, max) of the surface and path; a unit range when there is nothing."""
    vals = [Z[np.isfinite(Z)]]
    if path_z is not None:
        vals.append(path_z[np.isfinite(path_z)])
    v = np.concatenate(vals)
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


# -- the interface -------------------------------------------------------------------------


class SurfaceView:
    """A 3-D view of a loss surface Z[iy, ix] over (xs, ys), with a training path on it.

    Subclasses render; this class validates input and keeps the state, so ``set_surface``
    and ``set_path`` can be called in any order, from any thread (they only set traits).
    """

    kind: str = "base"

    def __init__(self, *, xlabel: str = "a", ylabel: str = "b", zlabel: str = "loss",
                 cmap: str = "viridis") -> None:  # fmt: skip
        self.xlabel, self.ylabel, self.zlabel, self.cmap = xlabel, ylabel, zlabel, cmap
        self.xs: np.ndarray | None = None
        self.ys: np.ndarray | None = None
        self.Z: np.ndarray | None = None
        self.path: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._show_path = True
        self._lock = threading.RLock()
        self._batch_depth = 0
        self._batched = False
        self.widget: Any = None

    @property
    def show_path(self) -> bool:
        """Whether the training path is drawn."""
        return self._show_path

    @show_path.setter
    def show_path(self, value: bool) -> None:
        with self._lock:
            self._show_path = bool(value)
            self._draw_path()

    def set_surface(self, xs, ys, Z) -> None:
        """Show the surface ``Z[iy, ix]`` at ``(xs[ix], ys[iy])``; NaN cells are left out."""
        xs, ys, Z = check_surface(xs, ys, Z)
        with self._lock:
            self.xs, self.ys, self.Z = xs, ys, Z
            self._draw_surface()

    def set_path(self, a, b, z) -> None:
        """Draw the path through ``(a[i], b[i], z[i])`` (plane coordinates and loss)."""
        path = check_path(a, b, z)
        with self._lock:
            self.path = path
            self._draw_path()

    def clear_path(self) -> None:
        """Remove the path."""
        with self._lock:
            self.path = None
            self._draw_path()

    def set_height_label(self, label: str) -> None:
        """Name what the height shows (e.g. ``"log10 loss"`` when the loss is drawn on a log
        scale); redrawn only when it changed."""
        with self._lock:
            if label != self.zlabel:
                self.zlabel = label
                self._draw_labels()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several updates (surface, path, its visibility, labels) into one redraw.

        Nested batches redraw once, when the outermost ends; a renderer whose updates are
        already incremental may ignore it."""
        with self._lock:
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1
                if self._batch_depth == 0 and self._batched:
                    self._batched = False
                    self._flush_batch()

    def _batching(self) -> bool:
        """Inside :meth:`batch`: note that a redraw is owed and return True (skip it now)."""
        if self._batch_depth:
            self._batched = True
            return True
        return False

    def _flush_batch(self) -> None:
        """Draw what the batch deferred (renderers that defer override this)."""

    def close(self) -> None:
        """Close every widget behind the view (children, materials, layouts...)."""
        if self.widget is not None:
            close_widget_tree(self.widget)

    def _ipython_display_(self) -> None:  # display(view) shows its widget
        from IPython.display import display

        display(self.widget)

    # -- renderer hooks (called with the lock held) -----------------------------------------
    def _draw_surface(self) -> None:
        raise NotImplementedError

    def _draw_path(self) -> None:
        raise NotImplementedError

    def _draw_labels(self) -> None:
        raise NotImplementedError


def readable_factor(lo: float, hi: float) -> float:
    """A power of ten that makes a range of values at least 0.5 wide: ipyvolume writes every
    tick label with one decimal ("0.0 0.0 0.0" for losses between 0.02 and 0.05), so such
    values are drawn times this factor and the label says so."""
    span = float(hi) - float(lo)
    if not np.isfinite(span) or span <= 0 or span >= 0.5:
        return 1.0
    return float(10.0 ** np.ceil(np.log10(0.5 / span)))


# -- ipyvolume ------------------------------------------------------------------------------


class IpyvolumeSurfaceView(SurfaceView):
    """Interactive WebGL surface (ipyvolume ``Figure`` + ``Mesh`` + ``Scatter``).

    ipyvolume's y axis points up, so the loss goes on y and the plane's b axis on z.
    """

    kind = "ipyvolume"

    #: The path floats this fraction of the height range above the surface (no z-fighting).
    PATH_LIFT = 0.015
    #: A longer path is drawn through this many points (resampled along it): a mark of a new
    #: length must be replaced (below), so a path growing during training would replace its
    #: mark (a sphere per point) at every live update.
    PATH_POINTS = 48
    #: Frames a second the front end's canvas stream may capture. ipyvolume 0.6.3 always
    #: calls ``canvas.captureStream()`` (for movie recording through ipywebrtc); without a
    #: rate the browser reads every rendered frame back from the GPU, which in software
    #: WebGL blocked the page 120-380 ms per redraw (traced: ``GLES2::ReadPixels`` under
    #: ``HTMLCanvasElement::NotifyListenersCanvasChanged``). With a rate this low it
    #: captures the first frame only. (0 would mean "on request", but the front end treats
    #: 0 as unset.)
    CAPTURE_FPS = 1e-6

    def __init__(self, *, width: int = 480, height: int = 400, **kw: Any) -> None:
        super().__init__(**kw)
        import ipyvolume as ipv  # the widget classes only; never ipyvolume.pylab

        self._ipv = ipv
        self.mesh: Any = None  # created on the first non-empty surface
        self.scatter: Any = None  # created on the first path
        import ipywidgets as w

        self.factor = 1.0  # heights are drawn times this (see readable_factor)
        # ipyvolume puts an axis label at the middle of its axis, inside the box: the height's
        # label would float mid-air, so it is written above the canvas instead. (A blank, not
        # an empty label: with "" the 0.6.3 front end draws nothing at all, browser-tested.)
        self.figure = ipv.Figure(
            width=width, height=height, meshes=[], scatters=[],
            xlabel=self.xlabel, ylabel=" ", zlabel=self.ylabel,
            animation=0.0, capture_fps=self.CAPTURE_FPS,
        )  # fmt: skip
        # look from above and the side (the default camera looks straight along z)
        self.figure.camera.position = (1.3, 1.1, 1.7)
        self.caption = w.HTML()
        self.widget = w.VBox([self.caption, self.figure])
        self._draw_labels()

    def _draw_labels(self) -> None:
        times = "" if self.factor == 1.0 else f" &times; {self.factor:g}"
        self.caption.value = (
            f"<span style='font-size: 13px'>height and colour: <b>{html.escape(self.zlabel)}"
            f"</b>{times}</span>"
        )

    # Browser tests (tests/browser/test_surface3d_browser.py) showed what the 0.6.3 front end
    # does with updates after display: new values for arrays of the same length, and a
    # visibility change sent on its own, are drawn; a change of an array's *length* and a
    # geometry change sent together with a visibility change are not. So objects whose
    # size changes are replaced, and nothing is hidden in the same message as new data.

    def _set_limits(self) -> None:
        assert self.Z is not None and self.xs is not None and self.ys is not None  # set_data ran
        lo, hi = z_limits(self.Z, self.path[2] if self.path is not None else None)
        s = self.figure.scales
        with self.figure.hold_sync():
            s["x"].min, s["x"].max = float(self.xs.min()), float(self.xs.max())
            s["z"].min, s["z"].max = float(self.ys.min()), float(self.ys.max())
            s["y"].min, s["y"].max = lo * self.factor, hi * self.factor

    def _draw_surface(self) -> None:
        from nbviz.imaging import apply_colormap

        Z = self.Z
        assert Z is not None and self.xs is not None and self.ys is not None  # set_data ran
        tris = grid_triangles(np.isfinite(Z))
        lo, hi = z_limits(Z)
        factor = readable_factor(lo, hi)
        if factor != self.factor:
            self.factor = factor
            self._draw_labels()
        X, Y = np.meshgrid(self.xs, self.ys)  # (ny, nx) like Z
        # ipyvolume's y axis is up: (a, loss, b); NaN heights are cut out by the triangles
        x, y, z = X.reshape(-1), np.where(np.isfinite(Z), Z, lo).reshape(-1), Y.reshape(-1)
        colors = apply_colormap((y - lo) / (hi - lo), self.cmap).astype(np.float32) / 255.0
        y = y * factor
        if not len(tris):
            self._replace("mesh", None)
        elif self.mesh is None or len(self.mesh.x) != len(x):
            self._replace("mesh", self._ipv.Mesh(
                x=x, y=y, z=z, triangles=tris, color=colors, description="surface",
            ))  # fmt: skip
        else:
            with self.mesh.hold_sync():
                self.mesh.x, self.mesh.y, self.mesh.z = x, y, z
                self.mesh.color = colors
                self.mesh.triangles = tris
        self._set_limits()
        if self.path is not None:  # the lift depends on the surface's range
            self._draw_path()

    def _draw_path(self) -> None:
        if self.path is None or not self.path[0].size:
            self._replace("scatter", None)
            return
        a, b, z = self.path
        if len(a) > self.PATH_POINTS:
            a, b, z = (resample(v, self.PATH_POINTS) for v in (a, b, z))
        if self.Z is not None:
            lo, hi = z_limits(self.Z, z)
            z = (z + self.PATH_LIFT * (hi - lo)) * self.factor
        if self.scatter is None or len(self.scatter.x) != len(a):
            self._replace("scatter", self._ipv.Scatter(
                x=a, y=z, z=b, color="red", size=1.5, geo="sphere", connected=True,
                visible=self._show_path, description="path",
                # the defaults of these two become 0-d arrays the comm cannot send (numpy 2)
                color_selected=None, size_selected=1.5,
            ))  # fmt: skip
        else:
            with self.scatter.hold_sync():
                self.scatter.x, self.scatter.y, self.scatter.z = a, z, b
            if self.scatter.visible != self._show_path:
                self.scatter.visible = self._show_path  # its own message, see above
        if self.Z is not None:
            self._set_limits()

    def _replace(self, which: str, new: Any) -> None:
        """Swap the figure's mesh or scatter for ``new`` (or none) and close the old one."""
        old = getattr(self, which)
        setattr(self, which, new)
        if which == "mesh":
            self.figure.meshes = [new] if new is not None else []
        else:
            self.figure.scatters = [new] if new is not None else []
        if old is not None:
            close_widget_tree(old)


# -- matplotlib -----------------------------------------------------------------------------


class MatplotlibSurfaceView(SurfaceView):
    """A 3-D surface rendered to PNG (Agg, no pyplot) into an ``ipywidgets.Image``.

    Rendering happens in the caller's thread on each change (a 41x41 grid takes ~0.1 s;
    changes inside :meth:`~SurfaceView.batch` render once); the elevation/azimuth sliders
    re-render the last surface from another angle.
    """

    kind = "matplotlib"

    def __init__(self, *, width: int = 480, height: int = 400, elev: float = 30.0,
                 azim: float = -60.0, dpi: int = 96, **kw: Any) -> None:  # fmt: skip
        super().__init__(**kw)
        import ipywidgets as w

        self.width, self.height, self.dpi = int(width), int(height), int(dpi)
        self.image = w.Image(format="png", width=self.width, height=self.height)
        self.elev = w.FloatSlider(value=elev, min=-90, max=90, step=5, description="elevation",
                                  continuous_update=False)  # fmt: skip
        self.azim = w.FloatSlider(value=azim, min=-180, max=180, step=5, description="azimuth",
                                  continuous_update=False)  # fmt: skip
        self.elev.observe(self._on_angle, "value")
        self.azim.observe(self._on_angle, "value")
        self.widget = w.VBox([self.image, w.HBox([self.elev, self.azim])])
        self.renders = 0

    def _on_angle(self, _change: Any) -> None:
        with self._lock:
            self._render()

    def _draw_surface(self) -> None:
        self._render()

    def _draw_path(self) -> None:
        self._render()

    def _draw_labels(self) -> None:
        self._render()

    def render_png(self) -> bytes:
        """The current surface and path as PNG bytes."""
        import io

        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(self.width / self.dpi, self.height / self.dpi), dpi=self.dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(projection="3d")
        ax.set_box_aspect(None, zoom=0.8)  # room for the axis labels
        ax.tick_params(labelsize=8, pad=1)
        ax.set_xlabel(self.xlabel, fontsize=9, labelpad=4)
        ax.set_ylabel(self.ylabel, fontsize=9, labelpad=4)
        # the height's label reads upwards beside its tick labels, not across them
        ax.zaxis.set_rotate_label(False)
        ax.set_zlabel(self.zlabel, fontsize=9, labelpad=8, rotation=90)
        path_z = self.path[2] if (self.path is not None and self._show_path) else None
        if self.Z is not None:
            assert self.xs is not None and self.ys is not None  # set with Z
            tris = grid_triangles(np.isfinite(self.Z))
            X, Y = np.meshgrid(self.xs, self.ys)
            lo, hi = z_limits(self.Z, path_z)
            if len(tris):
                ax.plot_trisurf(
                    X.reshape(-1), Y.reshape(-1), np.nan_to_num(self.Z.reshape(-1), nan=lo),
                    triangles=tris, cmap=self.cmap, linewidth=0, antialiased=False,
                    vmin=float(np.nanmin(self.Z)), vmax=float(np.nanmax(self.Z)),
                )  # fmt: skip
            ax.set_xlim(self.xs.min(), self.xs.max())
            ax.set_ylim(self.ys.min(), self.ys.max())
            ax.set_zlim(lo, hi)
            for set_ticks, (a, b) in (
                (ax.set_xticks, (self.xs.min(), self.xs.max())),
                (ax.set_yticks, (self.ys.min(), self.ys.max())),
                (ax.set_zticks, (lo, hi)),
            ):
                set_ticks(nice_ticks(a, b, 5))
        if path_z is not None and path_z.size:
            assert self.path is not None
            a, b, z = self.path
            ax.plot(a, b, z, color="red", marker="o", markersize=2.5, linewidth=1.5, zorder=10)
        ax.view_init(elev=self.elev.value, azim=self.azim.value)
        fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi)
        return buf.getvalue()

    def _render(self) -> None:
        if self._batching():  # one picture for the whole batch
            return
        self.image.value = self.render_png()
        self.renders += 1

    def _flush_batch(self) -> None:
        self._render()


# -- factory --------------------------------------------------------------------------------


def ipyvolume_available() -> bool:
    """True if ipyvolume imports (0.6.3 needs ``ipython_genutils``, undeclared upstream)."""
    try:
        import ipyvolume  # noqa: F401
    except Exception:  # ImportError, or ipyvolume's own import-time failures
        return False
    return True


def resolve_kind(kind: str = "auto") -> str:
    """The renderer ``make_surface_view(kind)`` would use: "ipyvolume" or "matplotlib"."""
    if kind not in KINDS:
        raise ValueError(f"Unknown 3-D view kind {kind!r}; use one of {', '.join(KINDS)}.")
    if kind == "auto":
        forced = os.environ.get(ENV_VAR, "").strip().lower()
        if forced:
            if forced not in KINDS[1:]:
                raise ValueError(
                    f"{ENV_VAR}={forced!r} is not a 3-D view kind; "
                    "set it to 'ipyvolume' or 'matplotlib', or unset it."
                )
            kind = forced
        else:
            kind = "matplotlib"
    if kind == "ipyvolume" and not ipyvolume_available():
        raise ImportError(
            "The ipyvolume 3-D view needs ipyvolume==0.6.3 and ipython_genutils: "
            "pip install ipyvolume==0.6.3 ipython_genutils, or use kind='matplotlib'."
        )
    return kind


def make_surface_view(kind: Kind = "auto", *, width: int = 480, height: int = 400,
                      xlabel: str = "a", ylabel: str = "b", zlabel: str = "loss",
                      cmap: str = "viridis", **options: Any) -> SurfaceView:  # fmt: skip
    """Create a 3-D surface view.

    Parameters
    ----------
    kind:
        ``"ipyvolume"`` (WebGL, rotate with the mouse; costly live updates, see the module
        docstring), ``"matplotlib"`` (PNG image with angle sliders, works everywhere) or
        ``"auto"`` (matplotlib; ``NBVIZ_SURFACE3D`` overrides).
    width, height:
        Size in pixels.
    xlabel, ylabel, zlabel:
        Axis names of the plane's two directions and of the height (the loss).
    cmap:
        Matplotlib colormap name colouring the surface by height.
    options:
        Renderer-specific: ``elev``, ``azim``, ``dpi`` for matplotlib.
    """
    chosen = resolve_kind(kind)
    cls = IpyvolumeSurfaceView if chosen == "ipyvolume" else MatplotlibSurfaceView
    return cls(width=width, height=height, xlabel=xlabel, ylabel=ylabel, zlabel=zlabel,
               cmap=cmap, **options)  # fmt: skip
