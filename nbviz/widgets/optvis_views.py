"""The optvis widget's views: the image (or gallery of tiles) and the objective curve.

:class:`ResultViews` owns its marks and widgets and exposes ``show_*`` / ``draw_*`` methods,
like bqplot's composite figures; it knows nothing about runs. The widget
(:mod:`nbviz.widgets.optvis`) feeds it what the headless session
(:mod:`nbviz.optvis.session`) recorded.
"""

from __future__ import annotations

from collections.abc import Callable

import bqplot
import ipywidgets as widgets
import numpy as np

from ..imaging import encode_image
from ..optvis.session import GALLERY_COLUMNS, picture
from .closing import close_widget_tree

MAX_CURVE_POINTS = 400


def curve_points(losses: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, mean objective)`` of at most :data:`MAX_CURVE_POINTS` steps, the last kept."""
    n = len(losses)
    stride = max(1, n // MAX_CURVE_POINTS)
    idx = np.arange(0, n, stride)
    if idx[-1] != n - 1:
        idx = np.append(idx, n - 1)
    return (idx + 1).astype(np.float64), np.asarray([losses[i].mean() for i in idx], np.float64)


class ResultViews:
    """The rendered image, the gallery tiles (each with an "open" button) and the curve."""

    def __init__(self, on_open: Callable[[int], None]) -> None:
        self.on_open = on_open
        self.image = widgets.Image(
            format="png",
            layout=widgets.Layout(width="256px", height="256px", min_width="256px",
                                  object_fit="contain"),
        )  # fmt: skip
        self.tile_images: list[widgets.Image] = []
        self.tile_buttons: list[widgets.Button] = []
        self.tile_boxes: list[widgets.VBox] = []
        self.gallery_grid = widgets.GridBox(
            layout=widgets.Layout(grid_template_columns=f"repeat({GALLERY_COLUMNS}, 120px)")
        )
        x, y = bqplot.LinearScale(), bqplot.LinearScale()
        self.loss_line = bqplot.Lines(x=[], y=[], scales={"x": x, "y": y}, colors=["#1f77b4"])
        self.loss_figure = bqplot.Figure(
            marks=[self.loss_line],
            axes=[
                bqplot.Axis(scale=x, label="step", num_ticks=5),
                bqplot.Axis(scale=y, side="left", label="objective", tick_format=".3g"),
            ],
            animation_duration=0,
            title="objective",
            layout=widgets.Layout(width="320px", height="260px", flex="0 0 auto"),
            fig_margin={"top": 40, "bottom": 40, "left": 60, "right": 10},
        )

    def row(self, settings: widgets.Widget) -> widgets.HBox:
        """The settings panel, the image (or gallery) and the curve side by side; in a narrow
        pane the curve wraps below."""
        return widgets.HBox(
            [
                settings,
                widgets.VBox(
                    [self.image, self.gallery_grid],
                    layout=widgets.Layout(flex="0 0 auto", margin="0 8px"),
                ),
                self.loss_figure,
            ],
            layout=widgets.Layout(flex_flow="row wrap"),
        )

    def show_images(self, images: np.ndarray, fmt: str, gallery: bool) -> None:
        """A frame: into the tiles in gallery mode, else (or for one row) into the image."""
        if len(self.tile_images) == images.shape[0] and gallery:
            for tile, img in zip(self.tile_images, images, strict=True):
                tile.value = encode_image(img, fmt)
        if not gallery or images.shape[0] == 1:
            with self.image.hold_sync():
                self.image.format = fmt
                self.image.value = encode_image(picture(images), fmt)

    def draw_curve(self, losses: list[np.ndarray]) -> None:
        """The mean objective per step (thinned), or nothing yet."""
        if not losses:
            return
        x, y = curve_points(losses)
        with self.loss_line.hold_sync():
            self.loss_line.x, self.loss_line.y = x, y

    def set_tiles(self, n: int) -> None:
        """``n`` gallery tiles (rebuilt only when the count changes)."""
        if n == len(self.tile_images):
            return
        close_widget_tree(self.tile_boxes)
        self.tile_images, self.tile_buttons, self.tile_boxes = [], [], []
        for i in range(n):
            img = widgets.Image(format="png", layout=widgets.Layout(width="112px", height="112px"))
            button = widgets.Button(
                description=f"open {i}", tooltip="show this tile on its own",
                layout=widgets.Layout(width="112px"),
            )  # fmt: skip
            button.on_click(lambda _b, i=i: self.on_open(i))
            self.tile_images.append(img)
            self.tile_buttons.append(button)
            self.tile_boxes.append(widgets.VBox([img, button]))
        self.gallery_grid.children = self.tile_boxes

    def label_tiles(self, labels: list[str]) -> None:
        for button, label in zip(self.tile_buttons, labels, strict=False):
            button.description = f"open {label}"

    def show_mode(self, gallery: bool) -> None:
        self.image.layout.display = "none" if gallery else ""
        self.gallery_grid.layout.display = "" if gallery else "none"

    def clear(self) -> None:
        """Back to empty views (Reset)."""
        with self.image.hold_sync():
            self.image.format = "png"
            self.image.value = b""
        for tile in self.tile_images:
            tile.value = b""
        self.loss_line.x, self.loss_line.y = [], []

    def widgets_to_close(self) -> list[widgets.Widget]:
        return [*self.tile_boxes]
