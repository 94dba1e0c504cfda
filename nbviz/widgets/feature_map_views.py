"""The feature-map explorer's views: one channel's map (optionally over the image) or the grid
of all channels, drawn into one ``ipywidgets.Image``, with a one-line summary for the status.

:class:`MapView` owns its image widget and knows nothing about layers being computed: the
explorer hands it one image's activations and the view settings.
"""

from __future__ import annotations

import html
import time

import ipywidgets as widgets
import numpy as np

from ..featuremaps import map_stats, render_view
from ..featuremaps.render import Normalization, to_png

OVERLAY_ALPHA = 0.6


class MapView:
    """One map or the grid of all maps of a layer; :attr:`last_render_s` is the last draw's
    time (render and PNG encoding)."""

    def __init__(self) -> None:
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="256px"))
        self.last_render_s = 0.0

    def draw(
        self,
        acts: np.ndarray,
        layer: str,
        channel: int | None,
        cmap: str,
        normalization: Normalization,
        overlay_on: np.ndarray | None,
    ) -> str:
        """Draw ``acts`` (H, W, C): channel ``channel``, or the grid when it is ``None``
        (``overlay_on``: the display image to blend under a single map). Returns the summary
        (HTML) for the status line."""
        t0 = time.perf_counter()
        grid = channel is None
        rgb = render_view(
            acts,
            channel,
            cmap,
            normalization,
            image=overlay_on,
            overlay_alpha=OVERLAY_ALPHA if overlay_on is not None else None,
        )
        self.image.value = to_png(rgb)
        self.image.layout.width = "512px" if grid else "256px"
        self.last_render_s = time.perf_counter() - t0
        s = map_stats(acts if grid else acts[..., channel])
        n = acts.shape[-1]
        what = f"all {n} maps" if grid else f"channel {channel} of {n}"
        return (
            f"<b>{html.escape(layer)}</b> {what}: map {'x'.join(map(str, s['shape']))}, "
            f"min {s['min']:.4g}, max {s['max']:.4g}, mean {s['mean']:.4g}, "
            f"{s['zeros']:.0%} zeros"
        )
