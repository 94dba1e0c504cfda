"""Live training for the landscape widget: the :class:`LiveTraining` part that owns the
:class:`~nbviz.landscape.watch.LandscapeWatcher` callback and draws what it reports, and the
one-call :func:`watch`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..landscape.watch import LandscapeWatcher, PathFrame, SurfaceFrame
from .landscape_views import axis_labels

if TYPE_CHECKING:
    from .landscape import LossLandscapeWidget

#: Options of :meth:`LossLandscapeWidget.watch` (the rest of :func:`watch`'s go to the widget).
WATCH_OPTIONS = frozenset(
    {
        "every_k_batches",
        "recompute_s",
        "recompute_every",
        "subset",
        "max_duty",
        "prime",
        "memory_budget_mb",
        "overflow",
        "path_interval_s",
        "order",
    }
)


class LiveTraining:
    """The widget's live-training part: makes the watcher from the widget's settings and
    draws its path and surface frames (called on the watcher's delivery thread)."""

    def __init__(self, widget: LossLandscapeWidget) -> None:
        self.widget = widget
        self.watcher: LandscapeWatcher | None = None

    def start(
        self,
        *,
        every_k_batches: int,
        recompute_s: float,
        recompute_every: int | None,
        subset: int | None,
        resolution: int | None,
        max_duty: float,
        **kwargs: Any,
    ) -> LandscapeWatcher:
        """A new watcher (closing the previous one) with the widget's directions and grid;
        ``kwargs`` go to :class:`~nbviz.landscape.watch.LandscapeWatcher`."""
        w = self.widget
        self.close()
        kind = w.directions if w.directions in ("pca", "hessian") else "random"
        self.watcher = LandscapeWatcher(
            w.x,
            w.y,
            directions=kind,
            resolution=int(resolution or min(w.resolution, 21)),
            extent=None if w.auto_extent else w.extent,
            spacing=w.spacing,
            subset=subset or None,
            every_k_batches=every_k_batches,
            recompute_s=recompute_s,
            recompute_every=recompute_every,
            max_duty=max_duty,
            loss=w.loss,
            seed=w.seed,
            regularization=w.regularization,
            on_path=self._on_path,
            on_surface=self._on_surface,
            on_error=w._on_worker_error,
            on_busy=lambda running: w.controls.show_running(running, "watch"),
            **kwargs,
        )
        return self.watcher

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()

    def _on_path(self, frame: PathFrame) -> None:
        w = self.widget
        if w._closed or frame.coords is None:
            return
        with w._lock:
            if frame.directions is not w.shown.directions:
                return  # the plane is changing; the surface frame brings the new one
            w.shown.path_coords, w.shown.path_steps = frame.coords, frame.steps
            w._draw(path=True, live=True)
            w.controls.progress_label.value = f"batch {frame.batch}, {len(frame.steps)} snapshots"

    def _on_surface(self, frame: SurfaceFrame) -> None:
        w = self.widget
        if w._closed:
            return
        with w._lock:
            live = self.watcher.path_frame() if self.watcher is not None else None
            w.shown.take_live(frame, live)
            w.plane_view.set_axis_labels(axis_labels(frame.directions))
            last = frame.final and frame.done == frame.total
            w._draw(surface=True, path=True, hover=last, live=not last)
            w.controls.show_progress(frame.done, frame.total, frame.elapsed_s, frame.eta_s)
            n = self.watcher.recomputes if self.watcher is not None else 0
            w.controls.set_status(frame.describe(n))
