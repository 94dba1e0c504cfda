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
from .ticks import nice_ticks

MAX_CURVE_POINTS = 400
CURVE_TICKS = 5  # at most this many step ticks on the 320 px chart

# An image with no bytes is drawn as a broken-image icon: an empty view shows this instead.
PLACEHOLDER = encode_image(np.full((8, 8, 3), 238, np.uint8), "png")


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
            value=PLACEHOLDER,
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
        self.x_scale, self.y_scale = bqplot.LinearScale(), bqplot.LinearScale()
        self.loss_line = bqplot.Lines(
            x=[], y=[], scales={"x": self.x_scale, "y": self.y_scale}, colors=["#1f77b4"]
        )
        self.step_axis = bqplot.Axis(scale=self.x_scale, label="step", tick_format="d")
        self.objective_axis = bqplot.Axis(
            scale=self.y_scale, side="left", label="objective", tick_format=".3g"
        )
        self.loss_figure = bqplot.Figure(
            marks=[self.loss_line],
            axes=[self.step_axis, self.objective_axis],
            animation_duration=0,
            title="objective",
            # bqplot's hover toolbar sits over the title of a figure this small; the curve
            # needs no pan or zoom.
            display_toolbar=False,
            layout=widgets.Layout(width="320px", height="260px", flex="0 0 auto"),
            # the right margin holds half of the last step label ("20000" at the end)
            fig_margin={"top": 40, "bottom": 40, "left": 60, "right": 24},
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
        """The mean objective per step (thinned) over steps 0 to the last, with round step
        ticks; or nothing yet."""
        if not losses:
            return
        x, y = curve_points(losses)
        last = float(x[-1])
        with self.x_scale.hold_sync():
            self.x_scale.min, self.x_scale.max = 0.0, last
        ticks = nice_ticks(0.0, last, CURVE_TICKS)
        self.step_axis.tick_values = ticks[ticks == np.round(ticks)]  # steps are whole
        with self.loss_line.hold_sync():
            self.loss_line.x, self.loss_line.y = x, y

    def set_tiles(self, n: int) -> None:
        """``n`` gallery tiles (rebuilt only when the count changes)."""
        if n == len(self.tile_images):
            return
        close_widget_tree(self.tile_boxes)
        self.tile_images, self.tile_buttons, self.tile_boxes = [], [], []
        for i in range(n):
            img = widgets.Image(
                value=PLACEHOLDER, format="png",
                layout=widgets.Layout(width="112px", height="112px"),
            )  # fmt: skip
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
        """Back to the views' first look (Reset): placeholder images, an empty curve with the
        chart's own scales and ticks."""
        with self.image.hold_sync():
            self.image.format = "png"
            self.image.value = PLACEHOLDER
        for tile in self.tile_images:
            with tile.hold_sync():
                tile.format, tile.value = "png", PLACEHOLDER
        with self.loss_line.hold_sync():
            self.loss_line.x, self.loss_line.y = [], []
        with self.x_scale.hold_sync():
            self.x_scale.min = self.x_scale.max = None
        self.step_axis.tick_values = None

    def widgets_to_close(self) -> list[widgets.Widget]:
        return [*self.tile_boxes]
