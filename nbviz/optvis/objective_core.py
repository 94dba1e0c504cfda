"""The objective algebra and the unit objectives: what every objective is built from.

An :class:`Objective` names the layers it needs and maps a :class:`Context` (the layers'
activations plus the image) to a ``(B,)`` float32 tensor: row ``b`` of the batch is scored
on its own, so many filters render side by side, one row each. Objectives compose like
numbers (:class:`Sum`, :class:`Scaled`), and the renderer maximizes the sum over rows.

Unit indices (channels, neurons, classes) and the weights of composite objectives live in
``tf.Variable``s that the compiled render step reads: changing them (``set_index``,
``set_weight``, ``Renderer.set_channels``) never retraces the step.

The algebra and the unit objectives share this module because composition accepts the
``"layer:unit"`` shorthand (``obj + "conv3:4"``): :func:`as_objective` builds a
:class:`Channel`, and ``Objective.__add__`` needs it. Users import all of this from
:mod:`nbviz.optvis.objectives`, which re-exports it next to the other objective kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .._tf import require_tensorflow
from ..errors import ChannelError, LayerError
from .introspection import LayerTable

IndexLike = int | Sequence[int] | np.ndarray


# --------------------------------------------------------------------------------------------
# Evaluation context
# --------------------------------------------------------------------------------------------
class Context:
    """What an objective sees inside the render step (graph code).

    ``ctx(layer)`` is the activation of ``layer`` for the transformed batch;
    ``ctx.units(layer, index)`` is channel ``index[b]`` of row ``b`` (shape ``(B, ...)``
    without the channel axis), which the renderer may compute *without* the other channels;
    ``ctx.image`` is the parameterized image in ``[0, 1]`` before transforms (for the
    penalties); ``ctx.batch`` is B. Tensors are built on first use only.
    """

    def __init__(
        self,
        image: Any,
        full: Callable[[str], Any],
        units: Callable[[str, Any], Any] | None = None,
    ) -> None:
        self.image = image
        self.batch = int(image.shape[0])
        self._full = full
        self._units = units
        self._cache: dict[str, Any] = {}

    def __call__(self, layer: str) -> Any:
        if layer not in self._cache:
            self._cache[layer] = self._full(layer)
        return self._cache[layer]

    def units(self, layer: str, index: Any) -> Any:
        """Per-row channel ``index`` (``(B,)`` int32) of ``layer``: ``(B, *spatial)``."""
        tf = require_tensorflow()
        if self._units is not None and layer not in self._cache:
            sliced = self._units(layer, index)
            if sliced is not None:
                return sliced
        acts = self(layer)
        return tf.gather(acts, index, axis=acts.shape.rank - 1, batch_dims=1)


# --------------------------------------------------------------------------------------------
# Base class and composition
# --------------------------------------------------------------------------------------------
class Objective:
    """Base class: a per-row score to maximize. Compose with ``+``, ``-``, ``*``, ``/``."""

    name: str = "objective"

    # -- to implement --------------------------------------------------------------------
    def value(self, ctx: Context) -> Any:
        """``(B,)`` float32 tensor of scores for the batch (graph code)."""
        raise NotImplementedError

    @property
    def layers(self) -> frozenset[str]:
        """Layer names whose activations :meth:`value` reads."""
        return frozenset()

    def check(self, table: LayerTable) -> None:
        """Validate against a model (raise nbviz errors with the fix)."""

    @property
    def rows(self) -> int | None:
        """Batch size this objective requires (``None``: any)."""
        return None

    @property
    def children(self) -> tuple[Objective, ...]:
        return ()

    # -- shared ----------------------------------------------------------------------------
    def __call__(self, ctx: Context) -> Any:
        return self.value(ctx)

    def leaves(self) -> Iterator[Objective]:
        """The non-composite objectives inside this one, depth first."""
        if not self.children:
            yield self
        for c in self.children:
            yield from c.leaves()

    def __repr__(self) -> str:
        return self.name

    def __add__(self, other: Any) -> Objective:
        if isinstance(other, (int, float)) and other == 0:
            return self
        return Sum([self, as_objective(other)])

    def __radd__(self, other: Any) -> Objective:
        if isinstance(other, (int, float)) and other == 0:  # sum([...]) starts at 0
            return self
        return Sum([as_objective(other), self])

    def __sub__(self, other: Any) -> Objective:
        return self + (-1.0) * as_objective(other)

    def __rsub__(self, other: Any) -> Objective:
        return as_objective(other) + (-1.0) * self

    def __neg__(self) -> Objective:
        return Scaled(self, -1.0)

    def __mul__(self, k: Any) -> Objective:
        if not isinstance(k, (int, float, np.floating, np.integer)):
            return NotImplemented
        return Scaled(self, float(k))

    __rmul__ = __mul__

    def __truediv__(self, k: Any) -> Objective:
        if not isinstance(k, (int, float, np.floating, np.integer)):
            return NotImplemented
        return Scaled(self, 1.0 / float(k))


class Sum(Objective):
    """Row-wise sum of objectives."""

    terms: list[Objective]

    def __init__(self, terms: Sequence[Objective]) -> None:
        flat: list[Objective] = []
        for t in terms:
            flat.extend(t.terms if isinstance(t, Sum) else [t])
        _merge_rows(flat)  # fail at composition time, not at render time
        self.terms = flat

    @property
    def name(self) -> str:  # type: ignore[override]
        text = ""
        for i, t in enumerate(self.terms):
            sign, body = "+", repr(t)
            if isinstance(t, Scaled) and float(t.weight.numpy()) < 0:
                w = -float(t.weight.numpy())
                inner = repr(t.objective)
                inner = f"({inner})" if isinstance(t.objective, Sum) else inner
                sign, body = "-", inner if w == 1 else f"{w:g} * {inner}"
            text += (f"{sign} " if sign == "-" else "") + body if i == 0 else f" {sign} {body}"
        return text

    @property
    def children(self) -> tuple[Objective, ...]:
        return tuple(self.terms)

    @property
    def layers(self) -> frozenset[str]:
        return frozenset().union(*(t.layers for t in self.terms))

    @property
    def rows(self) -> int | None:
        return _merge_rows(self.terms)

    def check(self, table: LayerTable) -> None:
        for t in self.terms:
            t.check(table)

    def value(self, ctx: Context) -> Any:
        tf = require_tensorflow()
        return tf.add_n([t.value(ctx) for t in self.terms])


class Scaled(Objective):
    """``weight * objective``; the weight is a ``tf.Variable`` (:meth:`set_weight`, no retrace)."""

    def __init__(self, objective: Objective, weight: float) -> None:
        tf = require_tensorflow()
        self.objective = objective
        self.weight = tf.Variable(float(weight), dtype=tf.float32, trainable=False)

    @property
    def name(self) -> str:  # type: ignore[override]
        inner = repr(self.objective)
        if isinstance(self.objective, Sum):
            inner = f"({inner})"
        return f"{float(self.weight.numpy()):g} * {inner}"

    def set_weight(self, weight: float) -> None:
        """Change the weight; the compiled step sees it at its next call."""
        self.weight.assign(float(weight))

    @property
    def children(self) -> tuple[Objective, ...]:
        return (self.objective,)

    @property
    def layers(self) -> frozenset[str]:
        return self.objective.layers

    @property
    def rows(self) -> int | None:
        return self.objective.rows

    def check(self, table: LayerTable) -> None:
        self.objective.check(table)

    def value(self, ctx: Context) -> Any:
        return self.weight * self.objective.value(ctx)


def _merge_rows(terms: Sequence[Objective]) -> int | None:
    rows = {t.rows for t in terms if t.rows is not None}
    if len(rows) > 1:
        detail = ", ".join(f"{t!r}: {t.rows}" for t in terms if t.rows is not None)
        raise ChannelError(
            f"The combined objectives ask for different numbers of batch rows ({detail}). "
            "Fix: give every per-row objective the same number of units, or one unit to share."
        )
    return rows.pop() if rows else None


# --------------------------------------------------------------------------------------------
# Unit objectives (channel, neuron, class logit) with tensor-valued indices
# --------------------------------------------------------------------------------------------
class UnitObjective(Objective):
    """A layer and one unit index per row (or one shared by all rows), in a ``tf.Variable``."""

    kind = "unit"

    def __init__(self, layer: str, index: IndexLike) -> None:
        tf = require_tensorflow()
        if not isinstance(layer, str):
            raise LayerError(f"Layer names are strings, got {type(layer).__name__} {layer!r}.")
        self.layer = layer
        self._values = _as_indices(index, self.kind)
        self.index = tf.Variable(
            self._values, dtype=tf.int32, trainable=False, shape=tf.TensorShape([None])
        )  # read by the compiled step: new units, no retrace
        self._limit: int | None = None  # number of units, known after check()

    @property
    def layers(self) -> frozenset[str]:
        return frozenset([self.layer])

    @property
    def rows(self) -> int | None:
        return len(self._values) if len(self._values) > 1 else None

    @property
    def indices(self) -> list[int]:
        """The current unit index of each row (one value: shared by all rows)."""
        return list(self._values)

    def set_index(self, index: IndexLike) -> None:
        """Change the unit(s); the row count must stay the same (no retrace)."""
        values = _as_indices(index, self.kind)
        if len(values) != len(self._values) and len(values) != 1 and len(self._values) != 1:
            raise ChannelError(
                f"{self!r} has {len(self._values)} rows; got {len(values)} indices. Fix: pass "
                f"{len(self._values)} indices, or start a new render for a different batch."
            )
        if self._limit is not None:
            _check_range(values, self._limit, self.kind, self.layer)
        self._values = values
        self.index.assign(values)

    def _check_units(self, table: LayerTable) -> tuple:
        shape = table.output_shape(self.layer)
        self._limit = int(shape[-1])
        _check_range(self._values, self._limit, self.kind, table.info(self.layer).name)
        return shape

    def _row_index(self, batch: int) -> Any:
        tf = require_tensorflow()
        return tf.broadcast_to(self.index, [batch])

    def _name(self, fn: str, extra: str = "") -> str:
        idx = self._values[0] if len(self._values) == 1 else self._values
        return f"{fn}({self.layer!r}, {idx}{extra})"


def _as_indices(index: IndexLike, kind: str) -> list[int]:
    arr = np.asarray(index)
    if arr.ndim > 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        if arr.ndim == 0 and isinstance(index, (float, np.floating)) and float(index).is_integer():
            arr = np.asarray(int(index))
        else:
            raise ChannelError(
                f"A {kind} index is an integer or a list of integers (one per row), got {index!r}."
            )
    return [int(v) for v in arr.reshape(-1)]


def _check_range(values: list[int], limit: int, kind: str, layer: str) -> None:
    bad = [v for v in values if not 0 <= v < limit]
    if bad:
        raise ChannelError(
            f"{kind.capitalize()} {bad[0]} is out of range for layer {layer!r}, which has "
            f"{limit} {kind}s. Valid {kind} indices are 0..{limit - 1}."
        )


class Channel(UnitObjective):
    """Mean activation of a channel over space (optionally ``crop`` pixels off each border).

    On a 2-D (Dense) output it is simply that unit's value.
    """

    kind = "channel"

    def __init__(self, layer: str, index: IndexLike, crop: int = 0) -> None:
        super().__init__(layer, index)
        if int(crop) != crop or crop < 0:
            raise ValueError(f"crop is a non-negative number of pixels, got {crop!r}.")
        self.crop = int(crop)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._name("channel", f", crop={self.crop}" if self.crop else "")

    def check(self, table: LayerTable) -> None:
        shape = self._check_units(table)
        table.check_softmax(self.layer, "objective")
        if self.crop and len(shape) == 4:
            for size in shape[1:3]:
                if size is not None and 2 * self.crop >= size:
                    raise LayerError(
                        f"crop={self.crop} removes all of the {shape[1]}x{shape[2]} map of layer "
                        f"{self.layer!r}. Fix: use crop < {max(size // 2, 1)}."
                    )

    def value(self, ctx: Context) -> Any:
        tf = require_tensorflow()
        maps = tf.cast(ctx.units(self.layer, self._row_index(ctx.batch)), tf.float32)
        if self.crop and maps.shape.rank == 3:
            c = self.crop
            maps = maps[:, c : maps.shape[1] - c, c : maps.shape[2] - c]
        if maps.shape.rank == 1:
            return maps
        return tf.reduce_mean(tf.reshape(maps, [ctx.batch, -1]), axis=1)


class Neuron(UnitObjective):
    """One channel at one spatial position (default: the centre of the map)."""

    kind = "channel"

    def __init__(self, layer: str, index: IndexLike, x: int | None = None, y: int | None = None):
        super().__init__(layer, index)
        self.x, self.y = x, y

    @property
    def name(self) -> str:  # type: ignore[override]
        pos = "" if self.x is None and self.y is None else f", x={self.x}, y={self.y}"
        return self._name("neuron", pos)

    def check(self, table: LayerTable) -> None:
        shape = self._check_units(table)
        if len(shape) != 4:
            raise LayerError(
                f"neuron() needs a spatial (batch, height, width, channels) layer; "
                f"{self.layer!r} outputs {shape}. Fix: use channel({self.layer!r}, k) or "
                "class_logit() for a Dense layer."
            )
        for axis, pos, size in (("x", self.x, shape[2]), ("y", self.y, shape[1])):
            if pos is not None and size is not None and not 0 <= pos < size:
                raise ChannelError(
                    f"neuron {axis}={pos} is outside layer {self.layer!r}'s map of size {size}. "
                    f"Valid {axis} positions are 0..{size - 1} (None picks the centre)."
                )

    def value(self, ctx: Context) -> Any:
        tf = require_tensorflow()
        maps = tf.cast(ctx.units(self.layer, self._row_index(ctx.batch)), tf.float32)
        h, w = int(maps.shape[1]), int(maps.shape[2])
        y = h // 2 if self.y is None else min(self.y, h - 1)
        x = w // 2 if self.x is None else min(self.x, w - 1)
        return maps[:, y, x]


class ClassLogit(UnitObjective):
    """A class score on a 2-D (batch, classes) layer, read before any softmax."""

    kind = "class"

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._name("class_logit")

    def check(self, table: LayerTable) -> None:
        shape = self._check_units(table)
        table.check_softmax(self.layer, "class objective")
        if len(shape) != 2:
            raise LayerError(
                f"class_logit() needs a (batch, classes) layer; {self.layer!r} outputs {shape}. "
                "Fix: name the pre-softmax Dense layer (often 'logits'), or use channel()."
            )

    def value(self, ctx: Context) -> Any:
        tf = require_tensorflow()
        return tf.cast(ctx.units(self.layer, self._row_index(ctx.batch)), tf.float32)


# --------------------------------------------------------------------------------------------
# The "layer:unit" shorthand
# --------------------------------------------------------------------------------------------
def as_objective(spec: Objective | str) -> Objective:
    """An objective from itself or from shorthand ``"layer:unit"`` / ``"layer:u1,u2,..."``."""
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, str):
        layer, sep, units = spec.rpartition(":")
        if not sep or not layer:
            raise ChannelError(
                f"Objective shorthand is 'layer:unit' (e.g. 'conv3:12' or 'logits:3'), got "
                f"{spec!r}. Fix: add the unit index after a colon."
            )
        try:
            index = [int(u) for u in units.split(",")]
        except ValueError:
            raise ChannelError(
                f"In {spec!r} the unit after ':' must be an integer or a comma-separated list "
                "of integers, e.g. 'conv3:12' or 'conv3:1,4,7'."
            ) from None
        return Channel(layer.strip(), index if len(index) > 1 else index[0])
    raise TypeError(
        f"Expected an Objective or a 'layer:unit' string, got {type(spec).__name__} {spec!r}."
    )
