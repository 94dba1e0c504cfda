"""Random image transforms applied inside the compiled render step (transformation robustness).

Lucid's preset (:data:`standard`) is, in order: pad 12 px with 0.5, jitter 8 px, random scale
from 0.90..1.10 (11 values), random rotation -10..10 degrees (0 drawn more often), jitter 4 px.

Every built-in transform is *affine*: it knows the 3x3 matrix mapping its output pixel
coordinates to its input ones. :func:`apply` multiplies the matrices of consecutive affine
transforms, adds the final fit to the model's input size (centre crop back to the rendered
size, then rescale), and resamples **once** with ``ImageProjectiveTransformV3`` (bilinear,
outside pixels take the pad value). That is one resampling per step instead of five, one
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
    """Base class: a random affine map of the canvas, fused with its neighbours by :func:`apply`.

    Subclasses say how many uniform random numbers per row they use (``n_random``) and
    build their ``(B, 3, 3)`` output-to-input matrix from them with a handful of ops (all
    transforms of a pipeline share one random draw per step).
    """

    fill: float | None = None  # a pad sets the value outside the image
    n_random: int = 0

    def out_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        """Canvas size after this transform, from the size before."""
        return hw

    def matrix(self, batch: int, hw: tuple[int, int], u: Any) -> Any:
        """Map from output (x, y, 1) to input pixel coordinates: a static ``(3, 3)`` numpy
        array, or a ``(batch, 3, 3)`` tensor built from ``u``, ``(batch, n_random)`` uniform
        numbers in ``[0, 1)``."""
        raise NotImplementedError

    def __call__(self, images: Any, rng: Any) -> Any:
        """Apply this transform alone (the canvas size changes as :meth:`out_size` says)."""
        return apply([self], images, rng, out_hw=None)


def _unit(i: int, j: int) -> np.ndarray:
    m = np.zeros((3, 3), np.float32)
    m[i, j] = 1.0
    return m


def _per_row(values: Any) -> Any:
    """(B,) -> (B, 1, 1), to scale constant (3, 3) matrices per row."""
    return values[:, None, None]


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

    def matrix(self, batch, hw, u):
        return np.eye(3, dtype=np.float32) - self.size * (_unit(0, 2) + _unit(1, 2))


@dataclass(frozen=True)
class Jitter(AffineTransform):
    """Random crop ``d`` pixels smaller (integer offsets 0..d, independent per row)."""

    d: int
    n_random = 2

    def out_size(self, hw):
        return hw[0] - self.d, hw[1] - self.d

    def matrix(self, batch, hw, u):
        tf = require_tensorflow()
        offsets = tf.floor(u * (self.d + 1))  # (B, 2): integer x, y offsets 0..d
        return (
            np.eye(3, dtype=np.float32)
            + _per_row(offsets[:, 0]) * _unit(0, 2)
            + _per_row(offsets[:, 1]) * _unit(1, 2)
        )


def _centre_parts(hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constants E0, Ec, Es with ``E0 + cos*Ec + sin*Es`` = rotation/zoom about the centre."""
    cy, cx = (hw[0] - 1) / 2.0, (hw[1] - 1) / 2.0
    e0 = np.array([[0, 0, cx], [0, 0, cy], [0, 0, 1]], np.float32)
    ec = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 0]], np.float32)
    es = np.array([[0, -1, cy], [1, 0, -cx], [0, 0, 0]], np.float32)
    return e0, ec, es


def _pick(values: tuple[float, ...], u: Any) -> Any:
    """One of ``values`` per row, uniformly, from uniform numbers ``u`` (B,)."""
    tf = require_tensorflow()
    index = tf.cast(tf.floor(u * len(values)), tf.int32)
    return tf.gather(tf.constant(values, tf.float32), index)


@dataclass(frozen=True)
class RandomScale(AffineTransform):
    """Zoom about the centre by a factor drawn from ``scales`` (canvas size unchanged)."""

    scales: tuple[float, ...]
    n_random = 1

    def matrix(self, batch, hw, u):
        inv = 1.0 / _pick(self.scales, u[:, 0])
        e0, ec, _ = _centre_parts(hw)
        return e0 + _per_row(inv) * ec


@dataclass(frozen=True)
class RandomRotate(AffineTransform):
    """Rotate about the centre by an angle (degrees) drawn from ``angles``."""

    angles: tuple[float, ...]
    n_random = 1

    def matrix(self, batch, hw, u):
        tf = require_tensorflow()
        a = _pick(self.angles, u[:, 0]) * (math.pi / 180.0)
        e0, ec, es = _centre_parts(hw)
        return e0 + _per_row(tf.cos(a)) * ec + _per_row(tf.sin(a)) * es


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


def _compose(a: Any, b: Any) -> Any:
    """``a @ b`` for static (3, 3) numpy and/or per-row (B, 3, 3) tensors."""
    tf = require_tensorflow()
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a @ b
    return tf.matmul(tf.cast(a, tf.float32), tf.cast(b, tf.float32))


def resample(images: Any, matrices: Any, out_hw: tuple[int, int], fill: float) -> Any:
    """Sample ``images`` (B, H, W, C) bilinearly at ``matrices @ (x, y, 1)`` per output pixel.

    Pixel centres sit at integer coordinates; outside pixels take ``fill``. ``matrices``:
    a static (3, 3) or per-row (B, 3, 3) affine output-to-input map. Uses
    ``ImageProjectiveTransformV3`` (the fastest of the options measured on CPU: 3x a
    gather-based sampler). Its registered gradient warps the incoming gradient back with the
    inverse map: not the exact adjoint of bilinear sampling (a few % off at fractional
    positions; exact for integer shifts), the same approximation Lucid's rotations used.
    """
    tf = require_tensorflow()
    b = int(images.shape[0])
    if isinstance(matrices, np.ndarray):
        flat = tf.constant(np.broadcast_to(matrices.reshape(9)[:8], (b, 8)))
    else:
        flat = tf.reshape(matrices, [b, 9])[:, :8]  # affine: the last entry is 1
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=flat,
        output_shape=tf.constant(out_hw, tf.int32),
        fill_value=tf.constant(fill, images.dtype),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def apply(
    transforms: Sequence[TransformLike],
    images: Any,
    rng: Any,
    out_hw: tuple[int, int] | None = None,
) -> Any:
    """Run ``transforms`` on ``(B, H, W, C)`` ``images`` in-graph.

    With ``out_hw`` the result is the centre ``H x W`` of the final canvas resized to
    ``out_hw`` (what the model needs); with ``None`` it is the final canvas itself.
    Consecutive affine transforms are resampled once; all their random numbers come from
    one draw of ``rng`` (a ``tf.random.Generator``).
    """
    tf = require_tensorflow()
    batch = int(images.shape[0])
    render_hw = (int(images.shape[1]), int(images.shape[2]))
    n_random = sum(t.n_random for t in transforms if isinstance(t, AffineTransform))
    u = rng.uniform([batch, n_random]) if n_random else None
    used = 0
    hw = render_hw
    fill = DEFAULT_FILL
    identity = np.eye(3, dtype=np.float32)
    pending: Any = identity  # composed map: output coordinates -> coordinates in x

    def flush(x, matrix, size):
        same = isinstance(matrix, np.ndarray) and np.array_equal(matrix, identity)
        if same and size == (int(x.shape[1]), int(x.shape[2])):
            return x
        return resample(x, matrix, size, fill)

    x = images
    for t in transforms:
        if isinstance(t, AffineTransform):
            if t.fill is not None:
                fill = float(t.fill)
            m = t.matrix(batch, hw, u[:, used : used + t.n_random] if t.n_random else None)
            used += t.n_random
            pending = _compose(pending, m)
            hw = t.out_size(hw)
            if min(hw) < 1:
                raise ValueError(
                    f"The transforms shrink a {render_hw[0]}x{render_hw[1]} image to nothing "
                    f"(canvas {hw}). Fix: render a larger image or use smaller jitter."
                )
        else:
            x = flush(x, pending, hw)
            pending = identity
            x = t(x, rng)
            hw = (int(x.shape[1]), int(x.shape[2]))
    if out_hw is None:
        return flush(x, pending, hw)
    out_hw = (int(out_hw[0]), int(out_hw[1]))
    untransformed = isinstance(pending, np.ndarray) and np.array_equal(pending, identity)
    if untransformed and hw == render_hw:
        # A plain resize: the same bilinear sampling, and an op XLA can compile.
        return x if hw == out_hw else tf.image.resize(x, out_hw, method="bilinear")
    pending = _compose(pending, _fit_matrix(hw, render_hw, out_hw))
    return flush(x, pending, out_hw)
