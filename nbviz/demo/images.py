"""Offline sample images: scikit-learn's and matplotlib's bundled photos plus gratings."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import ImageError, closest_names, format_choices
from ..imaging import to_uint8
from .procedural import CLASS_NAMES, class_parts, make_grating

_GRATING_SIZE = 128
_GRATING_PERIOD = 16.0
_COLOURS = {"red": (0.9, 0.1, 0.1), "blue": (0.1, 0.2, 0.9)}


def _grating_name(class_name: str) -> str:
    return "grating_" + class_name.replace(" ", "_")


def _photos() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from PIL import Image
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    photos = {}
    for path, image in zip(bunch.filenames, bunch.images, strict=True):
        name = path.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
        photos[name] = np.ascontiguousarray(image, dtype=np.uint8)
    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as f:
        photos["grace_hopper"] = np.asarray(f.convert("RGB"), dtype=np.uint8)
    return photos


def _gratings() -> dict[str, np.ndarray]:
    out = {}
    for label, class_name in enumerate(CLASS_NAMES):
        angle, colour = class_parts(label)
        g = make_grating(_GRATING_SIZE, angle, _GRATING_PERIOD, color=_COLOURS[colour])
        out[_grating_name(class_name)] = to_uint8(g)
    return out


@lru_cache(maxsize=1)
def _all_images() -> dict[str, np.ndarray]:
    images = {**_photos(), **_gratings()}
    for a in images.values():
        a.setflags(write=False)
    return images


def sample_image_names() -> list[str]:
    """Names accepted by :func:`sample_image`."""
    return list(_all_images())


def sample_images() -> dict[str, np.ndarray]:
    """All offline sample images, name -> uint8 RGB array (H, W, 3); fresh copies.

    ``china`` and ``flower`` (scikit-learn, 427x640), ``grace_hopper`` (matplotlib,
    600x512) and one 128x128 grating per demo class, e.g. ``grating_vertical_red`` or
    ``grating_rising_diagonal_blue`` (period 16 px, see nbviz.demo.procedural for the
    angle convention). Nothing is downloaded.
    """
    return {k: v.copy() for k, v in _all_images().items()}


def sample_image(name: str, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """One sample image as uint8 RGB (a fresh copy).

    ``size``: None keeps the original; an int centre-crops to a square and resizes to
    ``size`` x ``size``; a tuple ``(height, width)`` resizes without cropping.
    """
    images = _all_images()
    if name not in images:
        hint = closest_names(name, list(images))
        raise ImageError(
            f"Unknown sample image {name!r}."
            + (f" Did you mean {', '.join(map(repr, hint))}?" if hint else "")
            + f" Valid names: {format_choices(list(images))}."
        )
    image = images[name]
    if size is None:
        return image.copy()
    if isinstance(size, int | np.integer):
        h, w = image.shape[:2]
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        image = image[top : top + s, left : left + s]
        target: tuple[int, ...] = (int(size), int(size))
    else:
        target = tuple(int(v) for v in size)
        if len(target) != 2:
            raise ImageError(f"size must be an int or (height, width), got {size!r}.")
    if min(target) < 1:
        raise ImageError(f"size must be positive, got {size!r}.")
    from PIL import Image

    resized = Image.fromarray(image).resize((target[1], target[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8).copy()
