"""Surface files for the landscape widget: the :class:`SurfaceFiles` part that saves what is
shown, loads a file into the widget and remembers which file :meth:`compute` resumes."""

from __future__ import annotations

import dataclasses
import html
import os
from typing import TYPE_CHECKING

import numpy as np

from ..landscape.planes import ResumeGrid
from ..landscape.shown import ShownLandscape
from .landscape_views import axis_labels

if TYPE_CHECKING:
    from .landscape import LossLandscapeWidget


class SurfaceFiles:
    """Save and load :class:`~nbviz.landscape.SurfaceFile` s for ``widget``; ``resume`` is the
    file (and its grid) the next computation continues, None once the grid settings change."""

    def __init__(self, widget: LossLandscapeWidget) -> None:
        self.widget = widget
        self.resume: ResumeGrid | None = None

    def save(self, path: str | os.PathLike) -> str:
        """Write the shown surface (finished cells, directions, path); later computations of
        the same grid resume into it. Returns the path."""
        w = self.widget
        with w._lock:
            shown = dataclasses.replace(w.shown)
        saved = shown.save(path)
        assert shown.surface is not None  # saved
        with w._lock:
            self.resume = ResumeGrid(saved, shown.surface.xs, shown.surface.ys)
        return saved

    def load(self, path: str | os.PathLike) -> None:
        """Show the file's surface and path with its directions, grid, subset and seed set on
        the widget (so that Compute evaluates the same data and resumes the missing cells)."""
        w = self.widget
        shown, info = ShownLandscape.load(path, w.model)
        surface = shown.surface
        assert surface is not None and shown.directions is not None  # a file has both
        with w._lock:
            w._custom = shown.directions
            options = [o for o in w.controls.directions_dropdown.options if o[1] != "custom"]
            w.controls.directions_dropdown.options = options + [("from file", "custom")]
            w._quiet_set(
                directions="custom",
                mode="2d",
                subset=int(info.get("subset") or 0),
                seed=int(info.get("subset_seed") or 0),
                resolution=len(surface.xs),
                auto_extent=False,
                extent=float(np.max(np.abs(surface.xs))),
            )
            self.resume = ResumeGrid(os.fspath(path), surface.xs, surface.ys)
            shown.line, shown.last_update = w.shown.line, w.shown.last_update
            w.shown = shown
            w.plane_view.set_axis_labels(axis_labels(shown.directions))
            w._draw(surface=True, path=True, hover=True)
            w.controls.show_progress(surface.n_done, surface.done.size, 0.0, None)
        w.controls.set_status(
            f"loaded {html.escape(os.fspath(path))}: {surface.n_done} of "
            f"{surface.done.size} cells; Compute resumes the missing ones."
        )
