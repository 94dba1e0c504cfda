"""Has the model's weights changed? A cheap fingerprint of a model's live variables.

Results computed from a model (cached activations, a landscape's origin) go stale when its
weights change: ``fit``, ``set_weights``, ``load_weights``, ``variable.assign``. Hashing every
weight on every cached slider step would cost tens of milliseconds on VGG16 (138 M floats), so
the fingerprint reads a fixed sample of elements of every weight (``SAMPLES`` per tensor, all
of the small ones) plus the optimizer's step counter, in one compiled ``tf.function``: about
0.4 ms on VGG16 (``benchmarks/feature_maps.py --fingerprint``). Training changes every weight
and ``set_weights`` / ``load_weights`` / ``assign`` rewrite whole tensors, so a change shows in
the sample; an edit of single elements outside it (``v[3, 4].assign(...)``) is missed, and
``FeatureMaps.clear_cache()`` is the way to force a recompute then.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._tf import require_tensorflow

SAMPLES = 16  # elements read per weight tensor


def sample_positions(shape: Sequence[int], samples: int = SAMPLES) -> np.ndarray:
    """Flat positions sampled from a tensor of ``shape``: every element of a small tensor,
    else ``samples`` spread over it (seeded by its size, so they are stable)."""
    n = int(np.prod(shape, dtype=np.int64))
    if n <= samples:
        return np.arange(n, dtype=np.int64)
    spread = np.linspace(0, n - 1, samples // 2).astype(np.int64)
    rng = np.random.default_rng(n)
    return np.unique(np.concatenate([spread, rng.integers(0, n, samples - len(spread))]))


class WeightFingerprint:
    """A sample of ``model.weights`` (and the optimizer's step count) read in one call.

    :meth:`current` is the model's fingerprint now; :meth:`of_weights` the same fingerprint
    of numpy weights in ``model.weights`` order (e.g. a stored origin); :meth:`changed` says
    whether the model changed since the previous call.
    """

    def __init__(self, model: Any, samples: int = SAMPLES) -> None:
        self._model = weakref.ref(model)  # shared per model (fingerprint_of): never keep it alive
        self.samples = int(samples)
        self._lock = threading.Lock()
        self._signature: tuple = ()
        self._fn: Any = None
        self._positions: list[np.ndarray] = []
        self._last: bytes | None = None

    def _variables(self) -> tuple[list[Any], Any]:
        model = self._model()
        if model is None:
            return [], None
        optimizer = getattr(model, "optimizer", None)
        step = getattr(optimizer, "iterations", None) if optimizer is not None else None
        return list(model.weights), step

    def _build(self, variables: list[Any], step: Any) -> None:
        tf = require_tensorflow()
        self._positions = [sample_positions(tuple(v.shape), self.samples) for v in variables]
        indices = [
            tf.constant(
                np.stack(np.unravel_index(p, tuple(v.shape)), axis=-1).astype(np.int64)
                if len(v.shape)
                else np.zeros((len(p), 0), np.int64)
            )
            for v, p in zip(variables, self._positions, strict=True)
        ]
        live = [getattr(v, "value", v) for v in variables]
        step_var = getattr(step, "value", step)

        def read() -> tuple[Any, Any]:
            parts = [
                tf.reshape(tf.cast(tf.gather_nd(v, i), tf.float64), [-1])
                for v, i in zip(live, indices, strict=True)
                if i.shape[0]
            ]
            sample = tf.concat(parts, 0) if parts else tf.zeros((0,), tf.float64)
            count = (
                tf.zeros((0,), tf.float64)
                if step_var is None
                else tf.reshape(tf.cast(step_var, tf.float64), [-1])
            )
            return sample, count

        self._fn = tf.function(read, autograph=False)

    def _read(self) -> tuple[tuple, np.ndarray, np.ndarray]:
        variables, step = self._variables()
        signature = tuple(id(v) for v in variables) + (id(step),)
        with self._lock:
            if signature != self._signature:
                self._build(variables, step)
                self._signature = signature
                self._last = None
            fn = self._fn
        sample, count = fn()
        return signature, sample.numpy(), count.numpy()

    def current(self) -> bytes:
        """The fingerprint of the model's weights now (bytes; equal bytes: same weights)."""
        signature, sample, count = self._read()
        return repr(signature).encode() + sample.tobytes() + count.tobytes()

    def matches(self, weights: Sequence[Any]) -> bool:
        """Whether the model's live weights equal ``weights`` (arrays in ``model.weights``
        order) at the sampled elements: False means they certainly differ."""
        _, sample, _ = self._read()
        if len(weights) != len(self._positions):
            return False
        parts = [
            np.asarray(w).reshape(-1)[p].astype(np.float64)
            for w, p in zip(weights, self._positions, strict=True)
            if len(p)
        ]
        theirs = np.concatenate(parts) if parts else np.zeros(0)
        return theirs.shape == sample.shape and theirs.tobytes() == sample.tobytes()

    def changed(self) -> bool:
        """Whether the weights changed since the previous call (False on the first call)."""
        now = self.current()
        with self._lock:
            before, self._last = self._last, now
        return before is not None and before != now


_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


def fingerprint_of(model: Any) -> WeightFingerprint:
    """A :class:`WeightFingerprint` of ``model`` shared by callers that only use
    :meth:`~WeightFingerprint.current` / :meth:`~WeightFingerprint.matches` (its compiled
    reader is built once per model)."""
    with _SHARED_LOCK:
        fp = _SHARED.get(model)
        if fp is None:
            fp = _SHARED[model] = WeightFingerprint(model)
        return fp
