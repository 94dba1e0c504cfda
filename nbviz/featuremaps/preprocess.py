"""Turn user images into what a model expects.

Conventions: ``uint8`` images hold values in ``[0, 255]``, ``uint16`` in ``[0, 65535]``, float
images in ``[0, 1]``; other dtypes and ranges (int64 pixels, floats in 0..255, PIL modes, file
paths, tensors, lists) are read by the rules of :mod:`.reading`. Every image is
first *standardized* to a float32 batch in ``[0, 1]`` with the model's height, width and channel
count (:meth:`ImagePreparer.standardize`: this is also what widgets display), then scaled to the
model's value range and passed through the model's own ``preprocess_input`` if one is given
(:meth:`ImagePreparer.to_model`).

Accepted shapes: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 2)`` (gray + alpha), ``(H, W, 3)``,
``(H, W, 4)`` (alpha is dropped), batches of those with a leading ``N`` axis, and lists of
images (of any sizes: each is resized to the model's size). RGB becomes grayscale (ITU-R 601 luma) when the
model wants one channel, and grayscale is repeated when it wants three.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._tf import require_keras, require_tensorflow
from ..errors import ImageError, ModelError
from ..layers import check_channels_last, check_model_input
from ..scaling import resolve_input_range
from .reading import read_images, unit_scale

Preprocess = Callable[[Any], Any]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def reshaped_image_input(model: Any) -> tuple[str, tuple[int, int, int]] | None:
    """``(layer name, (H, W, C))`` when the model's first layer is a ``Reshape`` that turns its
    non-image input (e.g. ``Input((28, 28))`` or ``Input((784,))``) into images, else None."""
    keras = require_keras()
    shape = tuple(check_model_input(model))
    first = next(
        (layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)), None
    )
    if len(shape) == 4 or not isinstance(first, keras.layers.Reshape):
        return None
    target = tuple(first.target_shape)
    known = all(d is not None for d in shape[1:])
    if len(target) != 3 or any(d is None or d < 1 for d in target) or not known:
        return None
    if int(np.prod(target)) != int(np.prod(shape[1:])):
        return None
    h, w, c = (int(d) for d in target)
    return first.name, (h, w, c)


@dataclass(frozen=True)
class ImageSpec:
    """The image a model takes: ``None`` where the model leaves a dimension open.

    ``input_shape`` is the model's own input shape (without the batch axis) when it is not
    the image itself: a model whose first layer reshapes e.g. ``(28, 28)`` into ``(28, 28, 1)``
    images (:func:`reshaped_image_input`); ``None`` for image inputs.
    """

    height: int | None
    width: int | None
    channels: int | None
    input_shape: tuple[int, ...] | None = None

    @classmethod
    def from_model(cls, model: Any) -> ImageSpec:
        """Read the spec from the model's single input; :class:`ModelError` if not an image."""
        shape = check_model_input(model)
        reshaped = reshaped_image_input(model)
        if reshaped is not None:
            return cls(*reshaped[1], input_shape=tuple(int(d) for d in shape[1:]))
        if len(shape) != 4:
            raise ModelError(
                f"Model {model.name!r} takes inputs of shape {shape}, not images "
                "(batch, height, width, channels); feature maps need a convolutional image "
                "model. Fix: pass a model whose input is e.g. keras.Input((64, 64, 3))."
            )
        h, w, c = (None if d is None else int(d) for d in shape[1:])
        return cls(h, w, c)

    @property
    def size(self) -> tuple[int, int] | None:
        """``(height, width)`` when both are defined, else ``None``."""
        if self.height is None or self.width is None:
            return None
        return (self.height, self.width)

    def describe(self) -> str:
        """``"(H, W, C)"`` for messages, with ``any`` for undefined sizes."""
        h, w, c = (
            ("any" if d is None else str(d)) for d in (self.height, self.width, self.channels)
        )
        return f"({h}, {w}, {c})"


def to_unit_float(image: Any) -> np.ndarray:
    """Pixels to float32 in ``[0, 1]`` by dtype and range (``uint8`` / 255, ``uint16`` / 65535,
    ``bool`` 0/1, int64 0..255 / 255, float 0..255 / 255 with a warning...: see
    :mod:`.reading`)."""
    a = np.asarray(image)
    scale = unit_scale(a)
    x = a.astype(np.float32, copy=a.dtype != np.float32)
    return x if scale == 1.0 else x / np.float32(scale)


def as_batch(images: Any, spec: ImageSpec | None = None) -> tuple[np.ndarray, bool]:
    """Return ``(batch of shape (N, H, W, C), was_single)``; :class:`ImageError` on bad rank."""
    a = read_images(images)
    if isinstance(a, list):
        raise ImageError(
            f"The {len(a)} images have different sizes or dtypes "
            f"({sorted({(p.shape, str(p.dtype)) for p in a})}) and cannot be one batch. "
            "Fix: resize them to one size, or pass them to ImagePreparer.standardize, which "
            "resizes each to the model's size."
        )
    want = f" The model takes {spec.describe()} images." if spec is not None else ""
    if a.ndim == 2:
        return a[None, :, :, None], True
    if a.ndim == 3:
        if a.shape[-1] in (1, 2, 3, 4) or (spec is not None and a.shape[-1] == spec.channels):
            return a[None], True
        raise ImageError(
            f"An image of shape {a.shape} has {a.shape[-1]} channels; images are (height, width) "
            f"grayscale or (height, width, channels) with 1 (gray), 2 (gray + alpha), 3 (RGB) or "
            f"4 (RGBA) channels, channels last.{want} "
            "Fix: for channels-first arrays use np.moveaxis(image, 0, -1)."
        )
    if a.ndim == 4:
        return a, False
    raise ImageError(
        f"Images must have rank 2 (H, W), 3 (H, W, C) or 4 (N, H, W, C) for a batch; got rank "
        f"{a.ndim} with shape {a.shape}.{want} "
        + (
            "Fix: a rank-1 array is not an image; reshape it to (height, width[, channels])."
            if a.ndim < 2
            else "Fix: drop extra axes, e.g. np.squeeze(images) or images[0]."
        )
    )


def match_channels(batch: np.ndarray, channels: int | None) -> np.ndarray:
    """Convert a (N, H, W, C) float batch to ``channels`` channels (drop alpha, gray <-> RGB).

    ``C`` is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) unless it is the model's own.
    """
    c = batch.shape[-1]
    if c == 2 and channels != 2:  # gray + alpha: drop the alpha
        batch, c = batch[..., :1], 1
    if channels is None or c == channels:
        return batch[..., :3] if channels is None and c == 4 else batch
    if c == 4 and channels == 3:
        return batch[..., :3]
    if c in (3, 4) and channels == 1:
        return np.tensordot(batch[..., :3], _LUMA, axes=([-1], [0]))[..., None]
    if c == 1 and channels == 3:
        return np.repeat(batch, 3, axis=-1)
    raise ImageError(
        f"The image has {c} channels but the model takes {channels}; only grayscale (1), gray + "
        f"alpha (2), RGB (3) and RGBA (4) images are converted automatically. Fix: pass an image with {channels} "
        "channels, channels last."
    )


def fit_size(hw: tuple[int, int], longest: int | None) -> tuple[int, int] | None:
    """``(h, w)`` scaled so the longer side is ``longest`` (aspect kept); ``None`` if unset."""
    if not longest:
        return None
    scale = float(longest) / max(hw)
    return (max(1, round(hw[0] * scale)), max(1, round(hw[1] * scale)))


def resize_batch(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of a float (N, H, W, C) batch."""
    if tuple(batch.shape[1:3]) == tuple(size):
        return batch
    tf = require_tensorflow()
    return np.asarray(tf.image.resize(batch, size, method="bilinear", antialias=True).numpy())


class ImagePreparer:
    """Standardize user images for one model and apply its preprocessing hooks.

    Parameters
    ----------
    spec:
        The model's :class:`ImageSpec` (``ImageSpec.from_model(model)``).
    preprocess:
        The model's own ``preprocess_input`` (e.g. ``keras.applications.vgg16.preprocess_input``),
        applied last to the batch scaled to ``input_range``.
    input_range:
        The value range the model (or ``preprocess``) expects: ``(0, 255)`` by default when
        ``preprocess`` is given (Keras applications expect 0..255 pixels), else ``(0, 1)``.
        :class:`~nbviz.featuremaps.FeatureMaps` passes the range it reads from the model's own
        ``Rescaling``/``Normalization`` layer (see :mod:`nbviz.scaling`).
    resize:
        Resize images to the model's height and width when it defines them. With ``False`` an
        image of another size is an :class:`ImageError`.
    input_dtype:
        The model input's dtype. For integer inputs (``keras.Input(dtype="uint8")``) the
        scaled pixels are rounded and clipped to the dtype.
    """

    def __init__(
        self,
        spec: ImageSpec,
        preprocess: Preprocess | None = None,
        input_range: tuple[float, float] | None = None,
        resize: bool = True,
        input_dtype: str = "float32",
    ) -> None:
        self.spec = spec
        self.preprocess = preprocess
        self.input_range = resolve_input_range(input_range, preprocess, None)
        self.resize = resize
        self.input_dtype = np.dtype(input_dtype)
        #: For models of undefined image size: scale images so the longer side has this many
        #: pixels (``None``: each image keeps its own size).
        self.longest_side: int | None = None

    def standardize(self, images: Any) -> tuple[np.ndarray, bool]:
        """``(float32 batch in [0, 1] at the model's size and channels, was_single)``.

        ``images``: anything :func:`~nbviz.featuremaps.read_images` reads; a list of
        images of different sizes is resized image by image.
        """
        images = read_images(images)
        if isinstance(images, list):
            return self._standardize_each(images), False
        batch, single = as_batch(images, self.spec)
        if batch.shape[0] == 0:
            raise ImageError("The batch of images is empty. Fix: pass at least one image.")
        if min(batch.shape[1:3]) < 1:
            raise ImageError(f"Images of shape {batch.shape[1:]} have no pixels.")
        x = match_channels(to_unit_float(batch), self.spec.channels)
        size = self.spec.size or fit_size(x.shape[1:3], self.longest_side)
        if size is not None and tuple(x.shape[1:3]) != size:
            if not self.resize:
                raise ImageError(
                    f"The image is {x.shape[1]}x{x.shape[2]} but the model takes "
                    f"{size[0]}x{size[1]}. Fix: resize it, or leave resize=True."
                )
            x = resize_batch(x, size)
        return np.ascontiguousarray(x, dtype=np.float32), single

    def _standardize_each(self, images: list[np.ndarray]) -> np.ndarray:
        parts = [self.standardize(image)[0] for image in images]
        sizes = {p.shape[1:] for p in parts}
        if len(sizes) > 1:
            raise ImageError(
                f"The images have different sizes {sorted(s[:2] for s in sizes)} and the model "
                f"takes any size {self.spec.describe()}, so they cannot be one batch. Fix: "
                "resize them to one size first, or pass them one at a time."
            )
        return np.concatenate(parts, axis=0)

    def to_model(self, batch01: np.ndarray) -> np.ndarray:
        """Scale a standardized batch to ``input_range``, apply ``preprocess``, cast to the input."""
        lo, hi = self.input_range
        x = batch01 if (lo, hi) == (0.0, 1.0) else batch01 * np.float32(hi - lo) + np.float32(lo)
        if self.preprocess is not None:
            x = self.preprocess(np.array(x, dtype=np.float32))  # a copy: hooks may work in place
            x = np.asarray(x, dtype=np.float32)
        if self.input_dtype.kind in "iub":
            info = np.iinfo(self.input_dtype) if self.input_dtype.kind != "b" else None
            x = np.round(x) if info is None else np.clip(np.round(x), info.min, info.max)
            return np.ascontiguousarray(x.astype(self.input_dtype))
        return np.ascontiguousarray(x, dtype=np.float32)

    def prepare(self, images: Any) -> np.ndarray:
        """Model-ready float32 batch (N, H, W, C) for one image or a batch."""
        return self.to_model(self.standardize(images)[0])


def prepare_image(
    image: Any,
    model_input_shape: tuple,
    preprocess: Preprocess | None = None,
    input_range: tuple[float, float] | None = None,
    resize: bool = True,
) -> np.ndarray:
    """One model-ready image (H, W, C) for a model whose input shape is ``model_input_shape``.

    ``model_input_shape`` is ``(batch, H, W, C)`` as in ``model.input.shape`` (``None`` entries
    are left open). See :class:`ImagePreparer` for the other arguments.
    """
    shape = tuple(model_input_shape)
    if len(shape) != 4:
        raise ModelError(
            f"Input shape {shape} is not an image model's (batch, height, width, channels)."
        )
    check_channels_last(None, shape)
    h, w, c = (None if d is None else int(d) for d in shape[1:])
    spec = ImageSpec(h, w, c)
    batch = ImagePreparer(spec, preprocess, input_range, resize).prepare(image)
    if batch.shape[0] != 1:
        raise ImageError(
            f"prepare_image takes one image; got a batch of {batch.shape[0]}. "
            "Fix: use ImagePreparer.prepare for batches."
        )
    return np.asarray(batch[0])
