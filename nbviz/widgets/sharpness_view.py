"""``SharpnessView``: the live sharpness curve and its stability line (a bqplot line chart).

The view owns its marks and has one update method, :meth:`SharpnessView.show`, that takes
the tracker's history (every estimate so far) and sets traits only, so it may be called from
the tracker's worker thread. The title says which quantity is plotted; the line is drawn only
where the optimizer has a known threshold, and its legend says when it holds only for
full-batch descent.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import bqplot
import ipywidgets as widgets
import numpy as np

from ..landscape.sharpness import SharpnessEstimate, SharpnessTracker

__all__ = ["SharpnessView"]


class SharpnessView(widgets.VBox):
    """Sharpness (or preconditioned sharpness) per training batch, with its threshold line."""

    def __init__(self, width: str = "520px", height: str = "300px") -> None:
        self.x_scale, self.y_scale = bqplot.LinearScale(), bqplot.LinearScale(min=0.0)
        xy = {"x": self.x_scale, "y": self.y_scale}
        self.curve = bqplot.Lines(
            x=np.zeros(0),
            y=np.zeros(0),
            scales=xy,
            colors=["#1f77b4"],
            marker="circle",
            marker_size=10,
            labels=["sharpness"],
        )
        self.line = bqplot.Lines(
            x=np.zeros(0),
            y=np.zeros(0),
            scales=xy,
            colors=["#d62728"],
            line_style="dashed",
            labels=["stability line"],
        )
        self.figure = bqplot.Figure(
            marks=[self.curve, self.line],
            axes=[
                bqplot.Axis(scale=self.x_scale, label="batch"),
                bqplot.Axis(
                    scale=self.y_scale,
                    side="left",
                    label="top eigenvalue",
                    tick_format=".3~g",
                    label_offset="58px",
                ),
            ],
            # No legend (bqplot drew an empty box over the axis): the title names the curve
            # and the note under the chart the dashed line.
            title="sharpness",
            animation_duration=0,
            fig_margin={"top": 40, "bottom": 45, "left": 80, "right": 20},
            layout=widgets.Layout(width=width, height=height),
        )
        self.note = widgets.HTML()
        super().__init__(children=[self.figure, self.note])

    def show(self, history: Sequence[SharpnessEstimate]) -> None:
        """Draw every estimate so far (call with the tracker's history; sets traits only)."""
        if not history:
            return
        last = history[-1]
        steps = np.array([e.step for e in history], dtype=float)
        values = np.array([e.value for e in history])
        limits = np.array(
            [np.nan if e.threshold.value is None else e.threshold.value for e in history]
        )
        quantity = last.threshold.quantity
        with self.curve.hold_sync():
            self.curve.x, self.curve.y = steps, values
            self.curve.labels = [quantity]
        with self.line.hold_sync():
            if np.isfinite(limits).any():
                self.line.x, self.line.y = steps, limits  # NaN breaks the line where none holds
                self.line.labels = [last.threshold.label]
            else:
                self.line.x, self.line.y = np.zeros(0), np.zeros(0)
        top = np.nanmax(np.concatenate([values, limits]))
        self.y_scale.max = float(top * 1.1) if np.isfinite(top) and top > 0 else None
        self.figure.title = f"{quantity} (top eigenvalue{' of P⁻¹H' if 'pre' in quantity else ''})"
        info = last.info
        self.note.value = html.escape(
            f"batch {last.step}: {quantity} {last.value:.4g}; {last.threshold.label}; "
            f"{info.get('n_examples')} examples in batches of {info.get('batch_size')}, "
            f"{last.n_products} Hessian-vector products"
            + (" (warm start)" if info.get("warm_start") else "")
        )

    def attach_to(self, tracker: Any) -> None:
        """Make ``tracker`` (a :class:`~nbviz.landscape.sharpness.SharpnessTracker`) draw here."""
        tracker.on_estimate = lambda _estimate, history: self.show(history)


def add_sharpness(widget: Any, callback: Any, options: Any = True) -> SharpnessTracker:
    """Attach a live :class:`SharpnessTracker` to a landscape ``widget`` and its watch
    ``callback`` (it runs from the callback's hooks), shown in a :class:`SharpnessView` below
    the landscape. ``options``: True, batches between estimates, or tracker keyword options.
    The tracker's data, loss and regularization are the widget's."""
    if options is True:
        options = {}
    elif isinstance(options, (int, float)):
        options = {"every_k_batches": int(options)}
    options = {"loss": widget.loss, "regularization": widget.regularization, **dict(options)}
    view = SharpnessView()
    tracker = SharpnessTracker(widget.x, widget.y, on_error=widget._on_worker_error, **options)
    view.attach_to(tracker)
    callback.attach(tracker)
    callback.sharpness = tracker
    widget.sharpness_view = view
    widget.children = (*widget.children, view)
    return tracker
