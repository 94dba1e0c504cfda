"""A model's weights as plain numpy: the layout (``model.weights`` order), snapshots, hashes.

Everything in :mod:`nbviz.landscape` talks about weights as a list of numpy arrays in
``model.weights`` order (trainable and non-trainable), or as one flat float32 vector that
concatenates them in that order. :class:`WeightLayout` converts between the two and knows,
for every tensor, which axes index its output units (for filter normalization).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .._tf import require_keras
from ..errors import ModelError
from ..layers import iter_layers


@dataclass(frozen=True)
class TensorInfo:
    """One weight tensor of a model."""

    name: str  # the variable's path, e.g. "sequential/dense/kernel"
    shape: tuple[int, ...]
    dtype: str
    trainable: bool
    layer: str  # name of the layer that owns it
    layer_kind: str  # class name of that layer
    output_axes: tuple[int, ...]  # axes that index output units (filters / neurons)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def is_float(self) -> bool:
        return np.dtype(self.dtype).kind == "f"


def output_axes(layer_kind: str, variable_name: str, ndim: int) -> tuple[int, ...]:
    """Axes of a weight tensor that index its output units, in Keras' layout.

    Keras stores Dense and ConvND kernels as (..., in, out): the output unit is the *last*
    axis (a literal port of PyTorch code, which uses axis 0, is silently wrong).
    ConvNDTranspose kernels are (..., out, in); depthwise kernels are (..., in, multiplier),
    one output channel per (in, multiplier) pair; embeddings are one vector per row.
    """
    if ndim <= 1:
        return tuple(range(ndim))
    short = variable_name.rsplit("/", 1)[-1]
    if "Transpose" in layer_kind and short == "kernel":
        return (ndim - 2,)
    if short == "depthwise_kernel" or (
        layer_kind.startswith("DepthwiseConv") and short == "kernel"
    ):
        return (ndim - 2, ndim - 1)
    if layer_kind == "Embedding":
        return (0,)
    return (ndim - 1,)


def _owners(model: Any) -> dict[int, Any]:
    """Map ``id(variable)`` to the innermost layer owning it."""
    keras = require_keras()
    owners: dict[int, Any] = {}
    # iter_layers yields a nested model before its own layers, so inner owners win.
    for info in iter_layers(model):
        if isinstance(info.layer, keras.Model):
            continue
        for v in info.layer.weights:
            owners[id(v)] = info.layer
    return owners


@dataclass(frozen=True)
class WeightLayout:
    """Names, shapes and kinds of ``model.weights``, and the flat-vector view of them."""

    tensors: tuple[TensorInfo, ...]
    model_name: str = ""

    @classmethod
    def from_model(cls, model: Any) -> WeightLayout:
        """The layout of ``model.weights``; raises :class:`ModelError` for an unbuilt model."""
        weights = list(getattr(model, "weights", []) or [])
        if not weights or not getattr(model, "built", True):
            raise ModelError(
                f"Model {getattr(model, 'name', model)!r} has no weights yet (it was never "
                "built). Fix: give it an Input or call it once on data before computing a "
                "loss landscape."
            )
        trainable = {id(v) for v in model.trainable_weights}
        owners = _owners(model)
        infos = []
        for v in weights:
            layer = owners.get(id(v))
            kind = type(layer).__name__ if layer is not None else ""
            shape = tuple(int(s) for s in v.shape)
            infos.append(
                TensorInfo(
                    name=str(getattr(v, "path", v.name)),
                    shape=shape,
                    dtype=str(np.dtype(v.dtype)),
                    trainable=id(v) in trainable,
                    layer=layer.name if layer is not None else "",
                    layer_kind=kind,
                    output_axes=output_axes(kind, str(getattr(v, "path", v.name)), len(shape)),
                )
            )
        return cls(tuple(infos), str(getattr(model, "name", "")))

    # -- sizes -------------------------------------------------------------------------------
    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [t.shape for t in self.tensors]

    @property
    def sizes(self) -> np.ndarray:
        return np.array([t.size for t in self.tensors], dtype=np.int64)

    @property
    def offsets(self) -> np.ndarray:
        """Start of each tensor in the flat vector (length ``len(tensors) + 1``)."""
        return np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    @property
    def n_params(self) -> int:
        return int(self.sizes.sum())

    def __len__(self) -> int:
        return len(self.tensors)

    def ranges(self, mask: Sequence[bool]) -> list[tuple[int, int]]:
        """Contiguous ``(start, stop)`` ranges of the flat vector covering the masked tensors."""
        off = self.offsets
        out: list[tuple[int, int]] = []
        for i, m in enumerate(mask):
            if not m:
                continue
            if out and out[-1][1] == off[i]:
                out[-1] = (out[-1][0], int(off[i + 1]))
            else:
                out.append((int(off[i]), int(off[i + 1])))
        return out

    # -- conversions -------------------------------------------------------------------------
    def check(
        self,
        weights: Sequence[np.ndarray],
        what: str = "weights",
        error: type[Exception] = ModelError,
    ) -> None:
        """Raise ``error`` naming the first tensor whose shape does not match."""
        if len(weights) != len(self.tensors):
            raise error(
                f"{what} has {len(weights)} tensors but model {self.model_name!r} has "
                f"{len(self.tensors)} weights. Fix: use weights taken from this model "
                "(model.get_weights() order)."
            )
        for i, (w, t) in enumerate(zip(weights, self.tensors, strict=True)):
            if tuple(np.shape(w)) != t.shape:
                raise error(
                    f"{what}[{i}] has shape {tuple(np.shape(w))} but {t.name!r} of model "
                    f"{self.model_name!r} has shape {t.shape}. Fix: use weights taken from "
                    "this model (same architecture)."
                )

    def flatten(self, weights: Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """Concatenate ``weights`` into one float32 vector (written into ``out`` if given)."""
        self.check(weights)
        if out is None:
            out = np.empty(self.n_params, dtype=np.float32)
        off = self.offsets
        for i, w in enumerate(weights):
            out[off[i] : off[i + 1]] = np.asarray(w).reshape(-1)
        return out

    def unflatten(self, vector: np.ndarray, cast: bool = True) -> list[np.ndarray]:
        """Split a flat vector into per-tensor arrays (views when ``cast`` is False)."""
        vector = np.asarray(vector)
        if vector.shape != (self.n_params,):
            raise ModelError(
                f"A flat weight vector of model {self.model_name!r} has {self.n_params} "
                f"entries, got shape {vector.shape}."
            )
        off = self.offsets
        parts = [vector[off[i] : off[i + 1]].reshape(t.shape) for i, t in enumerate(self.tensors)]
        if cast:
            parts = [p.astype(t.dtype) for p, t in zip(parts, self.tensors, strict=True)]
        return parts

    def to_dict(self) -> dict:
        """A JSON-able description (stored in surface files, see :meth:`from_dict`)."""
        return {
            "model_name": self.model_name,
            "tensors": [
                {**asdict(t), "shape": list(t.shape), "output_axes": list(t.output_axes)}
                for t in self.tensors
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> WeightLayout:
        """The layout described by :meth:`to_dict` (read back from a surface file)."""
        tensors = tuple(
            TensorInfo(**{**t, "shape": tuple(t["shape"]), "output_axes": tuple(t["output_axes"])})
            for t in d["tensors"]
        )
        return cls(tensors, d.get("model_name", ""))

    def matches(self, other: WeightLayout) -> bool:
        """True when both describe the same architecture (shapes and trainability)."""
        return [(t.shape, t.trainable) for t in self.tensors] == [
            (t.shape, t.trainable) for t in other.tensors
        ]


def snapshot_weights(model: Any) -> list[np.ndarray]:
    """Copies of ``model.weights`` as numpy arrays (never views of the live variables)."""
    return [np.array(v.numpy(), copy=True) for v in model.weights]


def weights_hash(weights: Sequence[np.ndarray]) -> str:
    """A short, stable hash of a list of arrays (shapes, dtypes and bytes)."""
    h = hashlib.sha256()
    for w in weights:
        a = np.ascontiguousarray(w)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
