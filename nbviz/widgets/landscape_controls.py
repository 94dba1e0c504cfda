"""The landscape widget's controls: one object that builds them, names them by the widget
trait each one edits, and lays them out above the plots."""

from __future__ import annotations

import time

import ipywidgets as widgets
import numpy as np

from ..landscape.shown import ShownLandscape
from ..landscape.surface import Surface
from .status import error_html, status_html


def direction_kinds(interpolation: bool, given: bool) -> list[tuple[str, str]]:
    """The directions menu: PCA, random and Hessian, interpolation when there is another
    model, and the given directions when there are some."""
    kinds = [("PCA of path", "pca"), ("random", "random"), ("Hessian top-2", "hessian")]
    if interpolation:
        kinds.append(("interpolation", "interpolation"))
    if given:
        kinds.append(("given", "custom"))
    return kinds


def grid_extent(surface: Surface) -> float:
    """The half-width of ``surface``'s grid, to 4 digits: what the range box shows under
    "auto" (the extent in use, not the number typed last)."""
    extent = max(float(np.max(np.abs(surface.xs))), float(np.max(np.abs(surface.ys))))
    return float(f"{extent:.4g}") if extent > 0 else 1.0


def progress_text(done: int, total: int, elapsed: float, eta: float | None) -> str:
    """``"done/total cells, elapsed s, ETA eta s"``; no ETA when unknown or finished."""
    eta_s = "" if eta is None or done >= total else f", ETA {eta:.1f} s"
    return f"{done}/{total} cells, {elapsed:.1f} s{eta_s}"


class LandscapeControls:
    """Directions, grid, contour and computing controls, the progress bar and the status line.
    ``kinds`` are the directions menu's ``(label, value)`` options."""

    def __init__(self, kinds: list[tuple[str, str]]) -> None:
        lay = widgets.Layout
        self.directions_dropdown = widgets.Dropdown(
            options=kinds, description="directions", layout=lay(width="230px")
        )
        self.extent_box = widgets.BoundedFloatText(
            min=1e-6, max=1e6, step=0.1, description="range", layout=lay(width="160px")
        )
        self.auto_box = widgets.Checkbox(description="auto", indent=False, layout=lay(width="70px"))
        self.resolution_slider = widgets.IntSlider(
            min=3, max=101, description="resolution", continuous_update=False
        )
        self.spacing_buttons = widgets.ToggleButtons(
            options=["linear", "cubed"], style={"button_width": "60px"}
        )
        self.subset_box = widgets.BoundedIntText(
            min=0, max=10**9, description="subset", tooltip="examples (0 = all)",
            layout=lay(width="160px"),
        )  # fmt: skip
        self.levels_slider = widgets.IntSlider(
            min=2, max=60, description="levels", continuous_update=False
        )
        self.scale_buttons = widgets.ToggleButtons(
            options=["log", "linear"], style={"button_width": "60px"}
        )
        self.order_dropdown = widgets.Dropdown(
            options=[("coarse first", "coarse_to_fine"), ("row by row", "raster")],
            description="order", layout=lay(width="200px"),
        )  # fmt: skip
        self.mode_buttons = widgets.ToggleButtons(
            options=[("2-D", "2d"), ("1-D", "1d")], style={"button_width": "50px"}
        )
        self.path_box = widgets.Checkbox(
            description="show path", indent=False, layout=lay(width="110px")
        )
        self.compute_button = widgets.Button(
            description="Compute", button_style="primary", icon="play"
        )
        self.stop_button = widgets.Button(description="Stop", icon="stop", disabled=True)
        self.progress = widgets.IntProgress(min=0, max=1, value=0, layout=lay(width="240px"))
        self.progress_label = widgets.HTML()
        self.status = widgets.HTML()
        self._running: set[str] = set()  # what runs now: "grid", "watch"
        self._t0 = time.monotonic()

    def by_trait(self) -> dict[str, widgets.Widget]:
        """Each setting control under the name of the widget trait it edits."""
        return {
            "directions": self.directions_dropdown,
            "extent": self.extent_box,
            "auto_extent": self.auto_box,
            "resolution": self.resolution_slider,
            "spacing": self.spacing_buttons,
            "subset": self.subset_box,
            "levels": self.levels_slider,
            "level_scale": self.scale_buttons,
            "order": self.order_dropdown,
            "mode": self.mode_buttons,
            "show_path": self.path_box,
        }

    def panel(self, plots: list[widgets.Widget]) -> list[widgets.Widget]:
        """The widget's rows: settings, computing, the ``plots`` side by side, the status."""
        return [
            widgets.HBox(
                [self.directions_dropdown, self.extent_box, self.auto_box, self.mode_buttons]
            ),
            widgets.HBox([self.resolution_slider, self.spacing_buttons, self.subset_box]),
            widgets.HBox(
                [self.levels_slider, self.scale_buttons, self.order_dropdown, self.path_box]
            ),
            widgets.HBox(
                [self.compute_button, self.stop_button, self.progress, self.progress_label]
            ),
            widgets.HBox(plots),
            self.status,
        ]

    def set_status(self, text: str) -> None:
        """Show ``text`` (HTML) in the status line."""
        self.status.value = status_html(text)

    def show_error(self, exc: BaseException) -> None:
        """Show an error in the status line: its type (``unexpected`` unless an nbviz error)
        and message."""
        self.status.value = error_html(exc)

    def show_progress(
        self, done: int, total: int, elapsed: float | None, eta: float | None
    ) -> None:
        """``done`` of ``total`` cells after ``elapsed`` seconds (``None``: since the grid
        started, :meth:`elapsed`), ``eta`` seconds to go (an estimate from finished cells;
        ``None``: not known yet, and not shown)."""
        elapsed = self.elapsed() if elapsed is None else elapsed
        self.progress.max, self.progress.value = max(int(total), 1), int(done)
        self.progress_label.value = progress_text(done, total, elapsed, eta)

    def show_done(self, shown: ShownLandscape, stopped: bool, failed: bool, line: bool) -> None:
        """A run ended: the bar's colour (failed, stopped or done), the final counts on the
        progress label's clock, and ``shown``'s summary in the status line (the error stays
        there when ``failed``)."""
        self.show_running(False)
        if failed:
            self.progress.bar_style = "danger"
            return
        took = self.elapsed()
        line = line and shown.line is not None
        if line:
            self.progress.max, self.progress.value = 1, 1
        elif shown.surface is not None:
            self.progress.bar_style = "warning" if stopped else "success"
            self.show_progress(shown.surface.n_done, shown.surface.done.size, took, None)
        self.set_status(shown.summary(took, stopped, line))

    def elapsed(self) -> float:
        """Seconds since the widget's grid (or line) started: the one clock of its progress
        label and its summary."""
        return time.monotonic() - self._t0

    def show_running(self, running: bool, what: str = "grid") -> None:
        """``what`` (the widget's ``"grid"`` or line, a ``"watch"`` recompute) started or
        ended. Stop is enabled while anything runs (a new run's progress bar starts empty);
        Compute always: during a run it restarts with the current settings."""
        if running:
            self._running.add(what)
            if what == "grid":
                self._t0 = time.monotonic()
        else:
            self._running.discard(what)
        running = bool(self._running)
        self.compute_button.disabled, self.stop_button.disabled = False, not running
        self.compute_button.tooltip = (
            "stop the running computation and start again with these settings"
            if running
            else "compute the landscape with these settings"
        )
        if running:
            self.progress.value, self.progress.bar_style = 0, "info"
            self.progress_label.value = ""  # no counts or ETA before the first finished cells

    def widen_resolution(self, value: int) -> None:
        """Let the resolution slider show ``value`` even beyond its usual range."""
        slider = self.resolution_slider
        if not slider.min <= value <= slider.max:
            slider.min, slider.max = min(slider.min, value), max(slider.max, value)
