"""Hessian-vector products of a model's loss with respect to its trainable weights.

Design note. The Hessian of a network is never formed: everything in :mod:`.curvature` and
:mod:`.spectrum` only needs ``v -> H v``. :class:`HessianOperator` computes it on a fixed data
set (optionally a seeded subset) in memory-bounded batches (one size, but for a smaller last
one: at most two traces), as the average over all examples of the per-example loss *plus the
model's regularization losses*, in inference mode (``training=False``): the loss the landscape
grids show, from their one definition, :func:`.evaluator.loss_at_weights`. The model is only
called through
``model.stateless_call`` with weight tensors passed as arguments of one compiled function, so
its variables are never assigned, and new vectors or new weights reuse the same trace.

Forward-over-reverse (a ``tf.autodiff.ForwardAccumulator`` around the ``GradientTape``
gradient) versus reverse-over-reverse (the gradient of ``grad . v``): both are exact; their cost
relative to one gradient was measured on this machine (2 shared CPU cores, TF 2.21, best of
interleaved rounds, ``benchmarks/curvature.py``, several runs). Seed MLP (8.5k parameters, 1024
examples): forward-over-reverse 1.1-2.2x, reverse-over-reverse 1.4-2.2x, no consistent winner.
Demo convnet (61k parameters, 64 images): forward-over-reverse 1.9-2.9x, reverse-over-reverse
1.7-2.4x (TF's forward-mode rules for convolutions are slow). XLA made every variant slower
(1.4-4x). So ``mode="auto"`` picks reverse-over-reverse for models with convolutions or
recurrent layers, and forward-over-reverse otherwise: as fast there, and it holds less memory
(the reverse-over-reverse outer tape also records the whole backward pass).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._tf import require_tensorflow
from ..errors import ModelError
from .data import align_targets, checked_subset, make_batches, take
from .evaluator import available_memory, cached_probe, choose_strategy, loss_at_weights
from .losses import ExampleFn, resolve_loss
from .weights import WeightLayout, snapshot_weights

HVP_MODES = ("auto", "forward_over_reverse", "reverse_over_reverse")
HVP_BYTES_PER_ACTIVATION = 4 * 8  # float32 forward, backward, tangents and temporaries
MAX_BATCH = 4096


class Cancelled(Exception):
    """Raised inside a matrix-vector product when the caller's stop event is set."""


def choose_mode(model: Any, mode: str = "auto") -> str:
    """The HVP mode for ``model`` (see the module's design note for the measurements)."""
    if mode not in HVP_MODES:
        raise ValueError(f"mode must be one of {HVP_MODES}, got {mode!r}.")
    if mode != "auto":
        return mode
    convolutional = choose_strategy(model) == "per_point"
    return "reverse_over_reverse" if convolutional else "forward_over_reverse"


def trainable_mask(layout: WeightLayout, tensors: Sequence[bool] | None = None) -> list[bool]:
    """Which tensors of ``model.weights`` the Hessian is taken over (default: all trainable).

    Raises :class:`ModelError` for integer trainable weights (no derivative exists) and for
    a mask that selects non-trainable tensors or nothing.
    """
    for t in layout.tensors:
        if t.trainable and not t.is_float:
            raise ModelError(
                f"The trainable weight {t.name!r} of model {layout.model_name!r} has dtype "
                f"{t.dtype}; a Hessian needs floating-point weights. Fix: create it with "
                "trainable=False (or as a float variable)."
            )
    if tensors is None:
        mask = [t.trainable for t in layout.tensors]
    else:
        mask = [bool(m) for m in tensors]
        if len(mask) != len(layout):
            raise ModelError(
                f"tensors has {len(mask)} entries but model {layout.model_name!r} has "
                f"{len(layout)} weights. Fix: pass one bool per entry of model.weights."
            )
        bad = [t.name for t, m in zip(layout.tensors, mask, strict=True) if m and not t.trainable]
        if bad:
            raise ModelError(
                f"The Hessian is taken over trainable weights only; {bad} are not trainable. "
                "Fix: leave them out of tensors."
            )
    if not any(mask):
        raise ModelError(
            f"Model {layout.model_name!r} has no trainable weight to take a Hessian over. Fix: "
            "make some weights trainable (layer.trainable = True)."
        )
    return mask


class _Compiled:
    """The compiled loss/gradient and HVP functions of one model, loss and mode."""

    def __init__(
        self,
        model: Any,
        shapes: Sequence[tuple],
        idx: Sequence[int],
        loss: ExampleFn,
        regularization: bool,
        mode: str,
    ) -> None:
        tf = require_tensorflow()
        self.model = model
        self.shapes = [tuple(shapes[i]) for i in idx]
        self.sizes = [int(np.prod(s, dtype=np.int64)) for s in self.shapes]
        self.idx = list(idx)
        self.loss = loss
        self.regularization = regularization
        self.mode = mode
        self.gradient = tf.function(self._gradient, autograph=False)
        self.hvp = tf.function(self._hvp, autograph=False)
        self.lanczos_chunk = tf.function(self._lanczos_chunk, autograph=False)

    # -- pieces ------------------------------------------------------------------------------
    def split(self, flat: Any) -> list:
        tf = require_tensorflow()
        parts = tf.split(flat, self.sizes)
        return [tf.reshape(p, s) for p, s in zip(parts, self.shapes, strict=True)]

    @staticmethod
    def concat(parts: Sequence[Any]) -> Any:
        tf = require_tensorflow()
        return tf.concat([tf.reshape(tf.cast(p, tf.float32), [-1]) for p in parts], 0)

    def batch_loss(self, params: list, fixed: list, x: Any, y: Any, scale: Any) -> Any:
        """This batch's share of the loss over all examples: :func:`.loss_at_weights` (the
        grids' loss: the mean over the batch plus the regularization losses) times the
        batch's share of the examples, ``batch * scale`` (``scale`` = 1 / examples)."""
        tf = require_tensorflow()
        weights = list(fixed)
        for j, i in enumerate(self.idx):
            weights[i] = tf.cast(params[j], fixed[i].dtype)
        value = loss_at_weights(
            self.model, weights, x, y, loss=self.loss, regularization=self.regularization
        )
        count = tf.cast(tf.shape(tf.nest.flatten(x)[0])[0], tf.float32)
        return value * count * scale

    def _value_and_grad(
        self, params: list, fixed: list, x: Any, y: Any, scale: Any
    ) -> tuple[Any, list]:
        tf = require_tensorflow()
        with tf.GradientTape() as tape:
            tape.watch(params)
            value = self.batch_loss(params, fixed, x, y, scale)
        raw = tape.gradient(value, params)
        if all(g is None for g in raw):
            raise ModelError(
                f"The loss {self.loss.name!r} has no gradient with respect to the weights (it "
                "is not differentiable, e.g. it rounds, thresholds or takes an argmax). Fix: "
                "pass a differentiable loss=..., e.g. a cross-entropy instead of an accuracy."
            )
        grads = [tf.zeros_like(p) if g is None else g for p, g in zip(params, raw, strict=True)]
        return value, grads

    # -- compiled ------------------------------------------------------------------------------
    def _gradient(self, flat: Any, fixed: list, x: Any, y: Any, scale: Any) -> tuple:
        value, grads = self._value_and_grad(self.split(flat), fixed, x, y, scale)
        return value, self.concat(grads)

    def _hvp(self, flat: Any, v: Any, fixed: list, x: Any, y: Any, scale: Any) -> Any:
        tf = require_tensorflow()
        params, tangents = self.split(flat), self.split(v)
        zero = tf.UnconnectedGradients.ZERO
        if self.mode == "forward_over_reverse":
            with tf.autodiff.ForwardAccumulator(params, tangents) as acc:
                _, grads = self._value_and_grad(params, fixed, x, y, scale)
            return self.concat(acc.jvp(grads, unconnected_gradients=zero))
        with tf.GradientTape() as outer:
            outer.watch(params)
            _, grads = self._value_and_grad(params, fixed, x, y, scale)
            gv = tf.add_n([tf.reduce_sum(g * t) for g, t in zip(grads, tangents, strict=True)])
        return self.concat(outer.gradient(gv, params, unconnected_gradients=zero))

    def _lanczos_chunk(
        self,
        flat: Any,
        fixed: list,
        data: list,
        scale: Any,
        pscale: Any,
        state: tuple,
        steps: int,
    ) -> tuple:
        """``steps`` Lanczos steps on ``S H S`` (``S = diag(pscale)``), continuing ``state``.

        ``state = (basis, alpha, beta, j, q)``: the fixed-size (M, n) basis (rows >= j are
        zero, so reorthogonalizing against all rows is exact), T's diagonal and off-diagonal,
        the step count and the next unit vector; fixed shapes, so one trace serves every
        call. Unrolled in one call: no host round trip between the
        Hessian-vector products. The caller keeps ``j + steps <= M``.
        """
        tf = require_tensorflow()
        basis, alpha, beta, j, q = state
        for _ in range(steps):
            w = tf.zeros_like(q)
            for x, y in data:
                w = w + self._hvp(flat, pscale * q, fixed, x, y, scale)
            w = pscale * w
            at = tf.reshape(j, [1, 1])
            basis = tf.tensor_scatter_nd_update(basis, at, q[None, :])
            a = tf.reduce_sum(q * w)
            for _ in range(2):  # full reorthogonalization, twice
                w = w - tf.linalg.matvec(basis, tf.linalg.matvec(basis, w), transpose_a=True)
            b = tf.norm(w)
            alpha = tf.tensor_scatter_nd_update(alpha, at, tf.reshape(a, [1]))
            beta = tf.tensor_scatter_nd_update(beta, at, tf.reshape(b, [1]))
            q = w / tf.maximum(b, 1e-30)
            j = j + 1
        return basis, alpha, beta, j, q

    def traces(self) -> int:
        """How many times the compiled functions were traced (for no-retrace checks)."""
        return (
            self.gradient.experimental_get_tracing_count()
            + self.hvp.experimental_get_tracing_count()
            + self.lanczos_chunk.experimental_get_tracing_count()
        )


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _compiled(
    model: Any,
    shapes: Sequence[tuple],
    idx: Sequence[int],
    loss: ExampleFn,
    regularization: bool,
    mode: str,
) -> _Compiled:
    key = (tuple(idx), loss, regularization, mode)
    with _CACHE_LOCK:
        entry = _CACHE.setdefault(model, {})
        if key not in entry:
            entry[key] = _Compiled(model, shapes, idx, loss, regularization, mode)
        return entry[key]


def plan_batch_size(n: int, act_floats: int, budget: int, batch_size: int | None) -> int:
    """Examples per HVP batch: all of them when they fit ``budget`` bytes, at most 4096."""
    if batch_size is not None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        return min(int(batch_size), n)
    fits = int(budget // (HVP_BYTES_PER_ACTIVATION * max(act_floats, 1)))
    return max(1, min(n, MAX_BATCH, fits))


class HessianOperator:
    """``v -> H v`` for the Hessian of the mean loss (plus regularization) over ``x, y``.

    The space is the flat concatenation of the selected tensors of ``model.weights`` (default:
    every trainable tensor, in ``model.weights`` order); :attr:`n` is its dimension. Products
    are float64 numpy vectors summed over float32 batch products.

    Parameters
    ----------
    model:
        A built Keras model; only called statelessly with ``training=False``, never modified.
    x, y:
        Data (arrays); ``subset`` (a count or a fraction) takes a seeded random subset once.
    loss:
        The loss (default: the model's compiled loss), per example, averaged over the data;
        the model's regularization losses are added as the loss grids add them.
    weights:
        The point the Hessian is taken at, in ``model.weights`` order (default: a snapshot of
        the model's weights now); see :meth:`set_weights`.
    tensors:
        One bool per ``model.weights`` entry: which (trainable) tensors span the space.
    batch_size, memory_budget:
        Examples per product (default: as many as fit ``memory_budget`` bytes, a quarter of
        the free memory, capped at 4096).
    mode:
        ``"auto"``, ``"forward_over_reverse"`` or ``"reverse_over_reverse"``.
    regularization:
        Include the model's regularization losses (default, as the loss grids do).
    check:
        Trace the product now (default): it checks that the loss is differentiable and keeps
        the compiling out of the first product. False leaves both to the first product or
        :meth:`lanczos_steps` (the live sharpness, which never calls :meth:`matvec`).
    """

    def __init__(
        self,
        model: Any,
        x: Any,
        y: Any,
        *,
        loss: Any = None,
        weights: Sequence[np.ndarray] | None = None,
        tensors: Sequence[bool] | None = None,
        subset: int | float | None = None,
        seed: int = 0,
        batch_size: int | None = None,
        memory_budget: int | None = None,
        mode: str = "auto",
        regularization: bool = True,
        check: bool = True,
    ) -> None:
        from .evaluator import activation_floats

        tf = require_tensorflow()
        self.model = model
        self.layout = WeightLayout.from_model(model)
        self.mask = trainable_mask(self.layout, tensors)
        self.idx = [i for i, m in enumerate(self.mask) if m]
        self.loss_fn = resolve_loss(model, loss)
        x, y, n_total, idx = checked_subset(model, x, y, subset, seed)
        self.n_examples = n_total if idx is None else len(idx)
        weights = snapshot_weights(model) if weights is None else [np.array(w) for w in weights]
        self.layout.check(weights, "weights")
        self._fixed = [tf.constant(w) for w in weights]
        k = np.arange(min(self.n_examples, 2))
        out_shape, _, _, _ = cached_probe(
            model, self._fixed, take(x, k), take(y, k), self.loss_fn, ()
        )
        y = align_targets(y, out_shape)
        budget = int(memory_budget) if memory_budget else min(available_memory() // 4, 2**30)
        bs = plan_batch_size(self.n_examples, activation_floats(model), budget, batch_size)
        # Unpadded: the last, smaller batch (if any) is traced once more.
        self.batches = make_batches(x, y, self.n_examples, bs, pad=False)
        self.mode = choose_mode(model, mode)
        self.compiled = _compiled(
            model, self.layout.shapes, self.idx, self.loss_fn, bool(regularization), self.mode
        )
        self._scale = tf.constant(1.0 / self.n_examples, tf.float32)
        self._flat = tf.constant(self._flat_params(weights))
        self.n_products = 0
        self._lanczos_zeros: dict[int, tuple] = {}
        self._chunks: dict[int, Any] = {}
        self._data = [(x, y) for x, y, _ in self.batches.items]
        self.info = {
            "loss": self.loss_fn.name,
            "n_examples": int(self.n_examples),
            "n_total": int(n_total),
            "subset": None if idx is None else int(self.n_examples),
            "subset_seed": None if idx is None else int(seed),
            "batch_size": int(self.batches.batch_size),
            "n_batches": len(self.batches),
            "mode": self.mode,
            "n_params": self.n,
            "regularization": bool(regularization),
        }
        # Trace the product now: it checks that the loss is differentiable (with the error's
        # fix) and keeps the compiling out of the first real product.
        if check:
            self.matvec(np.zeros(self.n))
            self.n_products = 0

    # -- the space -------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Dimension of the space (parameters in the selected tensors)."""
        return int(sum(self.layout.tensors[i].size for i in self.idx))

    def _flat_params(self, weights: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(weights[i], np.float32).reshape(-1) for i in self.idx])

    def to_weights(self, vector: np.ndarray) -> list[np.ndarray]:
        """A vector of this space as arrays in ``model.weights`` order (zeros elsewhere)."""
        vector = np.asarray(vector)
        if vector.shape != (self.n,):
            raise ValueError(f"Expected a vector of {self.n} entries, got shape {vector.shape}.")
        out = [np.zeros(t.shape, np.float32) for t in self.layout.tensors]
        start = 0
        for i in self.idx:
            size = self.layout.tensors[i].size
            out[i] = (
                vector[start : start + size]
                .reshape(self.layout.tensors[i].shape)
                .astype(np.float32)
            )
            start += size
        return out

    def from_weights(self, weights: Sequence[np.ndarray]) -> np.ndarray:
        """The selected tensors of a ``model.weights``-ordered list as one float64 vector."""
        self.layout.check(weights, "weights")
        return self._flat_params(weights).astype(np.float64)

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        """Move the point the Hessian is taken at (same trace; the model is not touched)."""
        tf = require_tensorflow()
        self.layout.check(weights, "weights")
        self._fixed = [tf.constant(np.asarray(w)) for w in weights]
        self._flat = tf.constant(self._flat_params(weights))

    def set_params(self, flat: np.ndarray) -> None:
        """Move only the selected tensors to ``flat`` (a vector of this space)."""
        tf = require_tensorflow()
        self._flat = tf.constant(np.asarray(flat, np.float32).reshape(self.n))

    @property
    def params(self) -> np.ndarray:
        """The selected weights at the current point, as one float64 vector."""
        return self._flat.numpy().astype(np.float64)

    # -- products ----------------------------------------------------------------------------------
    def gradient(self) -> tuple[float, np.ndarray]:
        """``(loss, gradient)`` at the current point (float64)."""
        value, grad = 0.0, np.zeros(self.n)
        for x, y, _ in self.batches.items:
            v, g = self.compiled.gradient(self._flat, self._fixed, x, y, self._scale)
            value += float(v.numpy())
            grad += g.numpy()
        return value, grad

    def matvec(self, v: np.ndarray, stop_event: threading.Event | None = None) -> np.ndarray:
        """``H v`` (float64). Raises :class:`Cancelled` when ``stop_event`` is set."""
        tf = require_tensorflow()
        if stop_event is not None and stop_event.is_set():
            raise Cancelled()
        v = np.asarray(v).reshape(-1)
        if v.shape != (self.n,):
            raise ValueError(f"Expected a vector of {self.n} entries, got shape {v.shape}.")
        tv = tf.constant(v.astype(np.float32))
        out = np.zeros(self.n)
        for x, y, _ in self.batches.items:
            out += self.compiled.hvp(self._flat, tv, self._fixed, x, y, self._scale).numpy()
        self.n_products += 1
        return out

    def lanczos_state(self, start: np.ndarray, rows: int) -> tuple:
        """The state of a compiled Lanczos run (:meth:`lanczos_steps`) of at most ``rows``
        steps from ``start`` (a unit vector of this space)."""
        tf = require_tensorflow()
        zeros = self._lanczos_zeros.get(rows)
        if zeros is None:  # tensors are immutable: one set of zeros serves every run
            zeros = (tf.zeros((rows, self.n)), tf.zeros((rows,)), tf.constant(0, tf.int32))
            self._lanczos_zeros = {rows: zeros}
        basis, diagonal, j = zeros
        return basis, diagonal, diagonal, j, tf.constant(np.asarray(start, np.float32))

    def lanczos_steps(
        self,
        state: tuple,
        steps: int,
        pscale: Any,
        stop_event: threading.Event | None = None,
    ) -> tuple:
        """Advance a compiled Lanczos run on ``S H S`` by ``steps`` products in one call (see
        :mod:`.topeigen`); ``state`` and the result are ``(basis, alpha, beta, j, q)`` tensors,
        ``pscale`` the float32 diagonal of ``S``. Raises :class:`Cancelled` on a stop event."""
        if stop_event is not None and stop_event.is_set():
            raise Cancelled()
        args = (self._flat, self._fixed, self._data, self._scale, pscale, state, int(steps))
        fn = self._chunks.get(int(steps))
        if fn is None:  # the concrete function: calls skip tf.function's signature matching
            fn = self.compiled.lanczos_chunk.get_concrete_function(*args)
            self._chunks = {**self._chunks, int(steps): fn}
        out = fn(*args)
        self.n_products += int(steps)
        return out

    def as_linear_operator(self, stop_event: threading.Event | None = None) -> Any:
        """A ``scipy.sparse.linalg.LinearOperator`` (symmetric, float64) for ``eigsh`` etc."""
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator(
            (self.n, self.n), matvec=lambda v: self.matvec(v, stop_event), dtype=np.float64
        )

    def dense(self) -> np.ndarray:
        """The full Hessian (n x n, float64) as the Jacobian of the gradient (``tape.jacobian``):
        the exact baseline for tests and benchmarks; O(n) gradients, O(n^2) memory."""
        tf = require_tensorflow()
        c = self.compiled

        def jac(flat, fixed, x, y, scale):
            with tf.GradientTape() as outer:
                outer.watch(flat)
                with tf.GradientTape() as inner:
                    inner.watch(flat)
                    value = c.batch_loss(c.split(flat), fixed, x, y, scale)
                g = inner.gradient(value, flat, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return outer.jacobian(
                g,
                flat,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
                experimental_use_pfor=self.n <= 2048,
            )

        fn = tf.function(jac, autograph=False)
        out = np.zeros((self.n, self.n))
        for x, y, _ in self.batches.items:
            out += fn(self._flat, self._fixed, x, y, self._scale).numpy()
        return (out + out.T) / 2


def hessian_operator(model: Any, x: Any, y: Any, **kwargs: Any) -> HessianOperator:
    """A :class:`HessianOperator` (same arguments)."""
    return HessianOperator(model, x, y, **kwargs)
