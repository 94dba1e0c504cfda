"""Image parameterizations: the variables gradient ascent changes and how they become an image.

Following Lucid (tensorflow/lucid ``optvis.param``):

* :func:`pixel_image` -- one free variable per pixel (the seed article's choice).
* :func:`fft_image` -- spectral parameterization: the variables are rFFT coefficients scaled
  by ``1 / max(|f|, 1 / max(H, W)) ** decay_power`` times ``sqrt(H * W)``; the inverse FFT
  (as three small real matmuls) divided by 4 gives the image. Equal steps on every coefficient then change low
  frequencies more than high ones, which removes the high-frequency noise of pixel ascent.
* :func:`to_valid_rgb` -- optional colour decorrelation (the square root of ImageNet's colour
  correlation) followed by a sigmoid (or a straight-through clip) into ``[0, 1]``.
* :func:`image` -- all of the above for any size, batch and channel count (1-channel
  models get no colour decorrelation).

Everything here is TensorFlow graph code: the image function is called inside the compiled
render step, so no image ever goes through the host while optimizing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._tf import require_tensorflow
from ..errors import ImageError

# Square root of ImageNet's colour correlation matrix (Lucid), columns are colour "basis"
# vectors; normalized by the largest column norm (~0.462) so a unit step stays in range.
COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
MAX_NORM_SVD_SQRT = float(np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0)))
COLOR_CORRELATION_NORMALIZED = COLOR_CORRELATION_SVD_SQRT / MAX_NORM_SVD_SQRT
COLOR_MEAN = np.asarray([0.48, 0.46, 0.41], dtype=np.float32)

DEFAULT_SD = 0.01


@dataclass
class ImageParam:
    """A parameterized image: trainable variables and a graph function producing the image.

    ``variables`` are what the optimizer changes; ``image()`` returns the ``(B, H, W, C)``
    float32 image in ``[0, 1]`` (call it inside ``tf.function``); ``reset(seed)`` draws a
    new initial value in place (same variables, so compiled steps are not retraced).
    Unpacks like Lucid's pair: ``variables, image_fn = param.image(64)``.
    """

    variables: list[Any]
    image: Callable[[], Any]
    shape: tuple[int, int, int, int]
    description: str
    _init: Callable[[np.random.Generator], list[np.ndarray]] = field(repr=False)
    batch_axes: tuple[int, ...] = (0,)  # axis of each variable that indexes the batch row

    def __iter__(self) -> Iterator[Any]:
        return iter((self.variables, self.image))

    @property
    def batch(self) -> int:
        return self.shape[0]

    def reset(self, seed: int | None = None) -> None:
        """Re-draw the initial values (deterministic for a given ``seed``)."""
        values = self._init(np.random.default_rng(seed))
        for var, value in zip(self.variables, values, strict=True):
            var.assign(value)


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int, int]:
    try:
        b, h, w, c = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ImageError(
            f"An image shape is (batch, height, width, channels), got {shape!r}. "
            "Fix: pass four positive integers, e.g. (1, 128, 128, 3)."
        ) from None
    if min(b, h, w, c) < 1:
        raise ImageError(
            f"Image shape {tuple(shape)} has a zero or negative size. "
            "Fix: use batch >= 1, height and width >= 1, channels >= 1."
        )
    return b, h, w, c


def pixel_image(
    shape: Sequence[int], sd: float | None = None, seed: int | None = None
) -> ImageParam:
    """One variable per pixel, initialized ``N(0, sd)``; the image is the raw variable.

    The result is unbounded: pass it through :func:`to_valid_rgb` (as :func:`image` does).
    """
    tf = require_tensorflow()
    shape = _check_shape(shape)
    sd = DEFAULT_SD if sd is None else float(sd)

    def init(rng: np.random.Generator) -> list[np.ndarray]:
        return [rng.normal(0.0, sd, shape).astype(np.float32)]

    var = tf.Variable(init(np.random.default_rng(seed))[0], name="nbviz_pixels")
    return ImageParam([var], lambda: tf.identity(var), shape, f"pixel(sd={sd})", init)


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """Frequency magnitude (cycles per pixel) of each coefficient of an ``h x w`` rFFT."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy).astype(np.float32)


def irfft2d_matrices(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real matrices ``(M1, M2, L)`` computing ``irfft2d`` with three small matmuls.

    For one channel with spectrum rows ``X = [Re | Im]`` (``H x 2K``, ``K = W // 2 + 1``):
    ``irfft2d(Re + i Im) == L @ [[X @ M1], [X @ M2]]``. ``M1``/``M2`` (``2K x W``) are the
    inverse real DFT along x (its real and imaginary parts), ``L`` (``H x 2H``) the inverse
    complex DFT along y. On CPU at these sizes this is faster than ``tf.signal.irfft2d``
    (with its gradient), and it needs no complex dtype.
    """
    k = w // 2 + 1
    kx = np.arange(k)[:, None] * np.arange(w)[None, :] * (2 * np.pi / w)
    weight = np.full((k, 1), 2.0)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0  # the Nyquist column appears once
    ax, bx = weight * np.cos(kx) / w, weight * np.sin(kx) / w
    m1 = np.concatenate([ax, -bx], axis=0)
    m2 = np.concatenate([bx, ax], axis=0)
    hy = np.arange(h)[:, None] * np.arange(h)[None, :] * (2 * np.pi / h)
    left = np.concatenate([np.cos(hy), -np.sin(hy)], axis=1) / h
    return m1.astype(np.float32), m2.astype(np.float32), left.astype(np.float32)


def fft_image(
    shape: Sequence[int],
    sd: float | None = None,
    decay_power: float = 1.0,
    seed: int | None = None,
) -> ImageParam:
    """Spectral parameterization (Lucid): optimize rFFT coefficients with ``1/f`` scaling.

    Coefficients start ``N(0, sd)`` (``sd`` 0.01), are multiplied by
    ``sqrt(H*W) / max(|f|, 1/max(H, W)) ** decay_power``, inverse-FFT'd and divided by 4.
    Unbounded like :func:`pixel_image`; pass through :func:`to_valid_rgb`.
    The variable is ``(H, B, C, 2K)``: for each frequency row, the real parts then the
    imaginary parts of the ``K = W // 2 + 1`` rFFT columns (rows first: no transposes in
    the inverse transform).
    """
    tf = require_tensorflow()
    b, h, w, c = _check_shape(shape)
    sd = DEFAULT_SD if sd is None else float(sd)
    freqs = rfft2d_freqs(h, w)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** float(decay_power)
    scale = (scale * np.sqrt(h * w)).astype(np.float32)
    k = freqs.shape[1]
    var_shape = (h, b, c, 2 * k)

    def init(rng: np.random.Generator) -> list[np.ndarray]:
        return [rng.normal(0.0, sd, var_shape).astype(np.float32)]

    var = tf.Variable(init(np.random.default_rng(seed))[0], name="nbviz_spectrum")
    m1, m2, left = irfft2d_matrices(h, w)
    scale_t = tf.constant(np.concatenate([scale, scale], axis=1)[:, None, None, :])
    m1_t, m2_t, left_t = tf.constant(m1), tf.constant(m2), tf.constant(left / 4.0)

    def image_fn():
        rows = tf.reshape(var * scale_t, [h * b * c, 2 * k])
        re = tf.reshape(rows @ m1_t, [h, b * c * w])  # inverse DFT along x
        im = tf.reshape(rows @ m2_t, [h, b * c * w])
        img = left_t @ tf.concat([re, im], axis=0)  # inverse DFT along y: (H, B*C*W)
        return tf.transpose(tf.reshape(img, [h, b, c, w]), (1, 0, 3, 2))

    desc = f"fft(sd={sd}, decay_power={decay_power})"
    return ImageParam([var], image_fn, (b, h, w, c), desc, init, batch_axes=(1,))


def _clip_straight_through(t):
    """Clip to [0, 1] in the forward pass but let gradients through (Lucid's L-inf constrain)."""
    tf = require_tensorflow()
    return t + tf.stop_gradient(tf.clip_by_value(t, 0.0, 1.0) - t)


def linear_decorrelate_color(t):
    """Map decorrelated colour coordinates (last axis, 3) to RGB with ImageNet's correlation."""
    tf = require_tensorflow()
    return tf.tensordot(t, tf.constant(COLOR_CORRELATION_NORMALIZED.T), axes=[[-1], [0]])


def to_valid_rgb(t, decorrelate: bool = True, sigmoid: bool = True):
    """Turn an unbounded ``(..., C)`` tensor into a valid image in ``[0, 1]``.

    ``decorrelate`` applies only to 3 channels (it needs the RGB correlation matrix).
    ``sigmoid=False`` adds the ImageNet colour mean (when decorrelating) and clips with a
    straight-through gradient instead.
    """
    tf = require_tensorflow()
    channels = t.shape[-1]
    if decorrelate and channels != 3:
        raise ImageError(
            f"Colour decorrelation needs 3 channels, the image has {channels}. "
            "Fix: pass decorrelate=False (nbviz.optvis.param.image does this for you)."
        )
    if decorrelate:
        t = linear_decorrelate_color(t)
    if sigmoid:
        return tf.nn.sigmoid(t)
    if decorrelate:
        t = t + tf.constant(COLOR_MEAN)
    else:
        t = t + 0.5
    return _clip_straight_through(t)


def image(
    h: int,
    w: int | None = None,
    batch: int = 1,
    channels: int = 3,
    fft: bool = True,
    decorrelate: bool = True,
    sigmoid: bool = True,
    sd: float | None = None,
    decay_power: float = 1.0,
    seed: int | None = None,
) -> ImageParam:
    """A ready-to-optimize image of ``batch`` rows, ``h x w`` pixels, ``channels`` channels.

    Spectral (``fft``) and colour-decorrelated by default (Lucid's recipe). Decorrelation
    is skipped automatically unless ``channels == 3`` (grayscale models get one channel).
    ``image()`` of the result is in ``[0, 1]``.
    """
    w = h if w is None else w
    shape = _check_shape((batch, h, w, channels))
    base = (
        fft_image(shape, sd=sd, decay_power=decay_power, seed=seed)
        if fft
        else pixel_image(shape, sd=sd, seed=seed)
    )
    decorrelate = bool(decorrelate and shape[-1] == 3)

    def image_fn():
        return to_valid_rgb(base.image(), decorrelate=decorrelate, sigmoid=sigmoid)

    desc = f"{base.description}, decorrelate={decorrelate}, sigmoid={sigmoid}"
    return ImageParam(base.variables, image_fn, shape, desc, base._init, base.batch_axes)
