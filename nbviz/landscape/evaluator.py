"""Compiled loss of a model at ``origin + c . directions``, without touching the model.

The model is only ever called through ``model.stateless_call(trainable, non_trainable, x,
training=False)`` with weight tensors built in-graph from the origin, the directions and the
coordinates, so its variables are never assigned. Two strategies:

- ``"vectorized"``: ``tf.vectorized_map`` over a chunk of grid points (one batched forward
  pass for all of them; fast for Dense-like models, where it turns K small matmuls into one).
- ``"per_point"``: the same compiled function called once per point (convolutions have no
  batched rule in ``vectorized_map``; it would fall back to a slow while loop).

Compiled functions take the origin and directions as arguments and are cached per model, so
new directions or a new origin reuse the same trace.

The loss at a point includes the model's regularization losses (weight regularizers, activity
regularizers, ``add_loss`` terms) by default, as ``model.evaluate`` reports it:
:func:`loss_at_weights` is the one definition of that number, and the grid's per-point
statistics are built from the same two pieces (:meth:`ModelForward.outputs_and_regularization`
and :func:`per_example`).
"""

from __future__ import annotations

import inspect
import threading
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._tf import require_keras, require_tensorflow
from ..errors import DataError, ModelError
from ..layers import iter_layers
from .data import Batches, spec
from .losses import ExampleFn, resolve_loss, resolve_metrics

STRATEGIES = ("auto", "vectorized", "per_point")
# Sum and sum of squares of the per-example data loss, and the regularization loss summed
# per batch weighted by its examples (the loss at a point is data mean + regularization mean).
N_LOSS_STATS = 3


class ModelForward:
    """``model``'s forward pass for weights given in ``model.weights`` order."""

    def __init__(self, model: Any) -> None:
        tf = require_tensorflow()
        self.model = model
        pos = {id(v): i for i, v in enumerate(model.weights)}
        self.trainable_pos = [pos[id(v)] for v in model.trainable_variables]
        # Non-trainable state that is not a weight (RNG seeds, metric state): a frozen copy.
        self.non_trainable: list[int | Any] = [
            pos[id(v)] if id(v) in pos else tf.constant(np.array(v.numpy(), copy=True))
            for v in model.non_trainable_variables
        ]
        # A subclassed model's call() may not take ``training`` (stateless_call passes keyword
        # arguments on as they are); it then has no training-only behaviour to switch off.
        self.call_kwargs = {"training": False} if _accepts_training(model) else {}

    def _split(self, weights: Sequence[Any]) -> tuple[list, list]:
        trainable = [weights[i] for i in self.trainable_pos]
        non_trainable = [weights[e] if isinstance(e, int) else e for e in self.non_trainable]
        return trainable, non_trainable

    def __call__(self, weights: Sequence[Any], x: Any) -> Any:
        out, _ = self.model.stateless_call(*self._split(weights), x, **self.call_kwargs)
        return out

    def outputs_and_regularization(self, weights: Sequence[Any], x: Any) -> tuple[Any, Any, int]:
        """``(outputs, regularization, n_terms)`` at ``weights``.

        ``regularization`` is the float32 sum of the model's losses at these weights: weight
        regularizers (computed from the given weights, not the model's variables), activity
        regularizers and ``add_loss`` terms of this forward pass, as ``model.evaluate`` adds
        them; 0.0 when there are none. ``n_terms`` counts them.
        """
        tf = require_tensorflow()
        out, _, losses = self.model.stateless_call(
            *self._split(weights), x, return_losses=True, **self.call_kwargs
        )
        losses = [tf.reduce_sum(tf.cast(v, tf.float32)) for v in losses]
        reg = tf.add_n(losses) if losses else tf.constant(0.0, tf.float32)
        return out, reg, len(losses)


def _accepts_training(model: Any) -> bool:
    params = inspect.signature(model.call).parameters.values()
    return any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in params)


def per_example(values: Any) -> Any:
    """Reduce a loss/metric output to one value per example (mean over trailing axes)."""
    tf = require_tensorflow()
    values = tf.cast(values, tf.float32)
    if values.shape.rank is not None and values.shape.rank > 1:
        values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
    return values


def loss_at_weights(
    model: Any,
    weights: Sequence[Any],
    x: Any,
    y: Any,
    *,
    loss: Any = None,
    regularization: bool = True,
) -> Any:
    """The loss of ``model`` on ``(x, y)`` at ``weights``, as ``model.evaluate`` computes it.

    ``weights`` are tensors (or arrays) in ``model.weights`` order; the model is called with
    ``stateless_call(..., training=False)`` and never modified. The result is a float32 scalar
    tensor: the mean of the per-example ``loss`` (default the compiled loss) plus, when
    ``regularization`` is true, the model's regularization losses at these weights (see
    :meth:`ModelForward.outputs_and_regularization`). Differentiable with respect to
    ``weights`` (use it under a ``tf.GradientTape`` or inside a ``tf.function``).
    """
    tf = require_tensorflow()
    fn = resolve_loss(model, loss) if not isinstance(loss, ExampleFn) else loss
    forward = get_forward(model)
    weights = [tf.convert_to_tensor(w) for w in weights]
    if regularization:
        out, reg, _ = forward.outputs_and_regularization(weights, x)
    else:
        out, reg = forward(weights, x), tf.constant(0.0, tf.float32)
    return tf.reduce_mean(per_example(fn.fn(y, out))) + reg


def probe(
    forward: ModelForward, origin: list, x: Any, y: Any, loss: ExampleFn, metrics: Sequence[Any]
) -> tuple[tuple, bool, list[ExampleFn], int]:
    """Run the model, the loss and the metrics eagerly on a couple of examples.

    Returns the output shape, whether the loss gives one value per example, the resolved
    metrics and the number of regularization terms of the model. Turns shape problems into
    :class:`DataError` with the shapes involved.
    """
    try:
        out, _, n_reg = forward.outputs_and_regularization(origin, x)
    except Exception as exc:  # noqa: BLE001 - any failure here means the data does not fit
        raise DataError(
            f"Model {forward.model.name!r} cannot run on x of shape "
            f"{getattr(x, 'shape', '?')}: {type(exc).__name__}: {str(exc).splitlines()[0]}. "
            "Fix: pass inputs shaped like the model's input."
        ) from exc
    out_shape = tuple(getattr(out, "shape", ()))
    y_shape = tuple(getattr(y, "shape", ()))
    fns = resolve_metrics(metrics, y_shape, out_shape)
    per_ex = True
    for fn, what in [(loss, "loss")] + [(m, "metric") for m in fns]:
        try:
            v = per_example(fn.fn(y, out))
        except Exception as exc:  # noqa: BLE001
            raise DataError(
                f"The {what} {fn.name!r} fails on targets y of shape {y_shape} and model "
                f"output of shape {out_shape}: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0]}. Fix: pass y shaped like the model's output "
                "(or class indices for sparse losses), or a loss that fits them."
            ) from exc
        rank = v.shape.rank
        if rank not in (0, 1) or (rank == 1 and v.shape[0] != out_shape[0]):
            raise DataError(
                f"The {what} {fn.name!r} returned shape {tuple(v.shape)} for a batch of "
                f"{out_shape[0]}; expected one value per example or a scalar."
            )
        if rank == 0:
            if what == "loss":
                per_ex = False
            else:
                raise ModelError(
                    f"The metric {fn.name!r} reduces over the batch; grid metrics must return "
                    "one value per example. Fix: pass a function (y_true, y_pred) -> (batch,)."
                )
    return out_shape, per_ex, fns, n_reg


class GridEvaluator:
    """Sums of the per-example loss (and its square), of the regularization loss (weighted by
    the batch's examples) and of each metric, per grid point."""

    def __init__(
        self,
        forward: ModelForward,
        shapes: Sequence[tuple],
        perturbed_idx: Sequence[int],
        loss: ExampleFn,
        metrics: Sequence[ExampleFn],
        per_example_loss: bool,
        strategy: str,
        jit_compile: bool,
        regularization: bool = True,
    ) -> None:
        self.forward = forward
        self.regularization = regularization
        self.shapes = [tuple(s) for s in shapes]
        self.perturbed_idx = list(perturbed_idx)
        self.loss = loss
        self.metrics = list(metrics)
        self.per_example_loss = per_example_loss
        self.strategy = strategy
        self.jit_compile = jit_compile
        self.n_stats = N_LOSS_STATS + len(self.metrics)
        self._fn = self._build(jit_compile)

    # -- graph pieces ------------------------------------------------------------------------
    def _stats(self, weights: list, x: Any, y: Any, mask: Any) -> Any:
        tf = require_tensorflow()
        if self.regularization:
            out, reg, _ = self.forward.outputs_and_regularization(weights, x)
        else:
            out, reg = self.forward(weights, x), tf.constant(0.0, tf.float32)
        valid = mask > 0
        count = tf.reduce_sum(mask)

        def masked_sum(v: Any) -> Any:
            return tf.reduce_sum(tf.where(valid, v, tf.zeros_like(v)))

        loss = per_example(self.loss.fn(y, out))
        if self.per_example_loss:
            stats = [masked_sum(loss), masked_sum(loss * loss)]
        else:  # a batch mean: no padding in this mode, so count is the batch size
            stats = [loss * count, tf.constant(np.nan, tf.float32)]
        stats.append(reg * count)
        stats += [masked_sum(per_example(m.fn(y, out))) for m in self.metrics]
        return tf.stack(stats)

    def _perturb(self, origin: list, dirs: list, coords: Any, batched: bool) -> list:
        tf = require_tensorflow()
        out = []
        for j, i in enumerate(self.perturbed_idx):
            o = origin[i]
            if batched:
                delta = tf.reshape(tf.matmul(coords, dirs[j]), (-1,) + self.shapes[i])
                out.append(o[None] + tf.cast(delta, o.dtype))
            else:
                delta = tf.reshape(tf.tensordot(coords, dirs[j], 1), self.shapes[i])
                out.append(o + tf.cast(delta, o.dtype))
        return out

    def _build(self, jit_compile: bool) -> Any:
        tf = require_tensorflow()

        def with_perturbed(origin: list, moved: Sequence[Any]) -> list:
            weights = list(origin)
            for j, i in enumerate(self.perturbed_idx):
                weights[i] = moved[j]
            return weights

        if self.strategy == "vectorized":

            def chunk_fn(coords, origin, dirs, x, y, mask):
                moved = self._perturb(origin, dirs, coords, batched=True)
                return tf.vectorized_map(
                    lambda ws: self._stats(with_perturbed(origin, ws), x, y, mask), moved
                )

            return tf.function(chunk_fn, jit_compile=jit_compile, autograph=False)

        def point_fn(coords, origin, dirs, x, y, mask):
            moved = self._perturb(origin, dirs, coords, batched=False)
            return self._stats(with_perturbed(origin, moved), x, y, mask)

        return tf.function(point_fn, jit_compile=jit_compile, autograph=False)

    # -- running -----------------------------------------------------------------------------
    def _call(self, *args: Any) -> np.ndarray:
        tf = require_tensorflow()
        try:
            return self._fn(*args).numpy()
        except tf.errors.OpError as exc:  # XLA cannot compile some ops: retry without it
            if not self.jit_compile:
                raise
            warnings.warn(
                f"XLA could not compile the grid evaluation ({type(exc).__name__}); "
                "continuing without jit_compile.",
                RuntimeWarning,
                stacklevel=3,
            )
            self.jit_compile = False
            self._fn = self._build(False)
            return self._fn(*args).numpy()

    def evaluate(
        self,
        coords: np.ndarray,
        origin: list,
        dirs: list,
        batches: Batches,
        stop_event: threading.Event | None = None,
    ) -> np.ndarray:
        """Stats (n_points, n_stats) float64 summed over all batches.

        ``coords`` (n_points, k). The per-point strategy checks ``stop_event`` between points
        and may return fewer rows (the finished ones).
        """
        tf = require_tensorflow()
        coords = np.asarray(coords, dtype=np.float32)
        if self.strategy == "vectorized":
            c = tf.constant(coords)
            total: np.ndarray = np.zeros((len(coords), self.n_stats))
            for x, y, m in batches.items:
                total += self._call(c, origin, dirs, x, y, m)
            return total
        rows: list[np.ndarray] = []
        for point in coords:
            if stop_event is not None and stop_event.is_set() and rows:
                break
            c = tf.constant(point)
            total = np.zeros(self.n_stats)
            for x, y, m in batches.items:
                total += self._call(c, origin, dirs, x, y, m)
            rows.append(total)
        return np.array(rows).reshape(len(rows), self.n_stats)


# -- strategy, memory, cache ---------------------------------------------------------------------
def _is_conv_or_recurrent(layer: Any) -> bool:
    keras = require_keras()
    return "Conv" in type(layer).__name__ or isinstance(layer, keras.layers.RNN)


def choose_strategy(model: Any, strategy: str = "auto") -> str:
    """``"per_point"`` for models with convolutions or recurrent layers, else ``"vectorized"``.

    ``tf.vectorized_map`` has no batched rule for convolutions (it falls back to a while loop
    that is slower than a plain per-point loop); for Dense-like models it is many times faster.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")
    if strategy != "auto":
        return strategy
    if any(_is_conv_or_recurrent(i.layer) for i in iter_layers(model)):
        return "per_point"
    return "vectorized"


def activation_floats(model: Any) -> int:
    """Floats of activations per example: the sum of all layer output sizes (a memory estimate)."""
    total = 0
    for info in iter_layers(model):
        shape = info.output_shape
        if shape:
            total += int(np.prod([s or 1 for s in shape[1:]], dtype=np.int64))
    for inp in getattr(model, "inputs", None) or []:
        total += int(np.prod([s or 1 for s in tuple(inp.shape)[1:]], dtype=np.int64))
    return max(total, 64)


def available_memory() -> int:
    """Bytes of memory available now (psutil, else /proc/meminfo, else 2 GiB)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 * 2**30


# A vectorized chunk's working set (still capped by a quarter of the free memory). Measured on
# the seed MLP at N=8192: 1.17 s for a 30x30 grid at 256 MiB, 1.03 s at 1 GiB, flat above.
CHUNK_BYTES = 1024 * 2**20
MIN_CHUNK = 8  # the default batch shrinks so that at least this many points fit a chunk


def plan_sizes(
    n_examples: int,
    act_floats: int,
    perturbed_params: int,
    strategy: str,
    budget: int,
    batch_size: int | None,
    max_chunk: int,
) -> tuple[int, int]:
    """``(batch_size, chunk)`` for a vectorized chunk of ``chunk`` grid points.

    A vectorized grid point holds its own weights and its activations for a batch; a chunk of
    K points holds K of them at once. K is sized to ``min(budget, CHUNK_BYTES)``: larger
    chunks are no faster (measured: compute-bound), only slower to start, to show their
    first cells and to allocate. The per-point strategy needs one point at a time.
    """
    per_example = 4 * 3 * act_floats  # activations, their copies and temporaries
    target = max(1, min(int(budget), CHUNK_BYTES))
    if batch_size is None:
        batch_size = 8192 if strategy == "vectorized" else 256
        want_points = MIN_CHUNK if strategy == "vectorized" else 1
        batch_size = min(batch_size, max(1, target // (want_points * per_example)))
    batch_size = max(1, min(int(batch_size), n_examples))
    if strategy != "vectorized":
        return batch_size, max_chunk
    per_point = 4 * 2 * perturbed_params + batch_size * per_example
    return batch_size, int(max(1, min(max_chunk, target // per_point)))


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _variables_signature(model: Any) -> tuple:
    return tuple(id(v) for v in model.weights) + tuple(id(v) for v in model.non_trainable_variables)


def get_forward(model: Any) -> ModelForward:
    """The cached :class:`ModelForward` of ``model`` (rebuilt, with its compiled functions
    dropped, if the model's variables changed since, e.g. after adding a layer)."""
    signature = _variables_signature(model)
    with _CACHE_LOCK:
        entry = _CACHE.setdefault(model, {})
        if entry.get("signature") != signature:
            entry.clear()
            entry["signature"] = signature
            entry["forward"] = ModelForward(model)
        return entry["forward"]


def prepare_for_background(model: Any) -> None:
    """Build ``model``'s cached forward pass on the calling thread, before a worker uses it.

    The forward pass copies the model's extra, non-weight state (RNG seeds, metric state) once
    when it is built. Building it on the thread that owns the model (the kernel, or the
    training thread in a callback, before any step) means background threads only ever read
    that frozen copy and the weight snapshots they are given, never the live variables.
    Call it before handing a model to a :class:`~nbviz.worker.Worker` job.
    """
    get_forward(model)


def cached_probe(
    model: Any, origin: list, x: Any, y: Any, loss: ExampleFn, metrics: Sequence[Any]
) -> tuple[tuple, bool, list[ExampleFn], int]:
    """:func:`probe`, remembered per model, loss, metrics and data shapes (an eager call of
    the model costs more than a small warm grid)."""
    forward = get_forward(model)
    try:
        key = ("probe", loss, tuple(metrics), spec(x), spec(y))
        hash(key)
    except TypeError:  # unhashable metrics: probe every time
        return probe(forward, origin, x, y, loss, metrics)
    with _CACHE_LOCK:
        found = _CACHE.setdefault(model, {}).get(key)
    if found is None:
        found = probe(forward, origin, x, y, loss, metrics)
        with _CACHE_LOCK:
            _CACHE.setdefault(model, {})[key] = found
    return found


def get_evaluator(
    model: Any,
    shapes: Sequence[tuple],
    perturbed_idx: Sequence[int],
    loss: ExampleFn,
    metrics: Sequence[ExampleFn],
    per_example_loss: bool,
    strategy: str,
    jit_compile: bool,
    regularization: bool = True,
) -> GridEvaluator:
    """A cached :class:`GridEvaluator` (same model and settings reuse the compiled function)."""
    key = (
        tuple(perturbed_idx),
        loss,
        tuple(metrics),
        per_example_loss,
        strategy,
        jit_compile,
        regularization,
    )
    forward = get_forward(model)
    with _CACHE_LOCK:
        entry = _CACHE.setdefault(model, {})
        if key not in entry:
            entry[key] = GridEvaluator(
                forward,
                shapes,
                perturbed_idx,
                loss,
                metrics,
                per_example_loss,
                strategy,
                jit_compile,
                regularization,
            )
        return entry[key]
