"""The feature-map explorer's image intake: which image is shown, and where it came from.

:class:`ImagePicker` owns the sample picker, the upload button, the size choice (for models
that take any image size) and the input preview. An image from any source (a sample, an
upload, ``set_image`` in code) goes through one path: read as the backend reads images, copied
(so its cache key cannot go stale), checked against the model, then shown. A bad image is
refused with the error shown and the previous image kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..errors import ImageError
from ..featuremaps import FeatureMaps, enlarge, image_key
from ..featuremaps.reading import read_images
from ..featuremaps.render import to_png
from ..imaging import decode_image, to_uint8

USER_IMAGE = "your image"
PREVIEW_SIZE = 192  # small inputs are enlarged (nearest neighbour) to this for the preview


class ImagePicker:
    """The current image (``array``, its cache ``key``, its ``display`` form in [0, 1]) and the
    controls that choose it. ``on_image()`` is called after every accepted change,
    ``on_error(exc)`` for a refused one; ``lock`` guards the image state against readers on
    other threads."""

    def __init__(
        self,
        backend: FeatureMaps,
        samples: dict[str, np.ndarray],
        on_image: Callable[[], None],
        on_error: Callable[[BaseException], None],
        lock: threading.RLock,
    ) -> None:
        self.backend, self.on_image, self.on_error, self.lock = backend, on_image, on_error, lock
        self.samples = dict(samples)
        if not self.samples:  # something to start with, even without sample images
            gx, gy = np.meshgrid(*(np.linspace(0.0, 1.0, 64, dtype=np.float32),) * 2)
            self.samples = {"ramp": np.dstack([gx, gy, np.full_like(gx, 0.5)])}
        self.user_images: dict[str, np.ndarray | list[np.ndarray]] = {}
        self.array: np.ndarray | list[np.ndarray] | None = None  # list: ragged batch
        self.key = ""
        self.display: np.ndarray | None = None
        self.dropdown = widgets.Dropdown(
            options=list(self.samples), description="image", layout=widgets.Layout(width="340px")
        )
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload")
        # A model of undefined image size takes any size: offer one (longer side, aspect kept).
        self.size = widgets.Dropdown(
            options=[("own size", 0), ("96 px", 96), ("160 px", 160), ("224 px", 224),
                     ("320 px", 320)],
            value=224, description="size", layout=widgets.Layout(width="180px"),
            tooltip="the model takes images of any size: the longer side is resized to this",
        )  # fmt: skip
        self.any_size = backend.spec.size is None
        if self.any_size:
            backend.set_longest_side(self.size.value)
        self.preview = widgets.Image(format="png", layout=widgets.Layout(width="256px"))
        self.dropdown.observe(self._on_pick, "value")
        self.size.observe(self._on_size, "value")
        self.upload.observe(self._on_upload, "value")

    def controls(self) -> widgets.HBox:
        """The picker, the upload button and (for any-size models) the size choice."""
        return widgets.HBox([self.dropdown, self.upload] + ([self.size] if self.any_size else []))

    def use(self, image: Any, name: str, notify: bool = True) -> bool:
        """Switch to ``image`` under ``name``; False (error reported, old image kept) if it
        cannot be used. ``notify=False``: do not call ``on_image`` (construction)."""
        try:
            array = read_images(image)  # paths, PIL modes, tensors, lists: as the backend reads
            array = (
                np.array(array, copy=True)
                if isinstance(array, np.ndarray)
                else [np.array(a, copy=True) for a in array]
            )  # the key must not go stale
            display = self.backend.display_image(array)
        except Exception as exc:
            self.on_error(exc)
            return False
        with self.lock:
            self.array, self.key, self.display = array, image_key(array), display
            rgb = to_uint8(np.clip(display, 0.0, 1.0))
            self.preview.value = to_png(enlarge(rgb, PREVIEW_SIZE))
        if name not in self.samples:
            self.user_images[name] = array
            options = list(self.samples) + list(self.user_images)
            if list(self.dropdown.options) != options:
                self._quietly(lambda: setattr(self.dropdown, "options", options))
        if self.dropdown.value != name:
            self._quietly(lambda: setattr(self.dropdown, "value", name))
        if notify:
            self.on_image()
        return True

    def use_sample(self, notify: bool = True) -> None:
        """Show the sample selected in the picker (the first one at the start)."""
        self.use(self.samples[self.dropdown.value], self.dropdown.value, notify)

    def widgets(self) -> list[widgets.Widget]:
        return [self.dropdown, self.upload, self.size, self.preview]

    def close(self) -> None:
        self.dropdown.unobserve(self._on_pick, "value")
        self.size.unobserve(self._on_size, "value")
        self.upload.unobserve(self._on_upload, "value")

    # -- control events ----------------------------------------------------------------------
    def _on_pick(self, change: dict) -> None:
        name = change["new"]
        source = self.samples if name in self.samples else self.user_images
        if name in source:
            self.use(source[name], name)

    def _on_size(self, change: dict) -> None:
        self.backend.set_longest_side(change["new"])
        if self.array is not None:
            self.use(self.array, self.dropdown.value)

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        f = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        name = f.get("name", "image")
        try:
            array = decode_image(bytes(f["content"]))
        except Exception as exc:
            self.on_error(
                ImageError(
                    f"Could not read {name!r} as an image ({exc}). Fix: upload a PNG or JPEG file."
                )
            )
            return
        self.use(array, f"upload: {name}")

    def _quietly(self, action: Callable[[], object]) -> None:
        """Change the picker without it loading an image again."""
        self.dropdown.unobserve(self._on_pick, "value")
        try:
            action()
        finally:
            self.dropdown.observe(self._on_pick, "value")
