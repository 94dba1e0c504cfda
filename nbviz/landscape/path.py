"""Training paths: record the weights during ``fit`` and project them onto a plane.

:class:`WeightPathRecorder` is a Keras callback that copies the weights every ``k`` batches
into a preallocated float32 (n, n_params) store with a memory budget; past the budget it
thins the path (keeps every other snapshot and doubles the stride) or spills it to a file on
disk. It only *reads* the weights, and other threads (a widget) may read the path while
``fit`` runs. :func:`project_path` gives least-squares plane coordinates of any path and the
part of each step that lies off the plane.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._tf import require_keras
from ..errors import PathError
from .directions import Directions
from .weights import WeightLayout

keras = require_keras()
_KerasCallback: Any = keras.callbacks.Callback  # Keras is untyped: a plain base for mypy

OVERFLOW_MODES = ("thin", "spill")


class WeightPathRecorder(_KerasCallback):
    """Record ``model.weights`` (flat float32) every ``every_k_batches`` training batches.

    Parameters
    ----------
    every_k_batches:
        Record after every k-th batch (counted over all epochs and ``fit`` calls).
    memory_budget_mb:
        Size of the in-memory store; its row count is ``budget // (4 * n_params)``.
    overflow:
        What to do when the store is full: ``"thin"`` keeps every other snapshot and doubles
        the stride (memory stays bounded); ``"spill"`` moves the path to a file on disk
        (``spill_dir`` or the temp dir) that grows as needed.
    record_initial, record_final:
        Also record the weights at the start of training (step 0) and at the end.

    Notes
    -----
    Reading (thread-safe, copies): :meth:`snapshots`, :attr:`steps`, :meth:`latest`, ``len()``.
    ``generation`` increases whenever earlier rows change (thinning), so an incremental
    reader knows to re-read from row 0.
    """

    def __init__(
        self,
        every_k_batches: int = 1,
        memory_budget_mb: float = 256.0,
        overflow: str = "thin",
        spill_dir: str | os.PathLike | None = None,
        record_initial: bool = True,
        record_final: bool = True,
    ) -> None:
        super().__init__()
        if int(every_k_batches) < 1:
            raise PathError(f"every_k_batches must be >= 1, got {every_k_batches}.")
        if overflow not in OVERFLOW_MODES:
            raise PathError(f"overflow must be one of {OVERFLOW_MODES}, got {overflow!r}.")
        self.every_k_batches = int(every_k_batches)
        self.memory_budget_mb = float(memory_budget_mb)
        self.overflow = overflow
        self.spill_dir = spill_dir
        self.record_initial = record_initial
        self.record_final = record_final
        self._lock = threading.Lock()
        self.layout: WeightLayout | None = None
        self._store: np.ndarray | None = None
        self._steps = np.zeros(0, dtype=np.int64)
        self._n = 0
        self._batches = 0
        self.stride = self.every_k_batches
        self.generation = 0
        self.spill_path: str | None = None
        self._variables: list = []

    # -- Keras hooks -------------------------------------------------------------------------
    def on_train_begin(self, logs: dict | None = None) -> None:
        layout = WeightLayout.from_model(self.model)
        if self.layout is not None and not self.layout.matches(layout):
            raise PathError(
                f"This recorder holds a path of model {self.layout.model_name!r}; it cannot "
                f"record model {layout.model_name!r} (other weight shapes). Fix: use a new "
                "WeightPathRecorder for each model, or call recorder.reset()."
            )
        if self._store is None:
            self._allocate(layout)
        self._variables = list(self.model.weights)
        if self.record_initial and self._n == 0:
            self._record(self._batches)

    # Recording at the *start* of a batch (the weights after all earlier batches) keeps Keras'
    # asynchronous callback dispatch: a callback with an ``on_train_batch_end`` makes fit wait
    # for every step's logs.
    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self._batches and self._batches % self.stride == 0 and not self._recorded(self._batches):
            self._record(self._batches)
        self._batches += 1

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.record_final and not self._recorded(self._batches):
            self._record(self._batches)

    def _recorded(self, step: int) -> bool:
        return self._n > 0 and self._steps[self._n - 1] == step

    # -- storage -----------------------------------------------------------------------------
    def _allocate(self, layout: WeightLayout) -> None:
        rows = int(self.memory_budget_mb * 2**20 // (4 * layout.n_params))
        if rows < 4:
            raise PathError(
                f"memory_budget_mb={self.memory_budget_mb} holds only {rows} snapshots of "
                f"model {layout.model_name!r} ({layout.n_params} parameters, "
                f"{4 * layout.n_params / 2**20:.1f} MiB each). Fix: raise memory_budget_mb "
                f"to at least {16 * layout.n_params / 2**20:.1f}."
            )
        self.layout = layout
        self._store = np.empty((rows, layout.n_params), dtype=np.float32)
        self._steps = np.zeros(rows, dtype=np.int64)

    def _record(self, step: int) -> None:
        assert self.layout is not None and self._store is not None
        with self._lock:
            if self._n == self._store.shape[0]:
                self._make_room()
            row = self._store[self._n]
            off = self.layout.offsets
            for i, v in enumerate(self._variables):
                row[off[i] : off[i + 1]] = np.asarray(v.numpy()).reshape(-1)
            self._steps[self._n] = step
            self._n += 1

    def _make_room(self) -> None:
        assert self._store is not None  # allocated before the first record
        if self.overflow == "thin":
            keep = np.arange(0, self._n, 2)
            self._store[: len(keep)] = self._store[keep]
            self._steps[: len(keep)] = self._steps[keep]
            self._n = len(keep)
            self.stride *= 2
            self.generation += 1
            return
        self._grow_spill(2 * self._store.shape[0])

    def _grow_spill(self, rows: int) -> None:
        assert self._store is not None
        n_params = self._store.shape[1]
        if self.spill_path is None:
            fd, self.spill_path = tempfile.mkstemp(
                prefix="nbviz-path-", suffix=".f32", dir=self.spill_dir
            )
            os.close(fd)
        old = self._store
        os.truncate(self.spill_path, rows * n_params * 4)
        if isinstance(old, np.memmap):
            old.flush()
        new = np.memmap(self.spill_path, dtype=np.float32, mode="r+", shape=(rows, n_params))
        if not isinstance(old, np.memmap):
            new[: self._n] = old[: self._n]
        self._store = new
        steps = np.zeros(rows, dtype=np.int64)
        steps[: self._n] = self._steps[: self._n]
        self._steps = steps

    # -- reading -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    @property
    def steps(self) -> np.ndarray:
        """Global batch number of each snapshot (0 = before training), a copy."""
        with self._lock:
            return self._steps[: self._n].copy()

    def snapshots(self, start: int = 0) -> np.ndarray:
        """Rows ``start:`` of the (n, n_params) float32 path, a copy (safe during ``fit``)."""
        with self._lock:
            if self._store is None:
                raise PathError(
                    "Nothing recorded yet: pass the recorder to model.fit(callbacks=[...])."
                )
            return np.array(self._store[start : self._n], copy=True)

    def latest(self) -> np.ndarray:
        """The most recent snapshot (flat float32), a copy."""
        with self._lock:
            if not self._n:
                raise PathError(
                    "Nothing recorded yet: pass the recorder to model.fit(callbacks=[...])."
                )
            assert self._store is not None
            return np.array(self._store[self._n - 1], copy=True)

    @property
    def nbytes(self) -> int:
        """Bytes the store holds in memory (0 when spilled to disk)."""
        s = self._store
        return 0 if s is None or isinstance(s, np.memmap) else int(s.nbytes)

    def reset(self) -> None:
        """Forget the path (and the model it belongs to); delete any spill file."""
        with self._lock:
            self.close()
            self.layout, self._store, self._n, self._batches = None, None, 0, 0
            self._steps = np.zeros(0, dtype=np.int64)
            self.stride = self.every_k_batches
            self.generation += 1

    def close(self) -> None:
        """Delete the spill file, if any (the in-memory rows stay readable)."""
        if self.spill_path is not None:
            if isinstance(self._store, np.memmap):
                self._store = np.array(self._store[: max(self._n, 1)], copy=True)
            try:
                os.remove(self.spill_path)
            except FileNotFoundError:
                pass
            self.spill_path = None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass


# -- path helpers --------------------------------------------------------------------------------
def as_path_matrix(path: Any, layout: WeightLayout) -> np.ndarray:
    """A training path as an (n, n_params) float32 matrix; :class:`PathError` if it does not fit.

    ``path`` is a :class:`WeightPathRecorder`, an (n, n_params) array, or a sequence of
    weight lists (``model.get_weights()`` snapshots).
    """
    if isinstance(path, WeightPathRecorder):
        if path.layout is not None and not path.layout.matches(layout):
            raise PathError(
                f"The recorder holds a path of model {path.layout.model_name!r}, not of "
                f"{layout.model_name!r}. Fix: record the path of this model."
            )
        matrix = path.snapshots()
    elif isinstance(path, np.ndarray):
        if path.ndim != 2 or path.shape[1] != layout.n_params:
            raise PathError(
                f"A path array must have shape (n_snapshots, {layout.n_params}) for model "
                f"{layout.model_name!r}; got {path.shape}. Fix: flatten each snapshot in "
                "model.weights order (WeightLayout.flatten)."
            )
        matrix = path if path.dtype == np.float32 else path.astype(np.float32)
    else:
        snaps = list(path)
        matrix = np.empty((len(snaps), layout.n_params), dtype=np.float32)
        for i, s in enumerate(snaps):
            layout.check(list(s), f"path snapshot {i}", error=PathError)
            layout.flatten(list(s), out=matrix[i])
    if matrix.shape[0] == 0:
        raise PathError(
            "The path is empty. Fix: record at least two snapshots (fit for a few batches)."
        )
    if not np.all(np.isfinite(matrix)):
        bad = int(np.argmax(~np.all(np.isfinite(matrix), axis=1)))
        raise PathError(
            f"Path snapshot {bad} contains NaN or inf weights (training diverged). Fix: cut the "
            f"path before it, e.g. path[:{bad}]."
        )
    return matrix


def column_blocks(
    n_rows: int,
    n_cols: int,
    ranges: Sequence[tuple[int, int]] | None = None,
    budget_bytes: int = 2**27,
) -> list[slice]:
    """Column slices covering ``ranges`` (default all columns), each about ``budget`` bytes
    as float64 over ``n_rows`` rows: the path is processed a block at a time, never copied."""
    width = max(1024, budget_bytes // (8 * max(n_rows, 1)))
    ranges = [(0, n_cols)] if ranges is None else ranges
    return [
        slice(s, min(s + width, stop)) for start, stop in ranges for s in range(start, stop, width)
    ]


def project_path(
    path: Any, directions: Directions, origin: Sequence[np.ndarray] | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coordinates of every snapshot in the directions' frame.

    Solves ``w_i - origin ~= sum_j c_ij d_j`` for each snapshot (the seed's pseudo-inverse),
    with ``origin`` defaulting to the directions' origin. Returns ``(coords, residual)``:
    coords (n, k) and, per snapshot, the relative off-plane residual
    ``||w_i - origin - c_i D|| / ||w_i - origin||`` (0 for the origin itself; 1 = entirely
    off-plane). Only the tensors the directions move count (as in Li et al.): with the
    default directions, biases and BatchNorm statistics are ignored.
    """
    layout = directions.layout
    matrix = as_path_matrix(path, layout)
    if origin is None:
        o = directions.origin_flat()
    elif isinstance(origin, np.ndarray) and origin.ndim == 1:
        o = origin.astype(np.float32)
    else:
        o = layout.flatten(list(origin))
    a = directions.flat()
    n, k = matrix.shape[0], a.shape[0]
    blocks = column_blocks(n, layout.n_params, layout.ranges(directions.perturbed()))
    gram = np.zeros((k, k))
    rhs = np.zeros((k, n))
    for b in blocks:
        ab = a[:, b].astype(np.float64)
        gram += ab @ ab.T
        rhs += ab @ (matrix[:, b] - o[b]).T.astype(np.float64)
    if not np.any(gram):
        raise PathError("The directions are all zero; nothing to project onto.")
    coords = (np.linalg.pinv(gram) @ rhs).T
    off2 = np.zeros(n)
    norm2 = np.zeros(n)
    for b in blocks:
        d = (matrix[:, b] - o[b]).astype(np.float64)
        norm2 += np.einsum("ij,ij->i", d, d)
        d -= coords @ a[:, b].astype(np.float64)
        off2 += np.einsum("ij,ij->i", d, d)
    residual = np.divide(np.sqrt(off2), np.sqrt(norm2), out=np.zeros(n), where=norm2 > 0)
    return coords, residual
