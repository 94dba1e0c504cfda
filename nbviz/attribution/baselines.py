"""Integrated Gradients baselines: the "absence of signal" an attribution is measured from.

``"black"`` is the all-zero image (Sundararajan et al.'s default), ``"blurred"`` a Gaussian
blur of the image itself (keeps colours and coarse layout, removes edges and texture; see
Sturmfels et al., Distill 2020), and any array is a user baseline in the images' own
``[0, 1]`` scale at the model's input size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ImageError
from ..featuremaps.preprocess import as_batch, match_channels, to_unit_float

BASELINES = ("black", "blurred")


def blur(images: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """Gaussian blur of a ``(N, H, W, C)`` batch over space (``sigma`` in pixels; default a
    tenth of the larger side); borders repeat the edge pixels."""
    if sigma is None:
        sigma = max(images.shape[1:3]) / 10.0
    if not float(sigma) >= 0:
        raise ValueError(f"blur_sigma is a non-negative number of pixels, got {sigma!r}.")
    if sigma == 0:
        return np.array(images, dtype=np.float32)
    r = max(1, int(3.0 * sigma + 0.5))
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = np.asarray(images, np.float64)
    for axis in (1, 2):  # separable: rows, then columns
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(taps))
    return np.asarray(out, np.float32)


def make_baselines(
    images: np.ndarray, baseline: Any = "black", blur_sigma: float | None = None
) -> np.ndarray:
    """Baselines shaped like ``images`` ``(N, H, W, C)`` in ``[0, 1]``.

    ``baseline``: ``"black"``, ``"blurred"``, or an image ``(H, W[, C])`` / batch
    ``(N, H, W, C)`` (uint8 in [0, 255] or float in [0, 1]) of the images' size; one image is
    used for every row. A wrong shape is an :class:`~nbviz.errors.ImageError`.
    """
    if isinstance(baseline, str):
        if baseline == "black":
            return np.zeros_like(images)
        if baseline == "blurred":
            return blur(images, blur_sigma)
        raise ImageError(
            f"Unknown baseline {baseline!r}. Fix: use 'black', 'blurred' or an image array of "
            f"shape {images.shape[1:]}."
        )
    batch, _ = as_batch(baseline)
    batch = match_channels(to_unit_float(batch), images.shape[-1])
    want = images.shape[1:]
    if batch.shape[1:] != want or batch.shape[0] not in (1, len(images)):
        raise ImageError(
            f"The baseline has shape {np.asarray(baseline).shape} but the images are "
            f"{len(images)} x {want} (after fitting them to the model's input). Fix: pass a "
            f"baseline of shape {want} (or {(len(images), *want)}), in the images' [0, 1] "
            "scale, or baseline='black' / 'blurred'."
        )
    return np.ascontiguousarray(np.broadcast_to(batch, images.shape), dtype=np.float32)
