"""Random image transforms applied inside the compiled render step (transformation robustness).

Lucid's preset (:data:`standard`) is, in order: pad 12 px with 0.5, jitter 8 px, random scale
from 0.90..1.10 (11 values), random rotation -10..10 degrees (0 drawn more often), jitter 4 px.

Every built-in transform is *affine*: it knows the 3x3 matrix mapping its output pixel
coordinates to its input ones. :func:`apply` multiplies the matrices of consecutive affine
transforms, adds the final fit to the model's input size (centre crop back to the rendered
size, then rescale), and resamples **once** with a sparse bilinear matrix (outside pixels
take the pad value; its gradient is the exact adjoint). That is one resampling per step
instead of five, one interpolation instead of two, and static shapes for the model.
Randomness is per batch row and comes from a ``tf.random.Generator``, so a seeded run is
reproducible. :class:`FusedAffine` builds the matrices of many steps at once and
:class:`SamplingBuffer` keeps them ahead of the render loop, so a step costs one sparse
matmul forward and one backward.

A transform may also be any callable ``f(images, rng) -> images`` (graph code); the affine
ones around it are fused on each side.
"""

from __future__ import annotations

import functools
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


#: Lucid's random scales: 0.90, 0.92, ..., 1.10.
LUCID_SCALES: tuple[float, ...] = tuple(1 + (i - 5) / 50.0 for i in range(11))


def lucid(
    pad_size: int = 12,
    pad_value: float = DEFAULT_FILL,
    jitter1: int = 8,
    scales: Sequence[float] = LUCID_SCALES,
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


def _fit_matrix(
    canvas: tuple[int, int], render: tuple[int, int], out: tuple[int, int]
) -> np.ndarray:
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


def _chain(pending: Any, t: AffineTransform, rows: Any, hw: tuple[int, int], u: Any, used: int):
    """Compose affine ``t`` (canvas ``hw`` before it) after the map ``pending``, taking its
    random numbers from column ``used`` of ``u``: ``(map, canvas after, columns used)``."""
    m = t.matrix(rows, hw, u[:, used : used + t.n_random] if t.n_random else None)
    return _compose(pending, m), t.out_size(hw), used + t.n_random


def _flat(matrices: Any, rows: Any) -> Any:
    """``(rows, 6)`` affine parameters ``[a0 a1 a2 b0 b1 b2]`` from 3x3 output-to-input maps
    (static ``(3, 3)`` or per-row ``(rows, 3, 3)``): ``x_in = a0 x + a1 y + a2``, ``y_in``
    likewise."""
    tf = require_tensorflow()
    if isinstance(matrices, np.ndarray):
        return tf.broadcast_to(tf.constant(matrices.reshape(9)[:6]), tf.stack([rows, 6]))
    return tf.reshape(matrices, [-1, 9])[:, :6]


@dataclass(frozen=True)
class Sampling:
    """Bilinear resampling of a batch as a sparse matrix: ``out = S @ padded_images``.

    The images are padded by one pixel of the fill value, so neighbours outside the image
    (clipped to that border) read the fill: no masks. ``indices`` ``(steps, B * N_out * 4,
    2)`` (int32 row, column) and ``values`` ``(steps, B * N_out * 4)`` hold ``S``, four
    bilinear weights per output pixel, one slice per step. Built by
    :meth:`FusedAffine.sampling` for many steps at once; the gradient of a sparse-dense
    matmul is ``S^T @ grad``, the exact adjoint of bilinear sampling, in one op.
    """

    indices: Any
    values: Any

    def step(self, i: Any) -> Sampling:
        """The slice of step ``i`` (a view: slicing the first axis shares the buffer, where
        ``tf.gather`` would copy it)."""
        return Sampling(self.indices[i], self.values[i])


def sampling_matrix(
    params: Any, batch: int, in_hw: tuple[int, int], out_hw: tuple[int, int]
) -> Sampling:
    """The :class:`Sampling` of ``steps * batch`` affine maps (``params`` ``(steps * batch, 6)``
    from :func:`_flat`; row ``s * batch + b`` is image ``b`` of step ``s``).

    Pixel centres sit at integer coordinates, as in ``ImageProjectiveTransformV3``. Every
    op here works on whole ``(rows, N_out)`` arrays of one shape (TF's broadcasting binary
    ops are several times slower on CPU).
    """
    tf = require_tensorflow()
    (h, w), (oh, ow) = in_hw, out_hw
    pw = w + 2  # padded width
    n_out = oh * ow
    ys, xs = np.meshgrid(
        np.arange(oh, dtype=np.float32), np.arange(ow, dtype=np.float32), indexing="ij"
    )
    grid = tf.constant(np.stack([xs.ravel(), ys.ravel(), np.ones(n_out, np.float32)]))  # (3, N)
    coords = tf.reshape(params, [-1, 2, 3]) @ grid  # (R, 2, N): x_in, y_in of every output pixel
    # +1: coordinates in the padded image; clip: far outside reads the (fill) border.
    x = tf.clip_by_value(coords[:, 0] + 1.0, 0.0, w + 1.0)
    y = tf.clip_by_value(coords[:, 1] + 1.0, 0.0, h + 1.0)
    x0, y0 = tf.minimum(tf.floor(x), float(w)), tf.minimum(tf.floor(y), float(h))
    fx, fy = x - x0, y - y0
    gx, gy = 1.0 - fx, 1.0 - fy
    rows = tf.shape(params)[0]
    first = tf.cast(tf.range(rows) % batch * ((h + 2) * pw), tf.float32)[:, None]  # image offset
    top = y0 * pw + x0 + first  # index of the top-left neighbour, exact in float32
    cols = tf.cast(tf.stack([top, top + 1.0, top + pw, top + (pw + 1.0)], axis=-1), tf.int32)
    values = tf.stack([gx * gy, fx * gy, gx * fy, fx * fy], axis=-1)  # (R, N, 4)
    per_step = batch * n_out * 4
    out_rows = np.repeat(np.arange(batch * n_out, dtype=np.int32), 4)
    cols = tf.reshape(cols, [-1, per_step])
    out_rows = tf.broadcast_to(tf.constant(out_rows), tf.shape(cols))
    indices = tf.stack([out_rows, cols], axis=-1)
    return Sampling(indices, tf.reshape(values, [-1, per_step]))


def warp(images: Any, sampling: Sampling, out_hw: tuple[int, int], fill: float) -> Any:
    """Resample ``(B, H, W, C)`` ``images`` with one step's :class:`Sampling`."""
    tf = require_tensorflow()
    b, h, w, c = (int(d) for d in images.shape)
    n_out = out_hw[0] * out_hw[1]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], constant_values=fill)
    out = tf.raw_ops.SparseTensorDenseMatMul(
        a_indices=sampling.indices,
        a_values=sampling.values,
        a_shape=tf.constant([b * n_out, b * (h + 2) * (w + 2)], tf.int64),
        b=tf.reshape(padded, [b * (h + 2) * (w + 2), c]),
    )
    return tf.reshape(out, [b, out_hw[0], out_hw[1], c])


def resample(images: Any, matrices: Any, out_hw: tuple[int, int], fill: float) -> Any:
    """Sample ``images`` (B, H, W, C) bilinearly at ``matrices @ (x, y, 1)`` per output pixel.

    Pixel centres sit at integer coordinates; outside pixels take ``fill``. ``matrices``:
    a static (3, 3) or per-row (B, 3, 3) affine output-to-input map. A sparse matrix with
    four weights per output pixel does the sampling: on CPU 3x faster than
    ``ImageProjectiveTransformV3`` forward and backward, and its gradient is the exact
    adjoint (TF's registered gradient of that op only warps back with the inverse map).
    """
    b = int(images.shape[0])
    in_hw = (int(images.shape[1]), int(images.shape[2]))
    out = (int(out_hw[0]), int(out_hw[1]))
    sampling = sampling_matrix(_flat(matrices, b), b, in_hw, out)
    return warp(images, sampling.step(0), out, fill)


@dataclass(frozen=True)
class FusedAffine:
    """A pipeline of affine transforms reduced to one bilinear resampling per image.

    :meth:`sampling` draws the random maps of many steps and builds their sampling matrices
    in one vectorized pass (compiled with XLA); :meth:`warp` applies one step's. The render
    loop keeps them ahead in a :class:`SamplingBuffer`, so a step costs one sparse matmul
    forward and one backward and nothing else.
    """

    transforms: tuple[AffineTransform, ...]
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    fill: float
    canvas_hw: tuple[int, int]

    @property
    def n_random(self) -> int:
        return sum(t.n_random for t in self.transforms)

    def entries_per_step(self, batch: int) -> int:
        """Sparse entries one step of ``batch`` images needs (memory: 12 bytes each)."""
        return batch * self.out_hw[0] * self.out_hw[1] * 4

    def draw(self, u: Any) -> Any:
        """Output-to-input maps ``(rows, 3, 3)`` (or one static ``(3, 3)``) from uniform
        numbers ``u`` ``(rows, n_random)``."""
        tf = require_tensorflow()
        rows = tf.shape(u)[0]
        used = 0
        hw = self.in_hw
        m: Any = np.eye(3, dtype=np.float32)
        for t in self.transforms:
            m, hw, used = _chain(m, t, rows, hw, u, used)
        return _compose(m, _fit_matrix(self.canvas_hw, self.in_hw, self.out_hw))

    def sampling(self, rng: Any, steps: Any, batch: int) -> Sampling:
        """Random maps and sampling matrices of ``steps`` steps of ``batch`` images, built by
        an XLA-compiled function (see :func:`_sampling_builder`)."""
        tf = require_tensorflow()
        u = rng.uniform(tf.stack([steps * batch, self.n_random]))
        return Sampling(*_sampling_builder(self, batch)(u))

    def warp(self, images: Any, sampling: Sampling) -> Any:
        """Resample ``images`` with one step's :class:`Sampling` to ``out_hw``."""
        return warp(images, sampling, self.out_hw, self.fill)


class SamplingBuffer:
    """The sampling matrices of the next steps, built ahead ``capacity`` steps at a time.

    A render call of ``n`` steps takes the next ``n``; when fewer are left, one compiled
    call builds ``capacity`` new random steps. The build's fixed cost is spread over many
    steps however often frames are fetched (a widget fetches every 4 steps), and each
    step's random transform does not depend on how a run is split into calls.
    Memory: ``capacity * fused.entries_per_step(batch) * 12`` bytes, held by the renderer.
    """

    def __init__(self, fused: FusedAffine, batch: int, capacity: int):
        tf = require_tensorflow()
        entries = fused.entries_per_step(batch)
        self.fused, self.batch, self.capacity = fused, int(batch), int(capacity)
        self._indices = tf.Variable(
            tf.zeros([self.capacity, entries, 2], tf.int32),
            trainable=False,
            name="nbviz_sampling_indices",
        )
        self._values = tf.Variable(
            tf.zeros([self.capacity, entries]), trainable=False, name="nbviz_sampling_values"
        )
        self._next = tf.Variable(self.capacity, trainable=False, name="nbviz_sampling_next")

    def clear(self) -> None:
        """Forget the steps built ahead (the next call builds new ones from the generator)."""
        self._next.assign(self.capacity)

    def take(self, rng: Any, n: Any) -> tuple[Any, Sampling]:
        """``(first, sampling)``: steps ``first .. first + n - 1`` of ``sampling`` are the next
        ``n`` (graph code; ``n <= capacity``; refills from ``rng`` when needed)."""
        tf = require_tensorflow()

        def refill():
            s = self.fused.sampling(rng, self.capacity, self.batch)
            with tf.control_dependencies(
                [self._indices.assign(s.indices), self._values.assign(s.values)]
            ):
                return tf.constant(0)

        first = tf.cond(self._next + n > self.capacity, refill, lambda: tf.identity(self._next))
        with tf.control_dependencies([self._next.assign(first + n)]):
            return first, Sampling(self._indices.read_value(), self._values.read_value())


def _sampling_builder(fused: FusedAffine, batch: int) -> Callable[[Any], tuple[Any, Any]]:
    """``u -> (indices, values)`` of :meth:`FusedAffine.sampling`, compiled with XLA.

    The build is some 30 elementwise passes over every pixel of every step; XLA fuses them
    into a few loops, 5x faster than TF's kernels on CPU (it was most of the transforms'
    cost per step). Cached per transforms and batch, so renderers share it and each build
    size compiles once per process (a custom transform that is not hashable gets its own).
    """
    try:
        return _shared_sampling_builder(fused, batch)
    except TypeError:
        return _new_sampling_builder(fused, batch)


def _new_sampling_builder(fused: FusedAffine, batch: int) -> Callable[[Any], tuple[Any, Any]]:
    tf = require_tensorflow()

    def build(u):
        rows = tf.shape(u)[0]
        s = sampling_matrix(_flat(fused.draw(u), rows), batch, fused.in_hw, fused.out_hw)
        return s.indices, s.values

    return tf.function(build, jit_compile=True, autograph=False)


_shared_sampling_builder = functools.lru_cache(maxsize=64)(_new_sampling_builder)


def fuse(
    transforms: Sequence[TransformLike], in_hw: tuple[int, int], out_hw: tuple[int, int]
) -> FusedAffine | None:
    """The :class:`FusedAffine` of an all-affine pipeline (``None`` if a custom callable is
    in it, or there is nothing to do). Raises if the transforms shrink the image to nothing."""
    if not transforms or not all(isinstance(t, AffineTransform) for t in transforms):
        return None
    hw, fill = (int(in_hw[0]), int(in_hw[1])), DEFAULT_FILL
    for t in transforms:
        assert isinstance(t, AffineTransform)  # checked above
        fill = float(t.fill) if t.fill is not None else fill
        hw = t.out_size(hw)
        _check_canvas(hw, in_hw)
    return FusedAffine(tuple(transforms), tuple(in_hw), tuple(out_hw), fill, hw)  # type: ignore[arg-type]


def _check_canvas(hw: tuple[int, int], render_hw: tuple[int, int]) -> None:
    if min(hw) < 1:
        raise ValueError(
            f"The transforms shrink a {render_hw[0]}x{render_hw[1]} image to nothing "
            f"(canvas {hw}). Fix: render a larger image or use smaller jitter."
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
            pending, hw, used = _chain(pending, t, batch, hw, u, used)
            _check_canvas(hw, render_hw)
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
