"""Directions in weight space: random (filter / layer / per-tensor normalized), interpolations
between two or three models. PCA directions of a training path live in :mod:`.pca`.

A :class:`Directions` object carries its *origin* (the weights at coordinate 0) with it, so a
grid is fully determined by the directions and the coordinates, even when the model has
trained on since they were made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelError
from .weights import WeightLayout, snapshot_weights, weights_hash

NORMALIZATIONS = ("filter", "layer", "tensor", "none")


@dataclass
class Directions:
    """``k`` directions around an origin, each a list of arrays in ``model.weights`` order.

    Tensors a direction does not move are all-zero arrays. ``explained_variance`` holds the
    explained-variance *ratios* of PCA directions (None otherwise); ``metadata`` holds
    anything JSON-able that describes how they were made (it is stored with surfaces).
    """

    vectors: list[list[np.ndarray]]
    origin: list[np.ndarray]
    layout: WeightLayout
    kind: str
    seed: int | None = None
    normalization: str | None = None
    explained_variance: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.vectors:
            raise ValueError("Directions need at least one direction.")
        self.layout.check(self.origin, "origin")
        for j, v in enumerate(self.vectors):
            self.layout.check(v, f"direction {j}")

    @property
    def n(self) -> int:
        """Number of directions (1 for a line, 2 for a plane)."""
        return len(self.vectors)

    def flat(self) -> np.ndarray:
        """The directions as one (n, n_params) float32 matrix."""
        return np.stack([self.layout.flatten(v) for v in self.vectors])

    def origin_flat(self) -> np.ndarray:
        """The origin as one float32 vector."""
        return self.layout.flatten(self.origin)

    def perturbed(self) -> list[bool]:
        """Per tensor: does any direction move it?"""
        return [any(np.any(v[i] != 0) for v in self.vectors) for i in range(len(self.layout))]

    def point(self, coords: Sequence[float]) -> list[np.ndarray]:
        """The weights at ``origin + sum_i coords[i] * direction_i`` (each in its own dtype)."""
        coords = [float(c) for c in coords]
        if len(coords) != self.n:
            raise ValueError(f"{self.n} coordinates expected, got {len(coords)}.")
        out = []
        for i, (o, t) in enumerate(zip(self.origin, self.layout.tensors, strict=True)):
            w = o.astype(np.float64) if t.is_float else o
            for c, v in zip(coords, self.vectors, strict=True):
                if t.is_float and c != 0.0:
                    w = w + c * v[i].astype(np.float64)
            out.append(np.asarray(w).astype(t.dtype))
        return out

    def origin_hash(self) -> str:
        """A content hash of the origin weights (see :func:`~nbviz.landscape.weights_hash`)."""
        return weights_hash(self.origin)

    def hash(self) -> str:
        """Hash of the origin and every direction (what makes two grids comparable)."""
        return weights_hash(list(self.origin) + [a for v in self.vectors for a in v])

    def check_model(self, model: Any) -> None:
        """Raise :class:`ModelError` when these directions were made for another architecture."""
        layout = WeightLayout.from_model(model)
        if not layout.matches(self.layout):
            raise ModelError(
                f"These directions were made for model {self.layout.model_name!r} "
                f"({len(self.layout)} weights, {self.layout.n_params} parameters), but model "
                f"{layout.model_name!r} has {len(layout)} weights and {layout.n_params} "
                "parameters. Fix: make the directions from this model (random_directions(model))."
            )

    def with_origin(self, origin: Sequence[np.ndarray]) -> Directions:
        """The same directions around another origin (e.g. the model's current weights)."""
        return Directions(
            self.vectors,
            [np.array(w, copy=True) for w in origin],
            self.layout,
            self.kind,
            self.seed,
            self.normalization,
            self.explained_variance,
            {**self.metadata, "recentred": True},
        )

    def describe(self) -> dict[str, Any]:
        """JSON-able metadata: kind, seed, normalization, explained variance, origin hash..."""
        ev = (
            None if self.explained_variance is None else [float(e) for e in self.explained_variance]
        )
        return {
            "kind": self.kind,
            "n": self.n,
            "seed": self.seed,
            "normalization": self.normalization,
            "explained_variance": ev,
            "origin_hash": self.origin_hash(),
            "model_name": self.layout.model_name,
            "n_params": self.layout.n_params,
            **self.metadata,
        }


# -- normalization -----------------------------------------------------------------------------
def _slice_norms(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """L2 norms of every output-unit slice (reduced over all axes but ``axes``), kept dims."""
    reduce = tuple(i for i in range(a.ndim) if i not in axes)
    return np.asarray(np.sqrt(np.sum(np.square(a, dtype=np.float64), axis=reduce, keepdims=True)))


def _rescale(d: np.ndarray, target: np.ndarray | float, current: np.ndarray | float) -> np.ndarray:
    scale = np.divide(target, current, out=np.zeros_like(current), where=current > 0)
    return np.asarray(d * scale, dtype=np.float32)


def normalize_directions(
    vector: list[np.ndarray], origin: list[np.ndarray], layout: WeightLayout, normalization: str
) -> list[np.ndarray]:
    """Rescale a direction (list of arrays) to the scale of ``origin``.

    ``"filter"``: every output filter / neuron slice of each tensor gets the norm of the same
    slice of the weights (Li et al. 2018, on Keras' axes). ``"layer"``: all tensors of one layer
    together get the norm of that layer's weights. ``"tensor"``: each tensor gets the norm of
    its weight tensor (the seed article's ``normalize_weights``). ``"none"``: unchanged.
    All-zero (unperturbed) tensors stay zero.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"Unknown normalization {normalization!r}; use one of {', '.join(map(repr, NORMALIZATIONS))}."
        )
    if normalization == "none":
        return [np.asarray(d, dtype=np.float32) for d in vector]
    out = [np.asarray(d, dtype=np.float32) for d in vector]
    if normalization == "filter":
        for i, t in enumerate(layout.tensors):
            if np.any(out[i]):
                w = np.asarray(origin[i], dtype=np.float32)
                out[i] = _rescale(
                    out[i], _slice_norms(w, t.output_axes), _slice_norms(out[i], t.output_axes)
                )
        return out
    # "tensor" groups each tensor alone, "layer" groups the tensors of one layer.
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(layout.tensors):
        if np.any(out[i]):
            key = t.layer if normalization == "layer" and t.layer else f"#{i}"
            groups.setdefault(key, []).append(i)
    for idx in groups.values():
        wn = np.sqrt(sum(np.sum(np.square(origin[i], dtype=np.float64)) for i in idx))
        dn = np.sqrt(sum(np.sum(np.square(out[i], dtype=np.float64)) for i in idx))
        for i in idx:
            out[i] = _rescale(out[i], np.float64(wn), np.float64(dn))
    return out


def selected_tensors(
    layout: WeightLayout, perturb_1d: bool = False, perturb_non_trainable: bool = False
) -> list[bool]:
    """Which tensors directions move: float, trainable (unless asked), >= 2-D (unless asked).

    BatchNorm moving statistics are non-trainable and stay fixed by default (perturbing the
    moving variance can make it negative).
    """
    return [
        t.is_float and (t.trainable or perturb_non_trainable) and (len(t.shape) >= 2 or perturb_1d)
        for t in layout.tensors
    ]


# -- constructors ------------------------------------------------------------------------------
def random_directions(
    model: Any,
    n: int = 2,
    seed: int = 0,
    normalization: str = "filter",
    perturb_1d: bool = False,
    perturb_non_trainable: bool = False,
    origin: Sequence[np.ndarray] | None = None,
) -> Directions:
    """``n`` random Gaussian directions around the model's weights, normalized (Li et al.).

    Each (direction, tensor) pair draws from its own stream seeded by ``(seed, j, i)``, so a
    seed gives the same directions on every machine, whatever tensors are selected.
    ``origin`` (weights in ``model.weights`` order) replaces the model's current weights as
    centre, e.g. a snapshot of a training path. The seed article's directions are
    ``normalization="tensor", perturb_1d=True``.
    """
    layout = WeightLayout.from_model(model)
    origin = snapshot_weights(model) if origin is None else [np.array(w, copy=True) for w in origin]
    layout.check(origin, "origin")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    chosen = selected_tensors(layout, perturb_1d, perturb_non_trainable)
    if not any(chosen):
        raise ModelError(
            f"Model {layout.model_name!r} has no tensor to perturb with perturb_1d="
            f"{perturb_1d}, perturb_non_trainable={perturb_non_trainable}. Fix: pass "
            "perturb_1d=True (e.g. for a model of biases or normalization layers only)."
        )
    vectors = []
    for j in range(n):
        raw = [
            np.random.default_rng([int(seed), j, i]).standard_normal(t.shape, dtype=np.float32)
            if c
            else np.zeros(t.shape, np.float32)
            for i, (t, c) in enumerate(zip(layout.tensors, chosen, strict=True))
        ]
        vectors.append(normalize_directions(raw, origin, layout, normalization))
    return Directions(
        vectors,
        origin,
        layout,
        kind="random",
        seed=int(seed),
        normalization=normalization,
        metadata={
            "perturb_1d": bool(perturb_1d),
            "perturb_non_trainable": bool(perturb_non_trainable),
        },
    )


def _weights_and_layout(
    items: Sequence[Any], model: Any | None
) -> tuple[list[list[np.ndarray]], WeightLayout]:
    """Weights of models (snapshots) or weight lists, and the layout to read them with."""
    template = (
        model if model is not None else next((m for m in items if hasattr(m, "weights")), None)
    )
    if template is None:
        raise ModelError(
            "Interpolating between weight lists needs the architecture: pass model=<a model "
            "with these weights' shapes>, or pass the models themselves."
        )
    layout = WeightLayout.from_model(template)
    weights = []
    for k, m in enumerate(items):
        w = snapshot_weights(m) if hasattr(m, "weights") else [np.array(a, copy=True) for a in m]
        layout.check(w, f"model #{k + 1}'s weights")
        weights.append(w)
    return weights, layout


def _difference(
    a: list[np.ndarray], b: list[np.ndarray], layout: WeightLayout, perturb_non_trainable: bool
) -> list[np.ndarray]:
    return [
        (np.asarray(wb, np.float32) - np.asarray(wa, np.float32))
        if t.is_float and (t.trainable or perturb_non_trainable)
        else np.zeros(t.shape, np.float32)
        for wa, wb, t in zip(a, b, layout.tensors, strict=True)
    ]


def interpolation_directions(
    start: Any, end: Any, model: Any | None = None, perturb_non_trainable: bool = True
) -> Directions:
    """The line from ``start`` (t=0) to ``end`` (t=1): models or weight lists.

    Non-trainable tensors (BatchNorm statistics) are interpolated too by default, so t=1
    really is the second model.
    """
    (wa, wb), layout = _weights_and_layout([start, end], model)
    d = _difference(wa, wb, layout, perturb_non_trainable)
    return Directions(
        [d],
        wa,
        layout,
        kind="interpolation",
        normalization="none",
        metadata={
            "anchors": {"start": [0.0], "end": [1.0]},
            "perturb_non_trainable": bool(perturb_non_trainable),
        },
    )


def plane_directions(
    a: Any,
    b: Any,
    c: Any,
    model: Any | None = None,
    orthogonalize: bool = False,
    perturb_non_trainable: bool = True,
) -> Directions:
    """The plane through three models: ``a`` at (0, 0), ``b`` at (1, 0), ``c`` at (0, 1).

    With ``orthogonalize`` the second axis is made orthogonal to the first (same length), so
    distances read true; ``metadata["anchors"]`` then gives where ``c`` lies.
    """
    (wa, wb, wc), layout = _weights_and_layout([a, b, c], model)
    d0 = _difference(wa, wb, layout, perturb_non_trainable)
    d1 = _difference(wa, wc, layout, perturb_non_trainable)
    anchor_c = [0.0, 1.0]
    if orthogonalize:
        f0, f1 = layout.flatten(d0).astype(np.float64), layout.flatten(d1).astype(np.float64)
        n0 = float(f0 @ f0)
        if n0 == 0.0:
            raise ModelError("Models a and b have identical weights: the plane is undefined.")
        along = float(f1 @ f0) / n0
        perp = f1 - along * f0
        norm_perp = float(np.linalg.norm(perp))
        if norm_perp == 0.0:
            raise ModelError("The three models lie on one line: the plane is undefined.")
        scale = np.sqrt(n0) / norm_perp
        d1 = layout.unflatten((perp * scale).astype(np.float32), cast=False)
        d1 = [np.array(x, dtype=np.float32) for x in d1]
        anchor_c = [along, 1.0 / scale]
    return Directions(
        [d0, d1],
        wa,
        layout,
        kind="plane",
        normalization="none",
        metadata={
            "anchors": {"a": [0.0, 0.0], "b": [1.0, 0.0], "c": anchor_c},
            "orthogonalize": bool(orthogonalize),
            "perturb_non_trainable": bool(perturb_non_trainable),
        },
    )
