"""Objectives for feature visualization: what gradient ascent maximizes, one value per batch row.

The public module of objectives, shaped like Lucid's: lower-case constructors
(:func:`channel`, :func:`neuron`, :func:`class_logit`, :func:`direction`,
:func:`diversity`, the penalties :func:`total_variation`, :func:`l1`, :func:`l2`, and
:func:`from_function` for your own), composing like numbers --
``channel("conv3", 5) - 1e-3 * total_variation()``.

The algebra (:class:`Objective`, :class:`Context`, sums and weights) and the unit
objectives live in :mod:`~nbviz.optvis.objective_core`; what may be read from a model
(:class:`LayerTable`, activation detection) in :mod:`~nbviz.optvis.introspection`. Both
are re-exported here, so ``from nbviz.optvis.objectives import LayerTable, Channel`` keeps
working.

Shorthand: ``as_objective("conv3:12")`` is ``channel("conv3", 12)``; ``"conv3:1,4,7"`` gives
three rows; on a 2-D layer (``"logits:3"``) the same unit objective reads one logit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._tf import require_tensorflow
from ..errors import ChannelError, LayerError

# Re-exports (the names' homes are .introspection and .objective_core).
from .introspection import ELEMENTWISE_ACTIVATIONS as ELEMENTWISE_ACTIVATIONS
from .introspection import LayerTable as LayerTable
from .introspection import activation_name as activation_name
from .introspection import check_float_input as check_float_input
from .introspection import check_image_model as check_image_model
from .introspection import linear_part_supported as linear_part_supported
from .introspection import preactivation_supported as preactivation_supported
from .introspection import renderable_layers as renderable_layers
from .introspection import unit_slicing_supported as unit_slicing_supported
from .objective_core import Channel as Channel
from .objective_core import ClassLogit as ClassLogit
from .objective_core import Context as Context
from .objective_core import IndexLike as IndexLike
from .objective_core import Neuron as Neuron
from .objective_core import Objective as Objective
from .objective_core import Scaled as Scaled
from .objective_core import Sum as Sum
from .objective_core import UnitObjective as UnitObjective
from .objective_core import as_objective as as_objective


# --------------------------------------------------------------------------------------------
# Other objectives
# --------------------------------------------------------------------------------------------
class Direction(Objective):
    """Mean over space of the dot product of the activation with a direction vector.

    ``vector`` is ``(C,)`` (all rows) or ``(B, C)`` (one per row); :meth:`set_vector` changes
    it without retracing.
    """

    def __init__(self, layer: str, vector: Any) -> None:
        tf = require_tensorflow()
        self.layer = layer
        vec = _as_vectors(vector)
        self._shape = vec.shape
        self.vector = tf.Variable(vec, trainable=False, shape=tf.TensorShape([None, vec.shape[1]]))

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"direction({self.layer!r}, <vector {self._shape}>)"

    @property
    def layers(self) -> frozenset[str]:
        return frozenset([self.layer])

    @property
    def rows(self) -> int | None:
        n = int(self._shape[0])
        return n if n > 1 else None

    def set_vector(self, vector: Any) -> None:
        """Change the direction (same channel count; one vector or one per row)."""
        vec = _as_vectors(vector)
        if vec.shape[1] != self._shape[1]:
            raise ChannelError(f"The direction has {self._shape[1]} channels; got {vec.shape[1]}.")
        if vec.shape[0] not in (1, self._shape[0]) and self._shape[0] != 1:
            raise ChannelError(f"The direction has {self._shape[0]} rows; got {vec.shape[0]}.")
        self._shape = vec.shape
        self.vector.assign(vec)

    def check(self, table: LayerTable) -> None:
        shape = table.output_shape(self.layer)
        if int(shape[-1]) != int(self._shape[1]):
            raise ChannelError(
                f"direction vector has {self._shape[1]} entries but layer {self.layer!r} "
                f"has {shape[-1]} channels. Fix: pass a vector of length {shape[-1]}."
            )

    def value(self, ctx: Context) -> Any:
        tf = require_tensorflow()
        acts = tf.cast(ctx(self.layer), tf.float32)
        vec = tf.broadcast_to(self.vector, [ctx.batch, int(self._shape[1])])
        acts = tf.reshape(acts, [ctx.batch, -1, acts.shape[-1]])
        return tf.reduce_mean(tf.einsum("bnc,bc->bn", acts, vec), axis=1)


def _as_vectors(vector: Any) -> np.ndarray:
    vec = np.asarray(vector, dtype=np.float32)
    if vec.ndim == 1:
        vec = vec[None]
    if vec.ndim != 2 or vec.shape[1] == 0:
        raise ChannelError(
            f"A direction is a vector (C,) or one per row (B, C); got shape {vec.shape}."
        )
    return vec


class Diversity(Objective):
    """Lucid's diversity: each row is pushed away from the others' Gram-matrix style.

    Row ``b`` scores ``-sum_{j != b} <G_b, G_j> / B`` with ``G`` the L2-normalized Gram
    matrix of the layer's channels; summed over rows it equals Lucid's objective.
    """

    def __init__(self, layer: str) -> None:
        self.layer = layer

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"diversity({self.layer!r})"

    @property
    def layers(self) -> frozenset[str]:
        return frozenset([self.layer])

    def check(self, table: LayerTable) -> None:
        shape = table.output_shape(self.layer)
        if len(shape) != 4:
            raise LayerError(
                f"diversity() compares spatial feature maps; {self.layer!r} outputs {shape}. "
                "Fix: use a convolutional layer."
            )

    def value(self, ctx: Context) -> Any:
        tf = require_tensorflow()
        acts = tf.cast(ctx(self.layer), tf.float32)
        b, c = ctx.batch, int(acts.shape[-1])
        flat = tf.reshape(acts, [b, -1, c])
        grams = tf.matmul(flat, flat, transpose_a=True)
        grams = tf.reshape(grams, [b, c * c])
        grams = tf.math.l2_normalize(grams, axis=1, epsilon=1e-10)
        sim = tf.matmul(grams, grams, transpose_b=True)
        return -(tf.reduce_sum(sim, axis=1) - tf.linalg.diag_part(sim)) / float(b)


class _ImagePenalty(Objective):
    """Penalties on the image (or on a layer): positive numbers to *subtract*."""

    def __init__(self, layer: str | None = None) -> None:
        self.layer = layer

    @property
    def layers(self) -> frozenset[str]:
        return frozenset([self.layer]) if self.layer else frozenset()

    def check(self, table: LayerTable) -> None:
        if self.layer:
            table.output_shape(self.layer)

    def _target(self, ctx: Context) -> Any:
        tf = require_tensorflow()
        t = ctx.image if self.layer is None else ctx(self.layer)
        return tf.reshape(tf.cast(t, tf.float32), [ctx.batch, -1])


class TotalVariation(_ImagePenalty):
    """Sum of absolute differences between neighbouring pixels, per row (subtract it)."""

    def __init__(self) -> None:
        super().__init__(None)

    name = "total_variation()"

    def value(self, ctx: Context) -> Any:
        tf = require_tensorflow()
        return tf.image.total_variation(ctx.image)


class L1(_ImagePenalty):
    """``sum |x - constant|`` per row, of the image or of ``layer`` (subtract it)."""

    def __init__(self, constant: float = 0.0, layer: str | None = None) -> None:
        super().__init__(layer)
        self.constant = float(constant)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"l1({self.constant:g}{'' if self.layer is None else f', {self.layer!r}'})"

    def value(self, ctx: Context) -> Any:
        tf = require_tensorflow()
        return tf.reduce_sum(tf.abs(self._target(ctx) - self.constant), axis=1)


class L2(_ImagePenalty):
    """``sqrt(eps + sum (x - constant)^2)`` per row, of the image or of ``layer`` (subtract it)."""

    def __init__(self, constant: float = 0.0, layer: str | None = None, epsilon: float = 1e-6):
        super().__init__(layer)
        self.constant = float(constant)
        self.epsilon = float(epsilon)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"l2({self.constant:g}{'' if self.layer is None else f', {self.layer!r}'})"

    def value(self, ctx: Context) -> Any:
        tf = require_tensorflow()
        d = self._target(ctx) - self.constant
        return tf.sqrt(self.epsilon + tf.reduce_sum(d * d, axis=1))


class FunctionObjective(Objective):
    """An objective written as a function of the context (see :func:`from_function`)."""

    def __init__(self, fn: Callable[[Context], Any], layers: Sequence[str], name: str) -> None:
        if not callable(fn):
            raise TypeError(f"from_function needs a callable, got {type(fn).__name__}.")
        if isinstance(layers, str):
            layers = [layers]
        self.fn = fn
        self._layers = frozenset(layers)
        self.name = name

    @property
    def layers(self) -> frozenset[str]:
        return self._layers

    def check(self, table: LayerTable) -> None:
        for layer in sorted(self._layers):
            table.info(layer)  # a LayerError listing the valid names when unknown

    def value(self, ctx: Context) -> Any:
        tf = require_tensorflow()
        v = tf.cast(tf.convert_to_tensor(self.fn(ctx)), tf.float32)
        if v.shape.rank == 0:  # one number for the whole batch: each row gets its share
            return tf.fill([ctx.batch], v / ctx.batch)
        if v.shape.rank != 1 or (v.shape[0] is not None and v.shape[0] != ctx.batch):
            raise ValueError(
                f"Objective {self.name!r} returned shape {tuple(v.shape)}; an objective gives "
                f"one score per batch row, shape ({ctx.batch},), or one number. Fix: reduce "
                "over every axis but the first, e.g. tf.reduce_mean(t, axis=[1, 2, 3])."
            )
        return v


# --------------------------------------------------------------------------------------------
# Public constructors (Lucid-style lower-case names)
# --------------------------------------------------------------------------------------------
def from_function(
    fn: Callable[[Context], Any], layers: Sequence[str] = (), name: str | None = None
) -> FunctionObjective:
    """An objective from a function, like Lucid's ``wrap_objective``.

    ``fn(T)`` gets the :class:`Context`: ``T("conv3")`` is that layer's activation for the
    transformed batch (``(B, H, W, C)``), ``T.image`` the image in [0, 1] before transforms.
    It returns one score per row, ``(B,)`` (or one number, shared by the rows). ``layers``
    names every layer ``fn`` reads (checked against the model before anything is traced).
    The result composes with ``+``, ``-`` and ``*`` like the built-in objectives::

        stripes = from_function(lambda T: tf.reduce_mean(T("conv2")[..., 3] ** 2, [1, 2]),
                                layers=["conv2"], name="energy(conv2:3)")
        Renderer(model, stripes - 1e-3 * total_variation())
    """
    return FunctionObjective(fn, layers, name or str(getattr(fn, "__name__", "function")))


def channel(layer: str, index: IndexLike, crop: int = 0) -> Channel:
    """Mean of channel ``index`` of ``layer`` over space; a list of indices gives one row each."""
    return Channel(layer, index, crop=crop)


def neuron(layer: str, index: IndexLike, x: int | None = None, y: int | None = None) -> Neuron:
    """Channel ``index`` of ``layer`` at one position (default: the centre)."""
    return Neuron(layer, index, x=x, y=y)


def class_logit(layer: str, index: IndexLike) -> ClassLogit:
    """Class score ``index`` of a (batch, classes) layer before softmax (e.g. ``"logits"``)."""
    return ClassLogit(layer, index)


def direction(layer: str, vector: Any) -> Direction:
    """Activation along ``vector`` in channel space (``(C,)`` or ``(B, C)``)."""
    return Direction(layer, vector)


def diversity(layer: str) -> Diversity:
    """Push the rows of a batch apart (add with a weight, e.g. ``+ 1e2 * diversity(...)``)."""
    return Diversity(layer)


def total_variation() -> TotalVariation:
    """Total variation of the image per row; subtract a small multiple to smooth."""
    return TotalVariation()


def l1(constant: float = 0.0, layer: str | None = None) -> L1:
    """L1 distance of the image (or ``layer``) from ``constant``; subtract to penalize."""
    return L1(constant, layer)


def l2(constant: float = 0.0, layer: str | None = None, epsilon: float = 1e-6) -> L2:
    """L2 distance of the image (or ``layer``) from ``constant``; subtract to penalize."""
    return L2(constant, layer, epsilon)
