"""Image parameterizations: the variables gradient ascent changes and how they become an image.

Following Lucid (tensorflow/lucid ``optvis.param``):

* :func:`pixel_image` -- one free variable per pixel (the seed article's choice).
* :func:`fft_image` -- spectral parameterization: the variables are rFFT coefficients scaled
  by ``1 / max(|f|, 1 / max(H, W)) ** decay_power`` times ``sqrt(H * W)``; the inverse FFT
  divided by 4 gives the image. Up to :data:`MATMUL_MAX_SIZE` pixels a side the inverse FFT
  is two small real matmuls (dense DFT matrices: faster there, but their cost grows as
  ``n^3`` and their memory as ``n^2``); above it, ``tf.signal.irfft2d`` (``n^2 log n``). Equal steps on every coefficient then change low
  frequencies more than high ones, which removes the high-frequency noise of pixel ascent.
* :func:`to_valid_rgb` -- optional colour decorrelation (the square root of ImageNet's colour
  correlation) followed by a sigmoid (or a straight-through clip) into ``[0, 1]``.
* :func:`image` -- all of the above for any size, batch and channel count (1-channel
  models get no colour decorrelation).
* :func:`for_model` -- the image a render of a given model needs (default size, checks).

Everything here is TensorFlow graph code: the image function is called inside the compiled
render step, so no image ever goes through the host while optimizing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._tf import require_tensorflow
from ..errors import CostWarning, ImageError

# Square root of ImageNet's colour correlation matrix (Lucid), columns are colour "basis"
# vectors; normalized by the largest column norm (~0.462) so a unit step stays in range.
COLOR_CORRELATION_SVD_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=np.float32
)
MAX_NORM_SVD_SQRT = float(np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0)))
COLOR_CORRELATION_NORMALIZED = COLOR_CORRELATION_SVD_SQRT / MAX_NORM_SVD_SQRT
COLOR_MEAN = np.asarray([0.48, 0.46, 0.41], dtype=np.float32)

DEFAULT_SD = 0.01
# Largest side computed with dense DFT matmuls; above it tf.signal.irfft2d is faster (and the
# matrices and their stored transposes grow as n^2: 6 GiB at 4096 px). Measured with
# benchmarks/optvis_spectrum.py on 2 CPU cores, spectrum step forward + backward, matmul vs
# irfft2d: 1.5 vs 2.4 ms at 128 px, 3.8 vs 4.6 at 192, even at 208, 8.7 vs 6.8 at 224,
# 214 vs 64 ms at 512.
MATMUL_MAX_SIZE = 200
SPECTRUM_METHODS = ("auto", "matmul", "fft")
OVERSIZE_FACTOR = 4  # a render side above this many times the model's input side warns


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


def irfft2d_matrices(
    h: int, w: int, color: np.ndarray | None = None, channels: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Real matrices ``(Y, X)`` computing ``irfft2d`` (and a colour mix) as two plain matmuls.

    The spectrum is stored as ``S`` of shape ``(2H, B, K, C)`` (``K = W // 2 + 1``): rows
    ``0..H-1`` hold the real parts, rows ``H..2H-1`` the imaginary parts. ``Y``
    (``2H x 2H``) is the inverse complex DFT along y; its output rows interleave real and
    imaginary parts (row ``2 h + p``), so for one image ``Y @ S`` reshaped to
    ``(H, 2 K C)`` lists, per image row, the real then the imaginary x-spectrum of every
    channel. ``X`` (``2 K C x W C``) is the inverse real DFT along x (the DC and Nyquist
    columns counted once, their imaginary parts ignored as ``irfft`` does) times the
    channel mix ``color`` (identity by default): its output is the image row, channels last.
    No complex dtype and no transposes (for one image), which on CPU at these sizes beats
    ``tf.signal.irfft2d`` with its gradient by far.
    """
    k = w // 2 + 1
    hy = np.arange(h)[:, None] * np.arange(h)[None, :] * (2 * np.pi / h)  # [h_out, h]
    cos, sin = np.cos(hy) / h, np.sin(hy) / h
    y = np.zeros((2 * h, 2 * h))
    y[0::2, :h], y[0::2, h:] = cos, -sin  # real part of row h_out
    y[1::2, :h], y[1::2, h:] = sin, cos  # imaginary part
    kx = np.arange(w)[:, None] * np.arange(k)[None, :] * (2 * np.pi / w)  # [w, k]
    weight = np.full(k, 2.0)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0  # the Nyquist column appears once
    x = np.concatenate([weight * np.cos(kx), -weight * np.sin(kx)], axis=1) / w  # [w, (p, k)]
    mix = np.eye(channels) if color is None else np.asarray(color, np.float64)
    big = np.einsum("wj,dc->jcwd", x, mix).reshape(2 * k * channels, w * channels)
    return y.astype(np.float32), big.astype(np.float32)


def _constant_matmul(matrix: np.ndarray, left: bool) -> Callable[[Any], Any]:
    """``t -> matrix @ t`` (``left``) or ``t -> t @ matrix``, with the gradient multiplying by a
    stored transpose: TF's gradient would multiply by ``matrix`` with a transpose flag,
    which oneDNN runs ~5x slower than a plain matmul at these sizes."""
    tf = require_tensorflow()
    m, m_t = (
        tf.constant(matrix, tf.float32),
        tf.constant(np.ascontiguousarray(matrix.T), tf.float32),
    )

    @tf.custom_gradient
    def product(t):
        if left:
            return m @ t, lambda g: m_t @ g
        return t @ m, lambda g: g @ m_t

    return product


def fft_image(
    shape: Sequence[int],
    sd: float | None = None,
    decay_power: float = 1.0,
    seed: int | None = None,
    color: np.ndarray | None = None,
    method: str = "auto",
) -> ImageParam:
    """Spectral parameterization (Lucid): optimize rFFT coefficients with ``1/f`` scaling.

    Coefficients start ``N(0, sd)`` (``sd`` 0.01), are multiplied by
    ``sqrt(H*W) / max(|f|, 1/max(H, W)) ** decay_power``, inverse-FFT'd and divided by 4.
    Unbounded like :func:`pixel_image`; pass through :func:`to_valid_rgb`.
    ``color``: an optional ``(C, C)`` matrix mixing the channels (``image @ color.T``, e.g.
    :data:`COLOR_CORRELATION_NORMALIZED`), folded into the inverse transform for free.
    The variable is ``(2H, B, K, C)`` with ``K = W // 2 + 1``: the real parts of the
    ``H x K`` rFFT coefficients, then their imaginary parts (see :func:`irfft2d_matrices`).
    ``method``: ``"matmul"`` (dense DFT matrices), ``"fft"`` (``tf.signal.irfft2d``) or
    ``"auto"``: matmul up to :data:`MATMUL_MAX_SIZE` pixels a side. Both give the same image
    for the same variable (to float rounding).
    """
    tf = require_tensorflow()
    b, h, w, c = _check_shape(shape)
    if method not in SPECTRUM_METHODS:
        raise ValueError(f"method must be one of {SPECTRUM_METHODS}, got {method!r}.")
    if method == "auto":
        method = "matmul" if max(h, w) <= MATMUL_MAX_SIZE else "fft"
    if color is not None and np.shape(color) != (c, c):
        raise ImageError(
            f"color must be a ({c}, {c}) matrix for {c} channels, got {np.shape(color)}."
        )
    sd = DEFAULT_SD if sd is None else float(sd)
    freqs = rfft2d_freqs(h, w)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(h, w)) ** float(decay_power)
    scale = (scale * np.sqrt(h * w)).astype(np.float32)
    k = freqs.shape[1]
    var_shape = (2 * h, b, k, c)

    def init(rng: np.random.Generator) -> list[np.ndarray]:
        return [rng.normal(0.0, sd, var_shape).astype(np.float32)]

    var = tf.Variable(init(np.random.default_rng(seed))[0], name="nbviz_spectrum")
    desc = f"fft(sd={sd}, decay_power={decay_power}, method={method!r})"
    if method == "fft":
        fft_image = _irfft2d_image(var, scale, (b, h, w, c), color)
        return ImageParam([var], fft_image, (b, h, w, c), desc, init, batch_axes=(1,))
    y, x = irfft2d_matrices(h, w, color, c)
    scale_t = tf.constant(np.concatenate([scale, scale], axis=0)[:, None, :, None])
    along_y, along_x = _constant_matmul(y, left=True), _constant_matmul(x / 4.0, left=False)

    def image_fn():
        rows = along_y(tf.reshape(var * scale_t, [2 * h, b * k * c]))  # inverse DFT along y
        if b > 1:  # rows are (h, re/im), columns (b, k, c): bring b next to h
            rows = tf.transpose(tf.reshape(rows, [h, 2, b, k * c]), (0, 2, 1, 3))
        img = along_x(tf.reshape(rows, [h * b, 2 * k * c]))  # along x, colours mixed
        img = tf.reshape(img, [h, b, w, c])
        return tf.transpose(img, (1, 0, 2, 3)) if b > 1 else tf.reshape(img, [1, h, w, c])

    return ImageParam([var], image_fn, (b, h, w, c), desc, init, batch_axes=(1,))


def _irfft2d_image(
    var: Any, scale: np.ndarray, shape: tuple[int, int, int, int], color: np.ndarray | None
) -> Callable[[], Any]:
    """The image of the ``(2H, B, K, C)`` spectrum ``var`` by ``tf.signal.irfft2d`` (large
    sizes: ``n^2 log n`` instead of the dense matrices' ``n^3``)."""
    tf = require_tensorflow()
    b, h, w, c = shape
    scale_t = tf.constant(scale[None, None])  # (1, 1, H, K)
    mix = None if color is None else tf.constant(np.asarray(color, np.float32).T)

    def image_fn():
        spec = tf.transpose(var, (1, 3, 0, 2))  # (B, C, 2H, K)
        spec = tf.complex(spec[:, :, :h] * scale_t, spec[:, :, h:] * scale_t)
        img = tf.signal.irfft2d(spec, fft_length=[h, w]) / 4.0  # (B, C, H, W)
        img = tf.transpose(img, (0, 2, 3, 1))
        if mix is not None:
            img = tf.reshape(tf.reshape(img, [-1, c]) @ mix, [b, h, w, c])
        return img

    return image_fn


def step_bytes(h: int, w: int, batch: int = 1, channels: int = 3) -> int:
    """Rough memory of optimizing one ``batch x h x w x channels`` spectral image with Adam:
    the spectrum, its gradient and two Adam moments, the image and its intermediates, and
    for the dense-matrix way (sides up to :data:`MATMUL_MAX_SIZE`) the DFT matrices."""
    k = w // 2 + 1
    spectrum = 2 * h * batch * k * channels
    pixels = batch * h * w * channels
    floats = 4 * spectrum + 6 * pixels
    if max(h, w) <= MATMUL_MAX_SIZE:
        floats += 2 * (2 * h) ** 2 + 2 * (2 * k * channels) * (w * channels)
    return 4 * int(floats)


def warn_if_oversized(
    hw: tuple[int, int],
    model_hw: tuple[int, int] | None,
    batch: int,
    channels: int,
    stacklevel: int = 3,
) -> None:
    """A :class:`~nbviz.errors.CostWarning` when a render of ``hw`` is far larger than the
    model's fixed input ``model_hw``: the model only sees it resampled to its own size every
    step, so the extra pixels add cost and memory but no detail the model can judge.
    ``stacklevel`` as in :func:`warnings.warn` (3: the caller of this function's caller)."""
    if model_hw is None:
        return
    ratio = (hw[0] * hw[1]) / float(model_hw[0] * model_hw[1])
    if max(hw[0] / model_hw[0], hw[1] / model_hw[1]) <= OVERSIZE_FACTOR:
        return
    need = step_bytes(hw[0], hw[1], batch, channels)
    base = step_bytes(model_hw[0], model_hw[1], batch, channels)
    warnings.warn(
        CostWarning(
            f"Render size {hw[0]}x{hw[1]} is {ratio:,.0f}x the pixels of the model's "
            f"{model_hw[0]}x{model_hw[1]} input, which sees it resampled to "
            f"{model_hw[0]}x{model_hw[1]} every step: about {need / 2**30:.2f} GiB for the image "
            f"and its optimizer state (vs {base / 2**20:.1f} MiB at the model's size) and "
            f"roughly {ratio:,.0f}x the work per step of the image part, for detail the model "
            f"cannot see. Fix: size={max(model_hw)} (up to {OVERSIZE_FACTOR * max(model_hw)} for "
            "a finer picture), and enlarge the result for display."
        ),
        stacklevel=stacklevel,
    )


def _clip_straight_through(t):
    """Clip to [0, 1] in the forward pass but let gradients through (Lucid's L-inf constrain)."""
    tf = require_tensorflow()
    return t + tf.stop_gradient(tf.clip_by_value(t, 0.0, 1.0) - t)


def linear_decorrelate_color(t):
    """Map decorrelated colour coordinates (last axis, 3) to RGB with ImageNet's correlation."""
    tf = require_tensorflow()
    flat = tf.reshape(t, [-1, 3]) @ tf.constant(COLOR_CORRELATION_NORMALIZED.T)
    return tf.reshape(flat, tf.shape(t))


def _squash(t, sigmoid: bool, decorrelated: bool):
    """Into ``[0, 1]``: a sigmoid, or the colour mean (0.5 per channel without decorrelation)
    plus a straight-through clip."""
    tf = require_tensorflow()
    if sigmoid:
        return tf.nn.sigmoid(t)
    t = t + (tf.constant(COLOR_MEAN) if decorrelated else 0.5)
    return _clip_straight_through(t)


def to_valid_rgb(t, decorrelate: bool = True, sigmoid: bool = True):
    """Turn an unbounded ``(..., C)`` tensor into a valid image in ``[0, 1]``.

    ``decorrelate`` applies only to 3 channels (it needs the RGB correlation matrix).
    ``sigmoid=False`` adds the ImageNet colour mean (when decorrelating) and clips with a
    straight-through gradient instead.
    """
    channels = t.shape[-1]
    if decorrelate and channels != 3:
        raise ImageError(
            f"Colour decorrelation needs 3 channels, the image has {channels}. "
            "Fix: pass decorrelate=False (nbviz.optvis.param.image does this for you)."
        )
    if decorrelate:
        t = linear_decorrelate_color(t)
    return _squash(t, sigmoid, decorrelate)


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
    method: str = "auto",
) -> ImageParam:
    """A ready-to-optimize image of ``batch`` rows, ``h x w`` pixels, ``channels`` channels.

    Spectral (``fft``) and colour-decorrelated by default (Lucid's recipe). Decorrelation
    is skipped automatically unless ``channels == 3`` (grayscale models get one channel).
    ``image()`` of the result is in ``[0, 1]``. ``method``: how the spectrum becomes pixels
    (see :func:`fft_image`).
    """
    w = h if w is None else w
    shape = _check_shape((batch, h, w, channels))
    decorrelate = bool(decorrelate and shape[-1] == 3)
    if fft:  # the colour mixing goes into the spectrum: one small matmul, no extra reshapes
        color = COLOR_CORRELATION_NORMALIZED if decorrelate else None
        base = fft_image(
            shape, sd=sd, decay_power=decay_power, seed=seed, color=color, method=method
        )
    else:
        base = pixel_image(shape, sd=sd, seed=seed)
    mix_pixels = decorrelate and not fft

    def image_fn():
        t = base.image()
        return _squash(linear_decorrelate_color(t) if mix_pixels else t, sigmoid, decorrelate)

    desc = f"{base.description}, decorrelate={decorrelate}, sigmoid={sigmoid}"
    return ImageParam(base.variables, image_fn, shape, desc, base._init, base.batch_axes)


DEFAULT_SIZE = 128  # render size for models whose input size is not fixed


def for_model(
    param: ImageParam | None,
    size: int | Sequence[int] | None,
    batch: int,
    channels: int,
    model_hw: tuple[int, int] | None,
    **options: Any,
) -> ImageParam:
    """The parameterization of a render of ``batch`` rows for a model taking ``channels``
    channels at ``model_hw`` (``None``: any size): ``param`` checked against that, or a new
    :func:`image` of ``size`` (default: ``model_hw``, else :data:`DEFAULT_SIZE`) built with
    ``options`` (warns when far larger than the model's input)."""
    if param is None:
        hw = _as_hw(size, model_hw or (DEFAULT_SIZE, DEFAULT_SIZE))
        warn_if_oversized(hw, model_hw, batch, channels, stacklevel=4)  # at the Renderer call
        return image(hw[0], hw[1], batch=batch, channels=channels, **options)
    if param.shape[0] != batch or param.shape[3] != channels:
        raise ImageError(
            f"The image parameterization has shape {param.shape} but the render needs "
            f"{batch} rows of {channels} channels (the model's input). Fix: build it "
            f"with param.image(h, w, batch={batch}, channels={channels})."
        )
    return param


def _as_hw(size: int | Sequence[int] | None, default: tuple[int, int]) -> tuple[int, int]:
    if size is None:
        return default
    if isinstance(size, (int, np.integer)):
        hw: tuple[int, ...] = (int(size), int(size))
    else:
        hw = tuple(int(s) for s in size)
        if len(hw) != 2:
            raise ImageError(f"size is an int or (height, width), got {size!r}.")
    if min(hw) < 8:
        raise ImageError(f"Render size {hw} is too small; use at least 8x8 pixels (e.g. 64).")
    return hw[0], hw[1]
