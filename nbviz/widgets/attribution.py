"""``AttributionExplorer``: why the model predicts a class, beside the feature maps.

The building-blocks view of Olah et al. (Distill 2018) in a notebook: the model's top
predictions for the image, the attribution heatmap of a chosen class over the image (Grad-CAM,
Grad-CAM++, saliency, SmoothGrad or Integrated Gradients), and the channels of the layer ranked
by how much they carry that class (activation x gradient summed over space), each with its
feature map and, rendered in the background and cached, the image it responds to most
(:mod:`nbviz.optvis`). Clicking a channel selects it in the composed
:class:`~nbviz.widgets.feature_maps.FeatureMapExplorer`, whose image, layer and activation
cache this view shares (its image and layer pickers drive both).

The work lives in :mod:`nbviz.attribution` (one compiled
:class:`~nbviz.attribution.Attributor` per layer, :class:`~nbviz.attribution.icons.ChannelIcons`);
this module wires controls to it. Attribution runs on one :class:`~nbviz.worker.Worker`
(a new request stops the running one: the latest wins), icons on another through a
``nbviz.worker.LatestRequestLoop`` (a batch being rendered is finished); SmoothGrad and
Integrated Gradients stream partial heatmaps, and Stop ends both.
"""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from ..attribution import Attributor, LayerAttribution
from ..attribution.engine import default_layer
from ..attribution.icons import ICON_STEPS, ChannelIcons, IconFrame
from ..deprecation import renamed_attribute, renamed_keywords, warn_renamed
from ..featuremaps import image_key
from ..featuremaps.render import enlarge, overlay, render_view, to_png
from ..worker import LatestRequestLoop, Worker
from .closing import close_widget_tree
from .feature_maps import FeatureMapExplorer
from .static_picture import StaticPicture, close_picture
from .status import error_html, status_html

METHODS = {
    "grad_cam": "Grad-CAM",
    "grad_cam++": "Grad-CAM++",
    "saliency": "saliency",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated Gradients",
}
HEAT_CMAP = "inferno"
HEAT_ALPHA = 0.55


@dataclass(frozen=True)
class _Request:
    method: str
    cls: int
    layer: str
    key: str  # the explorer's image (content hash)


@dataclass(frozen=True)
class _Frame:
    request: _Request
    heatmap: np.ndarray  # (H, W) in [0, 1]
    ranking: LayerAttribution
    done: int
    total: int
    seconds: float


class AttributionExplorer(StaticPicture, widgets.VBox):
    """Attribution heatmaps and filters ranked by attribution, composed with feature maps.

    Parameters
    ----------
    model:
        A Keras classifier with one image input (nested fine-tuning models work).
    image, layer, preprocess, input_range:
        As for :class:`~nbviz.widgets.feature_maps.FeatureMapExplorer`; ``layer`` defaults to
        the last spatial layer that is not pooling (Grad-CAM's usual choice).
    explorer:
        An existing :class:`FeatureMapExplorer` to compose with (shares its image, layer and
        cache; closed with this view only if this view created it).
    method, top_channels, icon_steps, class_names:
        Starting method (a key of :data:`METHODS`), number of ranked channels shown, optvis
        steps per icon (at least 128), class names (default: known ones, else numbers).
    samples:
        Sample images for the explorer's picker (default: the bundled ones).
    icons:
        A :class:`~nbviz.attribution.icons.ChannelIcons` to share its cache between views.
    """

    method = traitlets.Enum(list(METHODS), default_value="grad_cam")
    cls = traitlets.Int(0, help="the class explained")

    @renamed_keywords(top_filters="top_channels")
    def __init__(
        self,
        model: Any,
        image: Any = None,
        layer: str | None = None,
        *,
        preprocess: Any = None,
        input_range: tuple[float, float] | None = None,
        explorer: FeatureMapExplorer | None = None,
        method: str = "grad_cam",
        top_channels: int = 6,
        icon_steps: int = ICON_STEPS,
        class_names: list[str] | None = None,
        samples: dict[str, np.ndarray] | None = None,
        icons: ChannelIcons | None = None,
    ) -> None:
        self._owns_explorer = explorer is None
        self.explorer = explorer or FeatureMapExplorer(
            model, image, preprocess=preprocess, input_range=input_range, samples=samples
        )
        prep = self.explorer.backend.preparer
        self._options: dict[str, Any] = dict(
            preprocess=prep.preprocess, input_range=prep.input_range, class_names=class_names
        )
        self.model = model
        self._attributors: dict[str, Attributor] = {}
        self.icons = icons or ChannelIcons(
            model, steps=icon_steps, value_range=prep.input_range, preprocess=prep.preprocess
        )
        self.error: BaseException | None = None
        self.last_draw_s = 0.0
        self.frames_shown = 0
        self._closed = False
        self._lock = threading.RLock()
        self._request: _Request | None = None
        self._ranked: list[int] = []
        self._worker = Worker(
            on_frame=self._on_frame,
            on_error=self._on_error,
            on_done=self._on_done,
            name="nbviz-attribution",
        )
        self._icon_worker = Worker(
            on_frame=self._on_icons, on_error=self._on_error, name="nbviz-attribution-icons"
        )
        self._icon_loop = LatestRequestLoop(self._icon_worker, self._render_icons)

        self.class_dropdown = widgets.Dropdown(
            description="class", layout=widgets.Layout(width="340px")
        )
        self.method_buttons = widgets.ToggleButtons(
            options=[(label, key) for key, label in METHODS.items()],
            style={"button_width": "120px"},
        )
        self.stop_button = widgets.Button(
            description="Stop", icon="stop", layout=widgets.Layout(width="90px")
        )
        self.heat_image = widgets.Image(format="png", layout=widgets.Layout(width="256px"))
        self.status = widgets.HTML()
        self.icon_note = widgets.HTML(f"<i>optimized images: {html.escape(self.icons.recipe)}</i>")
        self.tiles = [self._tile() for _ in range(int(top_channels))]
        self._own_children = [
            widgets.HBox([self.class_dropdown, self.stop_button]),
            self.method_buttons,
            widgets.HBox([widgets.VBox([widgets.HTML("<b>attribution</b>"), self.heat_image]),
                          widgets.VBox([widgets.HTML("<b>channels ranked by attribution</b>"),
                                        widgets.GridBox([t.box for t in self.tiles], layout=(
                                            widgets.Layout(grid_template_columns="repeat(3, 150px)"))),
                                        self.icon_note])]),
            self.status,
        ]  # fmt: skip
        super().__init__(children=[*self._own_children, self.explorer])

        self.explorer.layer = layer if layer is not None else default_layer(model)
        self.method = method
        self._links = [traitlets.link((self, "method"), (self.method_buttons, "value"))]
        self.observe(self._on_control, ["method", "cls"])
        self.class_dropdown.observe(self._on_class_pick, "value")
        self.stop_button.on_click(lambda _: self.stop())
        self.explorer.observe(self._on_explorer_layer, "layer")
        self.explorer.input_image.observe(self._on_explorer_image, "value")
        self._on_explorer_image(None)

    # -- public API ------------------------------------------------------------------------
    @property
    def layer(self) -> str:
        """The layer whose channels are ranked (the explorer's layer)."""
        return self.explorer.layer

    def attributor(self, layer: str | None = None) -> Attributor:
        """The compiled :class:`~nbviz.attribution.Attributor` for ``layer`` (cached)."""
        layer = layer or self.layer
        if layer not in self._attributors:
            self._attributors[layer] = Attributor(self.model, layer=layer, **self._options)
        return self._attributors[layer]

    @property
    def ranked_channels(self) -> list[int]:
        """The channels shown, highest attribution first."""
        return list(self._ranked)

    ranked_filters = renamed_attribute("ranked_filters", "ranked_channels")

    def select_channel(self, channel: int) -> None:
        """Show ``channel`` in the explorer (what clicking a ranked channel does)."""
        self.explorer.mode = "single"
        self.explorer.channel = int(channel)

    def select_filter(self, channel: int) -> None:
        """Deprecated name of ``select_channel()``."""
        warn_renamed("AttributionExplorer.select_filter()", ".select_channel()")
        self.select_channel(channel)

    def refresh(self) -> None:
        """Recompute the current view (stops a running computation first)."""
        image = self.explorer.image
        if self._closed or image is None:
            return
        request = _Request(self.method, int(self.cls), self.layer, image_key(image))
        with self._lock:
            self._request = request
        self._worker.stop(timeout=60.0)
        self._set_status(f"computing {METHODS[request.method]} ...")
        self._worker.start(lambda ctx: self._attribution_job(ctx, request, image))

    def stop(self) -> None:
        """Stop the attribution and the icon rendering (partial results stay shown)."""
        self._worker.stop(timeout=60.0)
        self._icon_loop.clear()
        self._icon_worker.stop(timeout=60.0)

    def wait(self, timeout: float = 120.0, icons: bool = True) -> bool:
        """Block until the attribution (and, with ``icons``, the icon rendering) is idle."""
        deadline = time.monotonic() + timeout
        workers = [self._worker, self._icon_worker] if icons else [self._worker]
        while time.monotonic() < deadline:
            if all(w.join(0.05) for w in workers) and not any(w.running for w in workers):
                return True
        return False

    def _picture_key(self) -> Any:
        value = bytes(self.heat_image.value)
        return hash(value) if value else None

    def _picture_png(self) -> bytes:
        return bytes(self.heat_image.value)  # the heatmap over the image, as shown

    def close(self) -> None:
        """Stop both workers and close every control (the explorer too if created here)."""
        if getattr(self, "_closed", True):
            return
        close_picture(self)
        self._closed = True
        self.stop()
        for link in self._links:
            link.unlink()
        self.explorer.unobserve(self._on_explorer_layer, "layer")
        self.explorer.input_image.unobserve(self._on_explorer_image, "value")
        if self._owns_explorer:
            self.explorer.close()
        self.set_trait("children", self._own_children)  # a shared explorer stays open
        close_widget_tree(self)

    # -- observers -------------------------------------------------------------------------
    def _on_explorer_image(self, change: Any) -> None:
        """A new image in the explorer: new top predictions, then the current class."""
        image = self.explorer.image
        if image is None or self._closed:
            return
        try:
            a = self.attributor()
            top = a.top_classes(image, k=len(a.predict(image)[0]))
        except Exception as exc:
            self._show_error(exc)
            return
        names = getattr(a.target, "class_names", None)
        options = [(f"{c}: {names[c] if names else 'class ' + str(c)}  {p:.1%}", c) for c, p in top]
        self.class_dropdown.unobserve(self._on_class_pick, "value")
        try:
            self.class_dropdown.options = options
            self.class_dropdown.value = top[0][0]
        finally:
            self.class_dropdown.observe(self._on_class_pick, "value")
        if self.cls != top[0][0]:
            self.cls = top[0][0]  # refreshes through _on_control
        else:
            self.refresh()

    def _on_explorer_layer(self, change: Any) -> None:
        self.refresh()

    def _on_class_pick(self, change: dict) -> None:
        self.cls = int(change["new"])

    def _on_control(self, change: dict) -> None:
        if change["name"] == "cls" and self.class_dropdown.value != change["new"]:
            self.class_dropdown.value = change["new"]
        self.refresh()

    # -- work (worker threads) -------------------------------------------------------------
    def _attribution_job(self, ctx: Any, request: _Request, image: Any) -> None:
        t0 = time.perf_counter()
        a = self.attributor(request.layer)
        ranking = a.layer_attribution(image, request.cls)
        if request.method in ("grad_cam", "grad_cam++"):  # from the same pass as the ranking
            cam = ranking.cam(plus_plus=request.method == "grad_cam++")
            ctx.publish(_Frame(request, cam.heatmap(), ranking, 1, 1, time.perf_counter() - t0))
            return
        if request.method == "saliency":
            steps = iter([_one(a.saliency(image, request.cls))])
        elif request.method == "smoothgrad":
            steps = a.iter_smoothgrad(image, request.cls, stop_event=ctx.stop_event)
        else:
            steps = a.iter_integrated_gradients(image, request.cls, stop_event=ctx.stop_event)
        for p in steps:
            ctx.publish(
                _Frame(
                    request, p.result.heatmap(), ranking, p.done, p.total, time.perf_counter() - t0
                )
            )

    def _render_icons(self, ctx: Any, request: tuple[str, list[int]]) -> None:
        """Render the missing icons of the filters a ranking shows (on the icon worker; a
        newer ranking waits for this batch instead of wasting it, latest one wins)."""
        layer, channels = request
        for frame in self.icons.iter_render(layer, channels, stop_event=ctx.stop_event):
            ctx.publish(frame)

    # -- views (set traits only) -----------------------------------------------------------
    def _on_frame(self, frame: _Frame) -> None:
        with self._lock:
            if self._closed or frame.request != self._request:
                return  # stale
            t0 = time.perf_counter()
            display = self.explorer.backend.display_image(self.explorer.image)
            self.heat_image.value = to_png(
                enlarge(overlay(display, frame.heatmap, HEAT_CMAP, HEAT_ALPHA), 256)
            )
            self._show_ranking(frame.request.layer, frame.ranking)
            self.frames_shown += 1
            self.last_draw_s = frame.seconds + time.perf_counter() - t0
            r = frame.request
            unit = "path points" if r.method == "integrated_gradients" else "samples"
            what = METHODS[r.method] + (
                f" {frame.done}/{frame.total} {unit}" if frame.total > 1 else ""
            )
            self.error = None
            self._set_status(
                f"{html.escape(what)} of {html.escape(frame.ranking.target)} at "
                f"<b>{html.escape(r.layer)}</b>: {self.last_draw_s * 1e3:.0f} ms"
            )

    def _show_ranking(self, layer: str, ranking: LayerAttribution) -> None:
        channels = ranking.top_channels(len(self.tiles))
        if channels == self._ranked and self.tiles[0].layer == layer:
            return
        self._ranked = channels
        acts = ranking.activations[0]
        values = ranking.channels[0]
        for tile, c in zip(self.tiles, channels, strict=False):
            tile.show(
                layer,
                c,
                float(values[c]),
                render_view(acts, c, "magma", "map", min_size=128),
                self.icons.get(layer, c),
            )
        if self.icons.missing(layer, channels) and not self._closed:
            self._icon_loop.submit((layer, list(channels)))

    def _on_icons(self, frame: IconFrame) -> None:
        for tile in self.tiles:
            if tile.layer == frame.layer and tile.channel in frame.channels:
                row = frame.channels.index(tile.channel)
                tile.show_icon(frame.images[row], frame.step, frame.steps)

    def _on_done(self, result: Any, stopped: bool) -> None:
        if stopped and not self._closed and self.error is None:
            self.status.value += " <i>(stopped)</i>"

    def _on_error(self, exc: BaseException, tb: str) -> None:
        self._show_error(exc)

    def _tile(self) -> _Tile:
        tile = _Tile()
        tile.button.on_click(lambda _: self._on_tile_click(tile))
        return tile

    def _on_tile_click(self, tile: _Tile) -> None:
        if tile.channel is not None:
            self.select_channel(tile.channel)

    def _set_status(self, text: str) -> None:
        self.status.value = status_html(text)

    def _show_error(self, exc: BaseException) -> None:
        self.error = exc
        self.status.value = error_html(exc)


class _Tile:
    """One ranked channel: a button (selects it), its feature map and its optimized image."""

    def __init__(self) -> None:
        self.layer: str | None = None
        self.channel: int | None = None
        self.button = widgets.Button(layout=widgets.Layout(width="140px"))
        self.map_image = widgets.Image(format="png", layout=widgets.Layout(width="68px"))
        self.icon_image = widgets.Image(format="png", layout=widgets.Layout(width="68px"))
        self.box = widgets.VBox([self.button, widgets.HBox([self.map_image, self.icon_image])])

    def show(
        self, layer: str, channel: int, value: float, rgb: np.ndarray, icon: np.ndarray | None
    ) -> None:
        self.layer, self.channel = layer, channel
        self.button.description = f"channel {channel}: {value:+.3g}"
        self.button.tooltip = "show this channel in the feature-map explorer"
        self.map_image.value = to_png(rgb)
        if icon is not None:
            self.show_icon(icon, 1, 1)
        else:
            self.icon_image.value = b""

    def show_icon(self, image: np.ndarray, step: int, steps: int) -> None:
        self.icon_image.value = to_png(enlarge((np.clip(image, 0, 1) * 255).astype(np.uint8), 128))
        self.icon_image.layout.opacity = "1" if step >= steps else "0.6"


def _one(result: Any) -> Any:
    """A finished result as the one step of a progress stream."""
    from ..attribution import Progress

    return Progress(1, 1, result)
