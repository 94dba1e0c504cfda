"""Data for grid evaluation: shape checks against the model, a seeded subset, fixed-size batches.

Every batch has the same shape (the last one is padded by repeating examples, with a 0/1
mask), so a compiled evaluation function is traced once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._tf import require_tensorflow
from ..errors import DataError


def _leaves(x: Any) -> list[np.ndarray]:
    if isinstance(x, dict):
        return [a for k in sorted(x) for a in _leaves(x[k])]
    if isinstance(x, (list, tuple)):
        return [a for item in x for a in _leaves(item)]
    return [x]


def _map(fn, x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _map(fn, v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_map(fn, v) for v in x)
    return fn(x)


def _as_array(a: Any) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype == object:
        raise DataError(f"Data must be numeric arrays, got an object array of shape {arr.shape}.")
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return arr


def _one_array(value: Any, slots: int) -> Any:
    """Python lists for a single-input (or single-output) model are one array of examples
    (``x.tolist()``), not one array per input; ``[array]`` stays a list of one input."""
    if slots != 1 or not isinstance(value, (list, tuple)) or not value:
        return value
    if len(value) == 1 and hasattr(value[0], "shape") and np.ndim(value[0]) >= 1:
        return value
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged
        raise DataError(
            f"The list of {len(value)} examples is ragged ({str(exc).splitlines()[0]}). Fix: "
            "pass one numpy array with a leading example axis, every example the same shape."
        ) from None
    return arr if arr.dtype != object else value


def check_data(model: Any, x: Any, y: Any) -> tuple[Any, Any, int]:
    """Numpy copies of ``x`` and ``y`` (floats as float32) and the example count.

    Raises :class:`DataError` saying what was expected and what came when the shapes do not
    fit the model's input or ``x`` and ``y`` have different lengths.
    """
    if x is None or y is None:
        raise DataError("Both x and y are needed to compute a loss. Fix: pass x=inputs, y=targets.")
    if hasattr(x, "element_spec") or hasattr(y, "element_spec"):
        raise DataError(
            "x/y must be arrays, not a tf.data.Dataset. Fix: take a fixed sample, e.g. "
            "x, y = map(np.concatenate, zip(*ds.take(8).as_numpy_iterator()))."
        )
    try:
        inputs = list(model.inputs or [])
        outputs = list(model.outputs or [None])
    except (AttributeError, ValueError):  # a subclassed model: its call() takes x as given
        inputs, outputs = [], [None]
    x = _map(_as_array, _one_array(x, len(inputs)))
    y = _map(_as_array, _one_array(y, len(outputs)))
    xs, ys = _leaves(x), _leaves(y)
    if any(a.ndim == 0 for a in xs + ys):
        raise DataError(
            "x and y need a leading example axis; got a scalar. Fix: pass arrays of shape "
            "(n_examples, ...), e.g. np.asarray(x)[:, None] for one value per example."
        )
    n = len(xs[0])
    lengths = {len(a) for a in xs + ys}
    if len(lengths) != 1:
        raise DataError(
            f"x and y must have the same number of examples; got lengths {sorted(lengths)} "
            f"(x shapes {[a.shape for a in xs]}, y shapes {[a.shape for a in ys]})."
        )
    if n == 0:
        raise DataError("x and y are empty. Fix: pass at least one example.")
    if not inputs and not model.weights:
        raise DataError(
            f"Model {model.name!r} has no weights yet (a subclassed model builds them on its "
            "first call). Fix: call it once on a batch, e.g. model(x[:1]), or train it first."
        )
    if inputs and len(inputs) != len(xs):
        raise DataError(
            f"Model {model.name!r} has {len(inputs)} input(s) but x has {len(xs)} array(s). "
            "Fix: pass one array per model input."
        )
    for inp, a in zip(inputs, xs if inputs else [], strict=True):
        want = tuple(inp.shape)[1:]
        got = a.shape[1:]
        if len(want) != len(got) or any(
            w is not None and w != g for w, g in zip(want, got, strict=True)
        ):
            expected = "(N, " + ", ".join("?" if w is None else str(w) for w in want) + ")"
            raise DataError(
                f"x does not fit model {model.name!r}: expected shape {expected} (its input "
                f"{inp.name!r} is {tuple(inp.shape)}), got {a.shape}. Fix: reshape or "
                "preprocess x to the model's input shape."
            )
    return x, y, n


def subset_indices(n: int, subset: int | float | None, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded random subset (``subset`` examples, or that fraction)."""
    if subset is None:
        return None
    if isinstance(subset, float) and subset <= 1.0:  # a fraction of the data
        if subset <= 0:
            raise DataError(f"A subset fraction must be in (0, 1], got {subset}.")
        k = max(1, int(round(subset * n)))
    else:
        if isinstance(subset, float) and not subset.is_integer():
            raise DataError(
                f"subset={subset} is neither a fraction in (0, 1] nor a whole number of examples. "
                f"Fix: pass e.g. subset=0.5 for half the data or subset={int(subset)} examples."
            )
        k = int(subset)
        if k < 1:
            raise DataError(f"subset must be >= 1 example (or a fraction in (0, 1]), got {subset}.")
    if k >= n:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=k, replace=False))


def take(x: Any, idx: np.ndarray | None) -> Any:
    return x if idx is None else _map(lambda a: a[idx], x)


def checked_subset(
    model: Any, x: Any, y: Any, subset: int | float | None, seed: int
) -> tuple[Any, Any, int, np.ndarray | None]:
    """:func:`check_data`, then the seeded subset: ``(x, y, n_total, indices or None)``."""
    x, y, n_total = check_data(model, x, y)
    idx = subset_indices(n_total, subset, seed)
    return take(x, idx), take(y, idx), n_total, idx


def spec(x: Any) -> tuple:
    """Shapes and dtypes of the arrays in ``x`` (a hashable description)."""
    return tuple((np.shape(a), np.asarray(a).dtype.str) for a in _leaves(x))


def fingerprint(x: Any, y: Any) -> str:
    """A short hash of the data actually evaluated (stored with surfaces, checked on resume)."""
    h = hashlib.sha256()
    for a in _leaves(x) + _leaves(y):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def align_targets(y: Any, out_shape: tuple) -> Any:
    """Give (N,) targets a trailing axis when the model outputs (N, 1), so that losses return
    one value per example instead of reducing over the batch."""
    if isinstance(y, np.ndarray) and y.ndim == len(out_shape) - 1 and out_shape[-1] == 1:
        return y[..., None]
    return y


@dataclass
class Batches:
    """Fixed-shape tensors of the data: ``items`` is a list of (x, y, mask) per batch."""

    items: list[tuple[Any, Any, Any]]
    n_examples: int
    batch_size: int

    def __len__(self) -> int:
        return len(self.items)


def make_batches(x: Any, y: Any, n: int, batch_size: int, pad: bool = True) -> Batches:
    """Split into batches of ``batch_size``; pad the last (repeat examples, mask 0) if ``pad``."""
    tf = require_tensorflow()
    batch_size = max(1, min(int(batch_size), n))
    items = []
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        idx = np.arange(start, stop)
        mask = np.ones(batch_size if pad else len(idx), dtype=np.float32)
        if pad and len(idx) < batch_size:
            mask[len(idx) :] = 0.0
            idx = np.concatenate([idx, np.resize(idx, batch_size - len(idx))])
        items.append(
            (
                _map(lambda a, i=idx: tf.constant(a[i]), x),
                _map(lambda a, i=idx: tf.constant(a[i]), y),
                tf.constant(mask),
            )
        )
    return Batches(items, n, batch_size)
