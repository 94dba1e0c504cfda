"""Read images the way users pass them: arrays of any dtype, PIL images, paths, tensors, lists.

Two steps, kept apart so that a cache key and the pixels fed to the network always agree:

- :func:`read_images` turns whatever was passed into numeric numpy: a file path is opened with
  PIL; a PIL image is converted by its mode (palette ``P``/``PA`` and ``CMYK``, ``YCbCr``,
  ``LAB``, ``HSV`` become RGB(A), ``1`` becomes 0/1, 16-bit ``I;16`` stays uint16); a
  ``tf.Tensor`` (or anything with ``.numpy()`` / ``__array__``) becomes its array; a list of
  images becomes a batch, or a list of arrays when their sizes differ (each is resized to the
  model's size later).
- :func:`unit_scale` decides how the values map to ``[0, 1]``, by dtype and then by range:

  =========================  ==========================================================
  ``bool``                   False/True -> 0/1
  ``uint8``                  0..255
  ``uint16``                 0..65535 (16-bit images)
  other integers             0..255 when all values are in it (``np.random.randint(0,
                             256, ...)``, PIL ``I`` images of 8-bit data); 0..65535 when
                             in that (with an :class:`~nbviz.errors.ImageRangeWarning`);
                             anything else is an :class:`~nbviz.errors.ImageError`
  floats (16, 32, 64 bit)    0..1 when the finite values lie in ``[-0.5, 1.5]``; 0..255
                             when they reach above 1.5 and lie in ``[-5, 260]``
                             (``keras.utils.img_to_array``), with an
                             ``ImageRangeWarning``; other ranges are used as they are, with
                             an ``ImageRangeWarning`` (already preprocessed? pass the raw
                             image and ``preprocess=`` instead)
  =========================  ==========================================================

Channels (see ``match_channels`` in :mod:`nbviz.featuremaps.preprocess`): 1 gray, 2 gray + alpha,
3 RGB, 4 RGBA; alpha is dropped, as ``keras.utils.load_img`` does.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from ..errors import ImageError, ImageRangeWarning

UNIT_SLACK = (-0.5, 1.5)  # floats in here are 0..1 (resampling over/undershoots a little)
BYTE_SLACK = (-5.0, 260.0)  # floats reaching above 1.5 and in here are 0..255

# PIL modes whose array is not gray / gray+alpha / RGB / RGBA, and what to convert them to.
_PIL_CONVERT = {
    "1": "L",
    "P": "RGB",
    "PA": "RGBA",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
    "RGBX": "RGB",
    "RGBa": "RGBA",
    "La": "LA",
    "I;16N": "I",
}


def _is_pil(obj: Any) -> bool:
    return any(c.__module__.startswith("PIL.") and c.__name__ == "Image" for c in type(obj).__mro__)


def pil_to_array(image: Any) -> np.ndarray:
    """A PIL image as an array whose channels mean gray / gray+alpha / RGB / RGBA."""
    mode = image.mode
    target = _PIL_CONVERT.get(mode)
    if mode == "P" and ("transparency" in image.info):
        target = "RGBA"
    if target is not None:
        try:
            image = image.convert(target)
        except (ValueError, OSError) as exc:
            raise ImageError(
                f"PIL cannot convert an image of mode {mode!r} to {target} ({exc}). Fix: "
                "convert it yourself, e.g. image.convert('RGB'), before passing it."
            ) from exc
    return np.array(image)


def read_path(path: str | os.PathLike) -> np.ndarray:
    """The image file at ``path`` (any format PIL reads), by :func:`pil_to_array`."""
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError as exc:  # pragma: no cover - pillow comes with matplotlib
        raise ImageError(
            f"Reading the image file {os.fspath(path)!r} needs Pillow. Fix: pip install pillow, "
            "or pass the image as an array."
        ) from exc
    name = os.fspath(path)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if "://" in name:
        raise ImageError(
            f"{name!r} is a URL; nbviz reads local files only. Fix: download it first, e.g. "
            "keras.utils.get_file(origin=url), and pass the local path."
        )
    try:
        with Image.open(name) as im:
            im.load()
            return pil_to_array(im)
    except FileNotFoundError:
        raise ImageError(
            f"No image file at {name!r}. Fix: check the path "
            f"(the working directory is {os.getcwd()!r})."
        ) from None
    except IsADirectoryError:
        raise ImageError(
            f"{name!r} is a directory, not an image file. Fix: pass the path of one image file."
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{name!r} is not an image file PIL can read. Fix: pass a PNG, JPEG, "
            "GIF, BMP or TIFF file, or the image as an array."
        ) from None


def _is_image_like(obj: Any) -> bool:
    return (
        isinstance(obj, (np.ndarray, str, os.PathLike, bytes))
        or _is_pil(obj)
        or hasattr(obj, "numpy")
        or hasattr(obj, "__array__")
    )


def read_image_array(obj: Any) -> np.ndarray:
    """One image or batch as numpy (no list handling): path, PIL image, tensor or array."""
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, (str, os.PathLike, bytes)):
        return read_path(os.fsdecode(obj) if isinstance(obj, bytes) else obj)
    if _is_pil(obj):
        return pil_to_array(obj)
    numpy = getattr(obj, "numpy", None)
    if callable(numpy):  # tf.Tensor, tf.Variable, torch tensors
        try:
            return np.asarray(numpy())
        except Exception as exc:  # noqa: BLE001 - e.g. a symbolic KerasTensor
            raise ImageError(
                f"Could not read the {type(obj).__name__} as an image ({exc}). Fix: pass a "
                "concrete array (np.asarray(image)) or an eager tensor."
            ) from exc
    return np.asarray(obj)


def read_images(images: Any) -> np.ndarray | list[np.ndarray]:
    """What the user passed as numeric numpy: one image or a batch as one array, or a list
    of arrays for a list of images of different sizes.

    Accepts arrays, ``tf.Tensor``, PIL images, file paths and lists/tuples of any of these;
    nested lists of numbers (``image.tolist()``) are read as one array.
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise ImageError("The list of images is empty. Fix: pass at least one image.")
        if any(_is_image_like(i) for i in images):
            parts = [read_image_array(i) for i in images]
            if len({(p.shape, p.dtype) for p in parts}) == 1:
                return np.stack(parts)
            return parts  # sizes or dtypes differ: each is standardized on its own
        try:
            return np.asarray(images)
        except ValueError:  # ragged nested lists: one image per element
            return [read_image_array(np.asarray(i)) for i in images]
    return read_image_array(images)


def _finite_range(a: np.ndarray) -> tuple[float, float] | None:
    if a.size == 0:
        return None
    finite = a[np.isfinite(a)] if not np.isfinite(a).all() else a
    if finite.size == 0:
        return None
    return float(finite.min()), float(finite.max())


def unit_scale(a: np.ndarray) -> float:
    """The divisor that maps the values of ``a`` to ``[0, 1]`` by the rules in this module
    (1.0 for floats in 0..1 and for values used as they are). May warn or raise."""
    dtype = a.dtype
    if dtype == np.bool_:
        return 1.0
    if dtype.kind == "u" and dtype.itemsize <= 2:
        return float(np.iinfo(dtype).max)
    if dtype.kind in "iu":
        rng = _finite_range(a)
        if rng is None:
            return 255.0
        lo, hi = rng
        if lo >= 0 and hi <= 255:
            return 255.0
        if lo >= 0 and hi <= 65535:
            warnings.warn(
                ImageRangeWarning(
                    f"The {dtype} image holds values up to {hi:g}: read as 16-bit pixels "
                    "(0..65535). Fix: pass it as uint16 to make that explicit, or as floats in "
                    "[0, 1] (e.g. image / image.max()) for 10-, 12- or 14-bit data."
                ),
                stacklevel=4,
            )
            return 65535.0
        raise ImageError(
            f"The {dtype} image holds values in [{lo:g}, {hi:g}]: integer images must be "
            "pixels in 0..255 (or 0..65535 for 16 bits). Fix: scale it to floats in [0, 1], "
            "e.g. (image - image.min()) / (image.max() - image.min())."
        )
    if dtype.kind == "f":
        rng = _finite_range(a)
        if rng is None:
            return 1.0
        lo, hi = rng
        if UNIT_SLACK[0] <= lo and hi <= UNIT_SLACK[1]:
            return 1.0
        if hi > UNIT_SLACK[1] and BYTE_SLACK[0] <= lo and hi <= BYTE_SLACK[1]:
            warnings.warn(
                ImageRangeWarning(
                    f"The {dtype} image holds values up to {hi:g}: read as 0..255 pixels "
                    "(keras.utils.img_to_array gives these), i.e. divided by 255. Fix: pass "
                    "image / 255 (floats in [0, 1]) or image.astype('uint8') to silence this."
                ),
                stacklevel=4,
            )
            return 255.0
        warnings.warn(
            ImageRangeWarning(
                f"The {dtype} image holds values in [{lo:g}, {hi:g}], neither 0..1 nor 0..255 "
                "pixels: used as they are, like floats in [0, 1] (the display clips them). Fix: "
                "if it is already preprocessed, pass the raw image (uint8, or floats in [0, 1]) "
                "and preprocess=... instead."
            ),
            stacklevel=4,
        )
        return 1.0
    raise ImageError(
        f"Images must hold numbers (uint8 in [0, 255] or floats in [0, 1]); got dtype {dtype}. "
        "Fix: convert with np.asarray(image, dtype=np.float32) / 255."
    )
