"""Random image transforms applied inside the compiled render step (transformation robustness).

Lucid's preset (:data:`standard`) is, in order: pad 12 px with 0.5, jitter 8 px, random scale
from 0.90..1.10 (11 values), random rotation -10..10 degrees (0 drawn more often), jitter 4 px.

Every built-in transform is *affine*: it knows the 3x3 matrix mapping its output pixel
coordinates to its input ones. :func:`apply` multiplies the matrices of consecutive affine
transforms, adds the final fit to the model's input size (centre crop back to the rendered
size, then rescale), and resamples **once** with ``ImageProjectiveTransformV3`` (bilinear,
outside pixels take the pad value). That is one cheap op per step instead of five, one
interpolation instead of two, and static shapes for the model. Randomness is per batch row
and comes from a ``tf.random.Generator``, so a seeded run is reproducible.

A transform may also be any callable ``f(images, rng) -> images`` (graph code); the affine
ones around it are fused on each side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._tf import require_tensorflow

DEFAULT_FILL = 0.5


class AffineTransform:
    """Base class: a random affine map of the canvas, fused with its neighbours by :func:`apply`."""

    fill: float | None = None  # a pad sets the value outside the image

    def out_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        """Canvas size after this transform, from the size before."""
        return hw

    def matrix(self, batch: int, hw: tuple[int, int], rng: Any) -> Any:
        """``(batch, 3, 3)`` float32 map from output (x, y, 1) to input pixel coordinates."""
        raise NotImplementedError

    def __call__(self, images: Any, rng: Any) -> Any:
        """Apply this transform alone (the canvas size changes as :meth:`out_size` says)."""
        return apply([self], images, rng, out_hw=None)


def _translation(batch: int, tx: Any, ty: Any) -> Any:
    tf = require_tensorflow()
    one, zero = tf.ones([batch]), tf.zeros([batch])
    tx = tf.broadcast_to(tf.cast(tx, tf.float32), [batch])
    ty = tf.broadcast_to(tf.cast(ty, tf.float32), [batch])
    rows = [[one, zero, tx], [zero, one, ty], [zero, zero, one]]
    return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=1)


def _about_centre(linear: Any, hw: tuple[int, int]) -> Any:
    """Homogeneous matrices applying the (B, 2, 2) ``linear`` map about the canvas centre."""
    tf = require_tensorflow()
    cy, cx = (hw[0] - 1) / 2.0, (hw[1] - 1) / 2.0
    centre = tf.constant([cx, cy], tf.float32)
    offset = centre - tf.linalg.matvec(linear, centre)  # x_in = A (x_out - c) + c
    top = tf.concat([linear, offset[..., None]], axis=-1)  # (B, 2, 3)
    bottom = tf.broadcast_to(tf.constant([[0.0, 0.0, 1.0]]), [tf.shape(linear)[0], 1, 3])
    return tf.concat([top, bottom], axis=1)


@dataclass(frozen=True)
class Pad(AffineTransform):
    """Grow the canvas by ``size`` pixels on every side, filled with ``value``."""

    size: int
    value: float = DEFAULT_FILL

    @property
    def fill(self) -> float:  # type: ignore[override]
        return self.value

    def out_size(self, hw):
        return hw[0] + 2 * self.size, hw[1] + 2 * self.size

    def matrix(self, batch, hw, rng):
        return _translation(batch, -float(self.size), -float(self.size))


@dataclass(frozen=True)
class Jitter(AffineTransform):
    """Random crop ``d`` pixels smaller (integer offsets 0..d, independent per row)."""

    d: int

    def out_size(self, hw):
        return hw[0] - self.d, hw[1] - self.d

    def matrix(self, batch, hw, rng):
        tf = require_tensorflow()
        offsets = rng.uniform([2, batch], minval=0, maxval=self.d + 1, dtype=tf.int32)
        return _translation(batch, offsets[0], offsets[1])


@dataclass(frozen=True)
class RandomScale(AffineTransform):
    """Zoom about the centre by a factor drawn from ``scales`` (canvas size unchanged)."""

    scales: tuple[float, ...]

    def matrix(self, batch, hw, rng):
        tf = require_tensorflow()
        s = tf.gather(tf.constant(self.scales, tf.float32), _choice(rng, batch, len(self.scales)))
        inv = 1.0 / s
        zero = tf.zeros_like(inv)
        linear = tf.reshape(tf.stack([inv, zero, zero, inv], axis=-1), [batch, 2, 2])
        return _about_centre(linear, hw)


@dataclass(frozen=True)
class RandomRotate(AffineTransform):
    """Rotate about the centre by an angle (degrees) drawn from ``angles``."""

    angles: tuple[float, ...]

    def matrix(self, batch, hw, rng):
        tf = require_tensorflow()
        deg = tf.gather(tf.constant(self.angles, tf.float32), _choice(rng, batch, len(self.angles)))
        a = deg * (math.pi / 180.0)
        c, s = tf.cos(a), tf.sin(a)
        linear = tf.reshape(tf.stack([c, -s, s, c], axis=-1), [batch, 2, 2])
        return _about_centre(linear, hw)


def _choice(rng: Any, batch: int, n: int) -> Any:
    tf = require_tensorflow()
    return rng.uniform([batch], minval=0, maxval=n, dtype=tf.int32)


def pad(size: int, value: float = DEFAULT_FILL) -> Pad:
    """Pad every side by ``size`` pixels of ``value`` (Lucid: 12, 0.5)."""
    return Pad(_non_negative_int(size, "pad size"), float(value))


def jitter(d: int) -> Jitter:
    """Random translation by cropping ``d`` pixels (Lucid: 8, then 4)."""
    return Jitter(_non_negative_int(d, "jitter"))


def random_scale(scales: Sequence[float]) -> RandomScale:
    """Random zoom by one of ``scales`` (Lucid: 0.90, 0.92, ..., 1.10)."""
    values = tuple(float(s) for s in scales)
    if not values or min(values) <= 0:
        raise ValueError(f"random_scale needs positive scale factors, got {list(scales)!r}.")
    return RandomScale(values)


def random_rotate(angles: Sequence[float]) -> RandomRotate:
    """Random rotation by one of ``angles`` in degrees (Lucid: -10..10, 0 more often)."""
    values = tuple(float(a) for a in angles)
    if not values:
        raise ValueError("random_rotate needs at least one angle in degrees.")
    return RandomRotate(values)


def _non_negative_int(value: int, what: str) -> int:
    if int(value) != value or value < 0:
        raise ValueError(f"{what} must be a non-negative integer number of pixels, got {value!r}.")
    return int(value)


def lucid(
    pad_size: int = 12,
    pad_value: float = DEFAULT_FILL,
    jitter1: int = 8,
    scales: Sequence[float] = tuple(1 + (i - 5) / 50.0 for i in range(11)),
    angles: Sequence[float] = tuple(range(-10, 11)) + (0,) * 5,
    jitter2: int = 4,
) -> list[AffineTransform]:
    """Lucid's ``standard_transforms`` with every number configurable."""
    return [
        pad(pad_size, pad_value),
        jitter(jitter1),
        random_scale(scales),
        random_rotate(angles),
        jitter(jitter2),
    ]


standard: list[AffineTransform] = lucid()
"""Lucid's default preset: pad 12 (0.5), jitter 8, scale 0.9..1.1, rotate -10..10 deg, jitter 4."""

none: list[AffineTransform] = []
"""No transforms (the seed article's bare gradient ascent)."""

PRESETS: dict[str, list] = {"standard": standard, "lucid": standard, "none": none}

TransformLike = AffineTransform | Callable[[Any, Any], Any]


def resolve(spec: str | Sequence[TransformLike] | None) -> list[TransformLike]:
    """A preset name (``"standard"``, ``"none"``), ``None`` (no transforms) or a list, as a list."""
    if spec is None:
        return []
    if isinstance(spec, str):
        try:
            return list(PRESETS[spec])
        except KeyError:
            raise ValueError(
                f"Unknown transform preset {spec!r}. Use one of {sorted(PRESETS)} or a list of "
                "transforms, e.g. [transforms.jitter(4)]."
            ) from None
    items = list(spec)
    for t in items:
        if not callable(t):
            raise ValueError(
                f"{t!r} is not a transform. Use the functions of nbviz.optvis.transforms "
                "(pad, jitter, random_scale, random_rotate) or a callable f(images, rng)."
            )
    return items


def _fit_matrix(canvas: tuple[int, int], render: tuple[int, int], out: tuple[int, int]) -> np.ndarray:
    """Map ``out`` pixels to the centre ``render``-sized crop of ``canvas`` (pixel centres aligned)."""
    sy, sx = render[0] / out[0], render[1] / out[1]
    oy = (canvas[0] - render[0]) / 2.0 + 0.5 * sy - 0.5
    ox = (canvas[1] - render[1]) / 2.0 + 0.5 * sx - 0.5
    return np.array([[sx, 0.0, ox], [0.0, sy, oy], [0.0, 0.0, 1.0]], np.float32)


def apply(
    transforms: Sequence[TransformLike],
    images: Any,
    rng: Any,
    out_hw: tuple[int, int] | None = None,
) -> Any:
    """Run ``transforms`` on ``(B, H, W, C)`` ``images`` in-graph.

    With ``out_hw`` the result is the centre ``H x W`` of the final canvas resized to
    ``out_hw`` (what the model needs); with ``None`` it is the final canvas itself.
    Consecutive affine transforms are resampled once.
    """
    tf = require_tensorflow()
    batch = int(images.shape[0])
    render_hw = (int(images.shape[1]), int(images.shape[2]))
    hw = render_hw
    fill = DEFAULT_FILL
    pending: Any = None  # composed (B, 3, 3) map: output coordinates -> coordinates in x

    def flush(x, matrix, out_size):
        if matrix is None and out_size == tuple(int(s) for s in x.shape[1:3]):
            return x
        if matrix is None:
            matrix = tf.eye(3, batch_shape=[batch])
        flat = tf.reshape(matrix, [batch, 9])[:, :8] / matrix[:, 2:3, 2]
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x,
            transforms=flat,
            output_shape=tf.constant(out_size, tf.int32),
            fill_value=tf.constant(fill, x.dtype),
            interpolation="BILINEAR",
            fill_mode="CONSTANT",
        )

    x = images
    for t in transforms:
        if isinstance(t, AffineTransform):
            if t.fill is not None:
                fill = float(t.fill)
            m = t.matrix(batch, hw, rng)
            pending = m if pending is None else tf.matmul(pending, m)
            hw = t.out_size(hw)
            if min(hw) < 1:
                raise ValueError(
                    f"The transforms shrink a {render_hw[0]}x{render_hw[1]} image to nothing "
                    f"(canvas {hw}). Fix: render a larger image or use smaller jitter."
                )
        else:
            x = flush(x, pending, hw)
            pending = None
            x = t(x, rng)
            hw = (int(x.shape[1]), int(x.shape[2]))
    if out_hw is None:
        return flush(x, pending, hw)
    out_hw = (int(out_hw[0]), int(out_hw[1]))
    if pending is None and hw == render_hw == out_hw:
        return x
    fit = tf.broadcast_to(tf.constant(_fit_matrix(hw, render_hw, out_hw)), [batch, 3, 3])
    pending = fit if pending is None else tf.matmul(pending, fit)
    return flush(x, pending, out_hw)
