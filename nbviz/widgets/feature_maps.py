"""``FeatureMapExplorer``: browse the feature maps of any layer of a Keras model, live.

The view state lives in traits (``layer``, ``filter``, ``mode``, ``cmap``, ``normalization``,
``overlay``), linked to the controls. Only the chosen layer is computed, on demand, on the
widget's :class:`~nbviz.worker.Worker` thread; the activations are cached per (layer, image) by
:class:`~nbviz.featuremaps.FeatureMaps`, so moving the filter slider or changing the colormap
only slices a cached array and encodes a PNG on the kernel thread. Layer or image requests made
while a computation runs are not queued: the latest one wins.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from ..errors import ImageError, LayerError, ModelError
from ..featuremaps import (
    FeatureMaps,
    check_filter,
    enlarge,
    feature_map_figure,
    image_key,
    map_stats,
    render_view,
)
from ..featuremaps.reading import read_images
from ..featuremaps.render import check_normalization, show_feature_map, to_png
from ..imaging import colormap_lut, decode_image, to_uint8
from ..layers import shape_label
from ..worker import LatestRequestLoop, Worker
from .static_picture import StaticPicture, close_picture, figure_png
from .status import error_html, status_html

__all__ = ["FeatureMapExplorer", "show_feature_map", "sample_images"]

COLORMAPS = ["magma", "viridis", "inferno", "plasma", "cividis", "gray", "RdBu_r", "coolwarm"]
OVERLAY_ALPHA = 0.6
_USER_IMAGE = "your image"


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
    Bad input after construction (an unknown or non-spatial layer, a filter out of range, an
    image of the wrong rank or channel count) is shown in :attr:`status` and kept in
    :attr:`error`; the widget stays usable. Call :meth:`close` to stop its worker thread.
    """

    layer = traitlets.Unicode()
    filter = traitlets.Int(0)
    mode = traitlets.Enum(["single", "grid"], default_value="single")
    cmap = traitlets.Unicode("magma")
    normalization = traitlets.Enum(["map", "layer"], default_value="map")
    overlay = traitlets.Bool(False)

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
        self.last_render_s = 0.0
        self._render_lock = threading.RLock()
        self._closed = False
        self._quiet = False
        self._notice = ""
        # Results are rendered by each request itself (see _compute), so no on_frame.
        self._worker = Worker(on_error=self._on_worker_error, name="nbviz-featuremaps")
        self._requests = LatestRequestLoop(self._worker, self._compute)
        self._image: np.ndarray | list[np.ndarray] | None = None  # list: ragged batch
        self._image_key = ""
        self._display: np.ndarray | None = None
        self._samples = dict(samples) if samples is not None else sample_images()
        if not self._samples:  # something to start with, even without sample images
            gx, gy = np.meshgrid(*(np.linspace(0.0, 1.0, 64, dtype=np.float32),) * 2)
            self._samples = {"ramp": np.dstack([gx, gy, np.full_like(gx, 0.5)])}
        self._user_images: dict[str, np.ndarray | list[np.ndarray]] = {}

        self.layer_dropdown = widgets.Dropdown(
            options=[(f"{name}  {shape_label(shape)}", name) for name, shape in choices],
            description="layer",
            layout=widgets.Layout(width="340px"),
        )
        self.filter_slider = widgets.IntSlider(
            min=0,
            max=max(0, int(choices[0][1][-1]) - 1),
            description="filter",
            continuous_update=True,
            layout=widgets.Layout(width="340px"),
        )
        self.mode_buttons = widgets.ToggleButtons(
            options=[("one filter", "single"), ("all filters", "grid")],
            style={"button_width": "90px"},
        )
        self.cmap_dropdown = widgets.Dropdown(
            options=COLORMAPS + ([cmap] if cmap not in COLORMAPS else []),
            description="colormap",
            layout=widgets.Layout(width="200px"),
        )
        self.norm_buttons = widgets.ToggleButtons(
            options=[("per map", "map"), ("per layer", "layer")],
            style={"button_width": "80px"},
            tooltips=["each map stretched to its own min..max", "one min..max for the whole layer"],
        )
        self.overlay_box = widgets.Checkbox(description="overlay on image", indent=False)
        self.image_dropdown = widgets.Dropdown(
            options=list(self._samples),
            description="image",
            layout=widgets.Layout(width="340px"),
        )
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload")
        # A model of undefined image size takes any size: offer one (longer side, aspect kept).
        self.size_dropdown = widgets.Dropdown(
            options=[("own size", 0), ("96 px", 96), ("160 px", 160), ("224 px", 224),
                     ("320 px", 320)],
            value=224, description="size", layout=widgets.Layout(width="180px"),
            tooltip="the model takes images of any size: the longer side is resized to this",
        )  # fmt: skip
        if backend.spec.size is None:
            backend.set_longest_side(self.size_dropdown.value)
        self.input_image = widgets.Image(format="png", layout=widgets.Layout(width="256px"))
        self.map_image = widgets.Image(format="png", layout=widgets.Layout(width="256px"))
        self.status = widgets.HTML()

        super().__init__(
            children=[
                widgets.HBox([self.layer_dropdown, self.mode_buttons]),
                widgets.HBox([self.filter_slider, self.norm_buttons]),
                widgets.HBox([self.cmap_dropdown, self.overlay_box]),
                widgets.HBox(
                    [self.image_dropdown, self.upload]
                    + ([self.size_dropdown] if backend.spec.size is None else [])
                ),
                widgets.HBox(
                    [
                        widgets.VBox([widgets.HTML("<b>input</b>"), self.input_image]),
                        widgets.VBox([widgets.HTML("<b>feature map</b>"), self.map_image]),
                    ]
                ),
                self.status,
            ]
        )

        # Initial state, before the links so the controls start consistent.
        self._quiet = True
        self.layer = backend.default_layer()
        self.cmap = cmap
        # set_trait: the Enum trait takes "map"/"layer" (a (vmin, vmax) pair is rejected there)
        self.set_trait("normalization", check_normalization(normalization))
        self._links = [
            traitlets.link((self, "layer"), (self.layer_dropdown, "value")),
            traitlets.link((self, "filter"), (self.filter_slider, "value")),
            traitlets.link((self, "mode"), (self.mode_buttons, "value")),
            traitlets.link((self, "cmap"), (self.cmap_dropdown, "value")),
            traitlets.link((self, "normalization"), (self.norm_buttons, "value")),
            traitlets.link((self, "overlay"), (self.overlay_box, "value")),
        ]
        self.observe(self._on_layer, "layer")
        self.observe(self._on_view, ["filter", "mode", "cmap", "normalization", "overlay"])
        self.image_dropdown.observe(self._on_pick, "value")
        self.size_dropdown.observe(self._on_size, "value")
        self.upload.observe(self._on_upload, "value")

        # Bad ``image`` / ``layer`` arguments do not kill the widget: it starts on a sample
        # image / the first layer and shows the error above the first map.
        notices: list[BaseException] = []
        if image is not None and not self._use_image(image, _USER_IMAGE) and self.error is not None:
            notices.append(self.error)
        if self._image is None:
            self._use_image(self._samples[self.image_dropdown.value], self.image_dropdown.value)
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
    def set_image(self, image: Any, name: str = _USER_IMAGE) -> None:
        """Show the maps of ``image`` (uint8 in [0, 255] or float in [0, 1]).

        A bad image raises :class:`~nbviz.errors.ImageError` (also shown in :attr:`status`) and
        the previous image stays.
        """
        if not self._use_image(image, name):
            assert self.error is not None  # _use_image sets it when it refuses
            raise self.error

    @property
    def image(self) -> np.ndarray | list[np.ndarray] | None:
        """The current input image (a copy of what was given, before resizing)."""
        return self._image

    @image.setter
    def image(self, value: Any) -> None:
        self.set_image(value)

    def current_map(self) -> np.ndarray:
        """The (H, W) map shown now (single mode), or the (H, W, C) layer (grid mode)."""
        acts = self._activations_now()
        return acts if self.mode == "grid" else acts[..., check_filter(self.filter, acts.shape[-1])]

    def figure(self) -> Any:
        """A matplotlib ``Figure`` of the current view (computes the layer here if needed)."""
        acts = self._activations_now()
        return feature_map_figure(
            self._display,
            acts,
            None if self.mode == "grid" else self.filter,
            title=self.layer,
            cmap=self.cmap,
            normalization=self.normalization,
            overlay_alpha=OVERLAY_ALPHA if self.overlay else None,
        )

    def _picture_key(self) -> Any:
        if self.computing or self.backend.cached(self.layer, self._image_key) is None:
            return None  # drawn once the layer is computed (never computed here)
        state = (self.layer, self.filter, self.mode, self.cmap, self.normalization, self.overlay)
        return (*state, self._image_key)

    def _picture_png(self) -> bytes:
        return figure_png(self.figure())

    def refresh(self) -> None:
        """Redraw the current view; the layer is computed on the worker if it is not cached."""
        with self._render_lock:
            try:
                acts = self.backend.cached(self.layer, self._image_key)
                if acts is None:
                    self._set_status(f"computing <b>{html.escape(self.layer)}</b> ...")
                    self._submit((self.layer, self._image, self._image_key))
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
        for w in self._all_controls():
            w.close()
        super().close()

    # -- validation: a bad value is shown in the widget, raised to the caller, and not set ----
    @traitlets.validate("layer")
    def _valid_layer(self, proposal: dict) -> str:
        try:
            return self.backend.layer_info(proposal["value"]).name
        except Exception as exc:
            self._show_error(exc)
            raise

    @traitlets.validate("filter")
    def _valid_filter(self, proposal: dict) -> int:
        try:
            return check_filter(proposal["value"], self.backend.channels(self.layer), self.layer)
        except Exception as exc:
            self._show_error(exc)
            raise

    @traitlets.validate("cmap")
    def _valid_cmap(self, proposal: dict) -> str:
        name = proposal["value"]
        try:
            colormap_lut(name)
        except ValueError as exc:
            self._show_error(exc)
            raise
        if name not in self.cmap_dropdown.options:  # any matplotlib colormap is fine
            self.cmap_dropdown.options = [*self.cmap_dropdown.options, name]
        return name

    # -- observers -------------------------------------------------------------------------
    def _on_layer(self, change: dict) -> None:
        channels = self.backend.channels(change["new"])  # validated already
        quiet, self._quiet = self._quiet, True
        try:
            self.filter_slider.max = channels - 1
            if self.filter >= channels:
                self.filter = channels - 1
        finally:
            self._quiet = quiet
        if not quiet:
            self.refresh()

    def _on_view(self, change: dict) -> None:
        self.filter_slider.disabled = self.mode == "grid"
        if not self._quiet:
            self.refresh()

    def _on_pick(self, change: dict) -> None:
        name = change["new"]
        source = self._samples if name in self._samples else self._user_images
        if name in source:
            self._use_image(source[name], name)

    def _on_size(self, change: dict) -> None:
        self.backend.set_longest_side(change["new"])
        if self._image is not None:
            self._use_image(self._image, self.image_dropdown.value)

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        f = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        name = f.get("name", "image")
        try:
            array = decode_image(bytes(f["content"]))
        except Exception as exc:
            self._show_error(
                ImageError(
                    f"Could not read {name!r} as an image ({exc}). Fix: upload a PNG or JPEG file."
                )
            )
            return
        self._use_image(array, f"upload: {name}")

    def _use_image(self, image: Any, name: str) -> bool:
        """Switch to ``image``; False (error shown, old image kept) if it cannot be used."""
        try:
            array = read_images(image)  # paths, PIL modes, tensors, lists: as the backend reads
            array = (
                np.array(array, copy=True)
                if isinstance(array, np.ndarray)
                else [np.array(a, copy=True) for a in array]
            )  # the key must not go stale
            display = self.backend.display_image(array)
        except Exception as exc:
            self._show_error(exc)
            return False
        with self._render_lock:
            self._image, self._image_key, self._display = array, image_key(array), display
            self.input_image.value = to_png(_enlarge(to_uint8(np.clip(display, 0.0, 1.0))))
        if name not in self._samples:
            self._user_images[name] = array
            options = list(self._samples) + list(self._user_images)
            if list(self.image_dropdown.options) != options:
                self._quietly(lambda: setattr(self.image_dropdown, "options", options))
        if self.image_dropdown.value != name:
            self._quietly(lambda: setattr(self.image_dropdown, "value", name))
        if not self._quiet:
            self.refresh()
        return True

    def _quietly(self, action: Any) -> None:
        """Change the image picker without it loading an image again."""
        self.image_dropdown.unobserve(self._on_pick, "value")
        try:
            action()
        finally:
            self.image_dropdown.observe(self._on_pick, "value")

    # -- computing -------------------------------------------------------------------------
    def _activations_now(self) -> np.ndarray:
        """The current layer's activations, computed on the calling thread if not cached."""
        if self._image is None:
            raise ImageError("No image is set. Fix: pick a sample or call set_image(array).")
        return self.backend.activations(self._image, self.layer, key=self._image_key)[0]

    def _submit(self, request: tuple) -> None:
        if not self._closed:
            self._requests.submit(request)

    def _compute(self, ctx: Any, request: tuple) -> None:
        """One request on the worker thread: compute, then render (or show the error)."""
        layer, image, key = request
        acts, error = None, None
        try:
            acts = self.backend.activations(image, layer, key=key)
        except Exception as exc:  # shown in the widget; the loop goes on
            error = exc
        self._on_computed(layer, key, acts, error)

    def _on_computed(
        self, layer: str, key: str, acts: np.ndarray | None, error: BaseException | None
    ) -> None:
        with self._render_lock:
            if self._closed or layer != self.layer or key != self._image_key:
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
        t0 = time.perf_counter()
        grid = self.mode == "grid"
        rgb = render_view(
            acts,
            None if grid else self.filter,
            self.cmap,
            self.normalization,
            image=self._display,
            overlay_alpha=OVERLAY_ALPHA if self.overlay else None,
        )
        self.map_image.value = to_png(rgb)
        self.map_image.layout.width = "512px" if grid else "256px"
        self.last_render_s = time.perf_counter() - t0
        values = acts if grid else acts[..., self.filter]
        s = map_stats(values)
        what = f"all {acts.shape[-1]} maps" if grid else f"filter {self.filter} of {acts.shape[-1]}"
        notice, self._notice = self._notice, ""  # a constructor error stays until first redraw
        if not notice:
            self.error = None
        self._set_status(
            notice
            + f"<b>{html.escape(self.layer)}</b> {what}: map {'x'.join(map(str, s['shape']))}, "
            f"min {s['min']:.4g}, max {s['max']:.4g}, mean {s['mean']:.4g}, "
            f"{s['zeros']:.0%} zeros"
        )

    def _set_status(self, text: str) -> None:
        self.status.value = status_html(text)

    def _show_error(self, exc: BaseException) -> None:
        self.error = exc
        self.status.value = error_html(exc)

    def _all_controls(self) -> list[widgets.Widget]:
        out: list[widgets.Widget] = []

        def walk(w: widgets.Widget) -> None:
            for child in getattr(w, "children", ()):
                walk(child)
                out.append(child)

        walk(self)
        return out


def _enlarge(rgb: np.ndarray) -> np.ndarray:
    return enlarge(rgb, 192)
