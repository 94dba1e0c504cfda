"""What a landscape view shows, without the view: the surface or line, the plane, the path.

:class:`ShownLandscape` is the landscape widget's model (the widget draws it and turns
controls into requests). It takes the frames a computation publishes -- the planned
:class:`~.planes.Plane`, :class:`~.surface.GridUpdate` chunks and the finished
:class:`~.surface.Line` -- and knows what can be done with the result without any widget:
save it to a resumable :class:`~.storage.SurfaceFile` and load it back, export it as a PNG
(matplotlib), and say in one sentence what was computed. It imports no widget code.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import NbvizError
from .directions import Directions
from .planes import Plane
from .plot import plot_contour, plot_line, plot_path
from .storage import SurfaceFile
from .surface import GridUpdate, Line, Surface
from .watch import PathFrame, SurfaceFrame

__all__ = ["ShownLandscape", "RUN_INFO_KEYS"]

RUN_INFO_KEYS = ("loss", "metrics", "data_fingerprint", "n_examples", "n_total", "subset",
                 "subset_seed", "batch_size", "strategy", "chunk", "per_example_loss")  # fmt: skip


@dataclass(eq=False)
class ShownLandscape:
    """The surface (or line) shown, its directions and the training path in their plane."""

    surface: Surface | None = None
    line: Line | None = None
    directions: Directions | None = None
    path_coords: np.ndarray | None = None  # (n, 2) plane coordinates of the path
    path_steps: np.ndarray | None = None
    path_residual: np.ndarray | None = None  # the path's relative distance off the plane
    last_update: GridUpdate | None = None

    def take(self, frame: Plane | GridUpdate | Line) -> None:
        """Keep what a computation published: its plane, a finished chunk, or the line."""
        if isinstance(frame, Plane):
            self.directions = frame.directions
            self.path_coords, self.path_steps = frame.coords, frame.steps
            self.path_residual = frame.residual
        elif isinstance(frame, GridUpdate):
            self.last_update = frame
            self.surface = frame.surface
        else:
            self.line = frame

    def take_live(self, frame: SurfaceFrame, live: PathFrame | None = None) -> None:
        """Keep a landscape recomputed during training, with the path as recorded by now
        (``live``) when it lies in the frame's plane, else as it was when computed."""
        if live is None or live.directions is not frame.directions or live.coords is None:
            live = frame.path
        self.surface, self.directions = frame.surface, frame.directions
        self.path_coords, self.path_steps, self.path_residual = live.coords, live.steps, None

    def version(self) -> tuple | None:
        """A cheap key that changes when what is shown changes (new surface, more finished
        cells, a new line or path); None while nothing is shown."""
        if self.surface is None and self.line is None:
            return None
        done = -1 if self.surface is None else int(self.surface.done.sum())
        path = None if self.path_coords is None else (id(self.path_coords), len(self.path_coords))
        return (id(self.surface), done, id(self.line), path)

    def title(self) -> str:
        """The plot's title: with the number of examples once known."""
        n = self.surface.metadata.get("n_examples") if self.surface is not None else None
        return f"loss landscape ({n} examples)" if n else "loss landscape"

    def summary(self, took: float, stopped: bool, line: bool = False) -> str:
        """One sentence on the finished (or stopped) surface, or the ``line``."""
        if line and self.line is not None:
            return f"line of {len(self.line.ts)} points in {took:.2f} s"
        s = self.surface
        if s is None:
            return "stopped before the first chunk." if stopped else "done."
        what = (
            f"stopped: kept {s.n_done} of {s.done.size} cells"
            if stopped and not s.complete
            else f"{s.done.size} cells"
        )
        bad = int(s.nonfinite.sum())
        return f"{what} in {took:.2f} s" + (f"; {bad} non-finite" if bad else "") + self.path_note()

    def path_note(self) -> str:
        """How far the path lies off the plane (empty without a residual)."""
        r = self.path_residual
        if r is None or not len(r):
            return ""
        return f"; path off-plane residual: median {np.median(r):.0%}"

    def save(self, path: str | os.PathLike) -> str:
        """Write the surface (finished cells, directions, path) to a resumable
        :class:`~.storage.SurfaceFile` (overwritten). Returns the path."""
        surface, dirs = self.surface, self.directions
        if surface is None or dirs is None:
            raise NbvizError("Nothing to save yet. Fix: compute a surface first (compute()).")
        info = {k: surface.metadata[k] for k in RUN_INFO_KEYS if k in surface.metadata}
        sf = SurfaceFile.create(
            path, dirs, surface.xs, surface.ys, list(surface.metrics), info, overwrite=True
        )
        try:
            iy, ix = np.nonzero(surface.done)
            stderr = None if surface.stderr is None else surface.stderr[iy, ix]
            metrics = {k: v[iy, ix] for k, v in surface.metrics.items()}
            sf.write_cells(iy, ix, surface.loss[iy, ix], metrics, stderr)
            if self.path_coords is not None:
                sf.write_path(self.path_coords, self.path_steps, self.path_residual)
        finally:
            sf.close()
        return os.fspath(path)

    @classmethod
    def load(cls, path: str | os.PathLike, model: Any) -> tuple[ShownLandscape, dict]:
        """A saved surface file of ``model``'s, and its run information (subset, seed...)."""
        sf = SurfaceFile.open(path, mode="r", model=model)
        try:
            dirs, surface, stored = sf.directions, sf.surface(), sf.read_path()
            info = dict(sf.info)
        finally:
            sf.close()
        shown = cls(surface=surface, directions=dirs)
        if stored is not None:
            shown.path_coords = stored["coords"][:, :2]
            shown.path_steps = stored.get("steps")
            shown.path_residual = stored.get("residual")
        return shown, info

    def png(
        self,
        *,
        line: bool,
        levels: int = 20,
        log: bool = True,
        show_path: bool = True,
        labels: tuple[str, str] = ("a", "b"),
        dpi: int = 120,
    ) -> bytes:
        """A PNG (matplotlib) of the ``line``, or of the surface's contours with the path."""
        if line:
            if self.line is None:
                raise NbvizError("No line computed yet. Fix: compute() in 1-D mode first.")
            ax = plot_line(self.line, title="loss along a line")
        else:
            if self.surface is None:
                raise NbvizError("No surface computed yet. Fix: compute() first.")
            ax = plot_contour(self.surface, levels=levels, log=log)
            coords = self.path_coords
            if coords is not None and show_path and len(coords):
                plot_path(coords, ax, steps=self.path_steps)
            ax.set_xlabel(labels[0])
            ax.set_ylabel(labels[1])
        buf = io.BytesIO()
        ax.figure.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()
