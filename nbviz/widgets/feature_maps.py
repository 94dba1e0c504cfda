"""``FeatureMapExplorer``: browse the feature maps of any layer of a Keras model, live.

The view state lives in traits (``layer``, ``channel``, ``mode``, ``cmap``, ``normalization``,
``overlay``), linked to the controls. Only the chosen layer is computed, on demand, on the
widget's :class:`~nbviz.worker.Worker` thread; the activations are cached per (layer, image) by
:class:`~nbviz.featuremaps.FeatureMaps`, so moving the channel slider or changing the colormap
only slices a cached array and encodes a PNG on the kernel thread. Layer or image requests made
while a computation runs are not queued: the latest one wins.

The explorer is traits and wiring: the image and where it comes from belong to
``ImagePicker`` (:mod:`.feature_map_images`), drawing a map or the grid to
``MapView`` (:mod:`.feature_map_views`), the activations to the headless
:class:`~nbviz.featuremaps.FeatureMaps`.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from ..deprecation import renamed_attribute
from ..errors import ImageError, LayerError, ModelError
from ..featuremaps import FeatureMaps, check_channel, feature_map_figure
from ..featuremaps.render import check_normalization, show_feature_map
from ..imaging import colormap_lut
from ..layers import shape_label
from ..worker import LatestRequestLoop, Worker
from .closing import close_widget_tree
from .feature_map_images import USER_IMAGE, ImagePicker
from .feature_map_views import OVERLAY_ALPHA, MapView
from .static_picture import StaticPicture, close_picture, figure_png
from .status import error_html, status_html

__all__ = ["FeatureMapExplorer", "show_feature_map", "sample_images"]

COLORMAPS = ["magma", "viridis", "inferno", "plasma", "cividis", "gray", "RdBu_r", "coolwarm"]


def sample_images() -> dict[str, np.ndarray]:
    """Bundled sample images (``nbviz.demo``), or scikit-learn's two photos as a fallback."""
    try:
        from ..demo import sample_images as demo_samples

        return demo_samples()
    except (ImportError, AttributeError, OSError):
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        names = [p.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0] for p in bunch.filenames]
        return dict(zip(names, bunch.images, strict=True))


class FeatureMapExplorer(StaticPicture, widgets.VBox):
    """Interactive feature maps of ``model`` for an image.

    Parameters
    ----------
    model:
        A Keras model with one image input (nested base models work, e.g. ``"vgg16/block3_conv1"``).
        A model without a defined input, or without image-like layers, raises
        :class:`~nbviz.errors.ModelError` / :class:`~nbviz.errors.LayerError` right away.
    image:
        The image to start with (uint8 in [0, 255] or float in [0, 1]; (H, W), (H, W, 1|3|4));
        ``None`` starts with the first bundled sample.
    layer:
        The layer to start with; ``None`` picks the first image-like layer.
    preprocess, input_range:
        The model's preprocessing hooks, see :class:`~nbviz.featuremaps.FeatureMaps`.
    backend:
        An existing :class:`~nbviz.featuremaps.FeatureMaps` to share its cache.

    Notes
    -----
    Bad input after construction (an unknown or non-spatial layer, a channel out of range, an
    image of the wrong rank or channel count) is shown in :attr:`status` and kept in
    :attr:`error`; the widget stays usable. Call :meth:`close` to stop its worker thread.
    The old names ``filter`` and ``filter_slider`` still work (deprecated).
    """

    layer = traitlets.Unicode(help="the layer whose maps are shown")
    channel = traitlets.Int(0, help="the channel shown in single mode")
    mode = traitlets.Enum(["single", "grid"], default_value="single", help="one map or all")
    cmap = traitlets.Unicode("magma", help="a matplotlib colormap name")
    normalization = traitlets.Enum(["map", "layer"], default_value="map")
    overlay = traitlets.Bool(False, help="blend the map over the input image")

    filter = renamed_attribute("filter", "channel")
    filter_slider = renamed_attribute("filter_slider", "channel_slider")

    def __init__(
        self,
        model: Any = None,
        image: Any = None,
        layer: str | None = None,
        *,
        preprocess: Any = None,
        input_range: tuple[float, float] | None = None,
        backend: FeatureMaps | None = None,
        cmap: str = "magma",
        normalization: str = "map",
        samples: dict[str, np.ndarray] | None = None,
    ) -> None:
        if backend is None:
            if model is None:
                raise ModelError(
                    "FeatureMapExplorer needs a model. Fix: FeatureMapExplorer(model), or "
                    "pass backend=FeatureMaps(model) to share a cache."
                )
            backend = FeatureMaps(model, preprocess=preprocess, input_range=input_range)
        self.backend = backend
        choices = backend.layer_choices()
        if not choices:
            raise LayerError(
                f"Model {backend.model.name!r} has no layer with an image-like output "
                "(batch, height, width, channels), so there are no feature maps to show. "
                "Fix: pass a convolutional model."
            )
        self.error: BaseException | None = None
        self._render_lock = threading.RLock()
        self._closed = False
        self._quiet = True  # no redraws until constructed
        self._notice = ""
        # Results are rendered by each request itself (see _compute), so no on_frame.
        self._worker = Worker(on_error=self._on_worker_error, name="nbviz-featuremaps")
        self._requests = LatestRequestLoop(self._worker, self._compute)
        #: The image shown and the controls that choose it.
        self.picker = ImagePicker(
            backend,
            dict(samples) if samples is not None else sample_images(),
            on_image=self._on_image,
            on_error=self._show_error,
            lock=self._render_lock,
        )
        self.view = MapView()
        self._build_controls(choices, cmap)

        # Initial state, before the links so the controls start consistent.
        self.layer = backend.default_layer()
        self.cmap = cmap
        # set_trait: the Enum trait takes "map"/"layer" (a (vmin, vmax) pair is rejected there)
        self.set_trait("normalization", check_normalization(normalization))
        self._links = [
            traitlets.link((self, name), (control, "value"))
            for name, control in self._controls().items()
        ]
        self.observe(self._on_layer, "layer")
        self.observe(self._on_view, ["channel", "mode", "cmap", "normalization", "overlay"])

        # Bad ``image`` / ``layer`` arguments do not kill the widget: it starts on a sample
        # image / the first layer and shows the error above the first map.
        notices: list[BaseException] = []
        if image is not None and not self.picker.use(image, USER_IMAGE):
            assert self.error is not None  # the picker reports why it refused
            notices.append(self.error)
        if self.picker.array is None:
            self.picker.use_sample()
        if layer is not None:
            try:
                self.layer = layer
            except Exception as exc:  # already shown by the validator; keep it as a notice
                notices.append(exc)
        self._notice = "".join(error_html(e) + "<br>" for e in notices)
        self._quiet = False
        self._on_layer({"new": self.layer})
        if notices:
            self.error = notices[-1]

    # -- public API ------------------------------------------------------------------------
    def set_image(self, image: Any, name: str = USER_IMAGE) -> None:
        """Show the maps of ``image`` (uint8 in [0, 255] or float in [0, 1]).

        A bad image raises :class:`~nbviz.errors.ImageError` (also shown in :attr:`status`) and
        the previous image stays.
        """
        if not self.picker.use(image, name):
            assert self.error is not None  # the picker reports why it refused
            raise self.error

    @property
    def image(self) -> np.ndarray | list[np.ndarray] | None:
        """The current input image (a copy of what was given, before resizing)."""
        return self.picker.array

    @image.setter
    def image(self, value: Any) -> None:
        self.set_image(value)

    @property
    def last_render_s(self) -> float:
        """Seconds the last redraw took (render and PNG encoding)."""
        return self.view.last_render_s

    def current_map(self) -> np.ndarray:
        """The (H, W) map shown now (single mode), or the (H, W, C) layer (grid mode)."""
        acts = self._activations_now()
        if self.mode == "grid":
            return acts
        return acts[..., check_channel(self.channel, acts.shape[-1])]

    def figure(self) -> Any:
        """A matplotlib ``Figure`` of the current view (computes the layer here if needed)."""
        acts = self._activations_now()
        return feature_map_figure(
            self.picker.display,
            acts,
            None if self.mode == "grid" else self.channel,
            title=self.layer,
            cmap=self.cmap,
            normalization=self.normalization,
            overlay_alpha=OVERLAY_ALPHA if self.overlay else None,
        )

    def _picture_key(self) -> Any:
        if self.computing or self.backend.cached(self.layer, self.picker.key) is None:
            return None  # drawn once the layer is computed (never computed here)
        state = (self.layer, self.channel, self.mode, self.cmap, self.normalization, self.overlay)
        return (*state, self.picker.key)

    def _picture_png(self) -> bytes:
        return figure_png(self.figure())

    def refresh(self) -> None:
        """Redraw the current view; the layer is computed on the worker if it is not cached."""
        with self._render_lock:
            try:
                key = self.picker.key
                acts = self.backend.cached(self.layer, key)
                if acts is None:
                    self._set_status(f"computing <b>{html.escape(self.layer)}</b> ...")
                    if not self._closed:
                        self._requests.submit((self.layer, self.picker.array, key))
                    return
                self._show(acts[0])
            except Exception as exc:
                self._show_error(exc)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until no computation is pending or running (for scripts and tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._requests.active and self._worker.join(0.01):
                return True
            self._worker.join(0.02)
        return False

    @property
    def computing(self) -> bool:
        """True while a layer is being computed."""
        return self._requests.active or self._worker.running

    def close(self) -> None:
        """Stop the worker thread and close every control (safe to call twice)."""
        if getattr(self, "_closed", True):  # also: __del__ of a half-constructed widget
            return
        close_picture(self)
        self._closed = True
        self._requests.clear()
        self._worker.stop(timeout=30.0)
        for link in self._links:
            link.unlink()
        self.picker.close()
        close_widget_tree([*self.children, *self.picker.widgets()])
        super().close()

    # -- validation: a bad value is shown in the widget, raised to the caller, and not set ----
    def _checked(self, check: Callable[[], Any]) -> Any:
        try:
            return check()
        except Exception as exc:
            self._show_error(exc)
            raise

    @traitlets.validate("layer")
    def _valid_layer(self, proposal: dict) -> str:
        return self._checked(lambda: self.backend.layer_info(proposal["value"]).name)

    @traitlets.validate("channel")
    def _valid_channel(self, proposal: dict) -> int:
        return self._checked(
            lambda: check_channel(proposal["value"], self.backend.channels(self.layer), self.layer)
        )

    @traitlets.validate("cmap")
    def _valid_cmap(self, proposal: dict) -> str:
        name = proposal["value"]
        self._checked(lambda: colormap_lut(name))
        if name not in self.cmap_dropdown.options:  # any matplotlib colormap is fine
            self.cmap_dropdown.options = [*self.cmap_dropdown.options, name]
        return name

    # -- observers -------------------------------------------------------------------------
    def _on_layer(self, change: dict) -> None:
        channels = self.backend.channels(change["new"])  # validated already
        quiet, self._quiet = self._quiet, True
        try:
            self.channel_slider.max = channels - 1
            if self.channel >= channels:
                self.channel = channels - 1
        finally:
            self._quiet = quiet
        if not quiet:
            self.refresh()

    def _on_view(self, change: dict) -> None:
        self.channel_slider.disabled = self.mode == "grid"
        if not self._quiet:
            self.refresh()

    def _on_image(self) -> None:
        if not self._quiet:
            self.refresh()

    # -- computing -------------------------------------------------------------------------
    def _activations_now(self) -> np.ndarray:
        """The current layer's activations, computed on the calling thread if not cached."""
        if self.picker.array is None:
            raise ImageError("No image is set. Fix: pick a sample or call set_image(array).")
        return self.backend.activations(self.picker.array, self.layer, key=self.picker.key)[0]

    def _compute(self, ctx: Any, request: tuple) -> None:
        """One request on the worker thread: compute, then render (or show the error)."""
        layer, image, key = request
        acts, error = None, None
        try:
            acts = self.backend.activations(image, layer, key=key)
        except Exception as exc:  # shown in the widget; the loop goes on
            error = exc
        with self._render_lock:
            if self._closed or layer != self.layer or key != self.picker.key:
                return  # stale: the newer request renders itself
            if error is not None:
                self._show_error(error)
                return
            assert acts is not None  # computed when there is no error
            try:
                self._show(acts[0])  # these very arrays: no second cache lookup, no loop
            except Exception as exc:
                self._show_error(exc)

    def _on_worker_error(self, exc: BaseException, tb: str) -> None:
        self._show_error(exc)

    # -- views -----------------------------------------------------------------------------
    def _show(self, acts: np.ndarray) -> None:
        summary = self.view.draw(
            acts,
            self.layer,
            None if self.mode == "grid" else self.channel,
            self.cmap,
            self.normalization,
            self.picker.display if self.overlay else None,
        )
        notice, self._notice = self._notice, ""  # a constructor error stays until first redraw
        if not notice:
            self.error = None
        self._set_status(notice + summary)

    def _set_status(self, text: str) -> None:
        self.status.value = status_html(text)

    def _show_error(self, exc: BaseException) -> None:
        self.error = exc
        self.status.value = error_html(exc)

    # -- construction ----------------------------------------------------------------------
    def _build_controls(self, choices: list[tuple[str, tuple]], cmap: str) -> None:
        wide = widgets.Layout(width="340px")
        self.layer_dropdown = widgets.Dropdown(
            options=[(f"{name}  {shape_label(shape)}", name) for name, shape in choices],
            description="layer", layout=wide,
        )  # fmt: skip
        self.channel_slider = widgets.IntSlider(
            min=0, max=max(0, int(choices[0][1][-1]) - 1), description="channel",
            continuous_update=True, layout=wide,
        )  # fmt: skip
        self.mode_buttons = widgets.ToggleButtons(
            options=[("one channel", "single"), ("all channels", "grid")],
            style={"button_width": "100px"},
        )
        self.cmap_dropdown = widgets.Dropdown(
            options=COLORMAPS + ([cmap] if cmap not in COLORMAPS else []),
            description="colormap", layout=widgets.Layout(width="200px"),
        )  # fmt: skip
        self.norm_buttons = widgets.ToggleButtons(
            options=[("per map", "map"), ("per layer", "layer")],
            style={"button_width": "80px"},
            tooltips=["each map stretched to its own min..max", "one min..max for the whole layer"],
        )
        self.overlay_box = widgets.Checkbox(description="overlay on image", indent=False)
        self.image_dropdown, self.upload = self.picker.dropdown, self.picker.upload
        self.size_dropdown, self.input_image = self.picker.size, self.picker.preview
        self.map_image = self.view.image
        self.status = widgets.HTML()
        super().__init__(
            children=[
                widgets.HBox([self.layer_dropdown, self.mode_buttons]),
                widgets.HBox([self.channel_slider, self.norm_buttons]),
                widgets.HBox([self.cmap_dropdown, self.overlay_box]),
                self.picker.controls(),
                widgets.HBox(
                    [
                        widgets.VBox([widgets.HTML("<b>input</b>"), self.input_image]),
                        widgets.VBox([widgets.HTML("<b>feature map</b>"), self.map_image]),
                    ]
                ),
                self.status,
            ]
        )

    def _controls(self) -> dict[str, widgets.Widget]:
        """Each control under the name of the trait it edits."""
        return {
            "layer": self.layer_dropdown,
            "channel": self.channel_slider,
            "mode": self.mode_buttons,
            "cmap": self.cmap_dropdown,
            "normalization": self.norm_buttons,
            "overlay": self.overlay_box,
        }
