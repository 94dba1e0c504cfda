"""The plan of a loss grid or line: what is measured, on which examples, in which chunks.

A grid (:func:`~nbviz.landscape.iter_grid`), a line (:func:`~nbviz.landscape.evaluate_line`)
and a worker of a distributed grid (:mod:`.remote`) all evaluate points the same way, so the
plan is one object made in one place: :class:`GridSettings` says *how* (loss, metrics, data
subset, batch and chunk sizes, strategy), :meth:`GridRun.prepare` turns settings, a model,
data and directions into a :class:`GridRun` (a compiled evaluator, the examples, the origin and
direction tensors, the chunk size), and the run then evaluates chunks of points
(:meth:`GridRun.chunks`) and turns their raw sums into losses (:meth:`GridRun.finish`). Drivers
differ only in where chunks run and where results go; this module imports none of them.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._tf import require_tensorflow
from .data import align_targets, checked_subset, fingerprint, make_batches, take
from .directions import Directions
from .evaluator import (
    N_LOSS_STATS,
    GridEvaluator,
    activation_floats,
    available_memory,
    cached_probe,
    choose_strategy,
    get_evaluator,
    plan_sizes,
)
from .losses import resolve_loss

PER_POINT_CHUNK_SECONDS = 0.5  # per-point chunks grow to about this long, for steady updates


@dataclass(frozen=True)
class GridSettings:
    """How points are evaluated: everything but the model, the data and the points.

    ``loss``/``metrics``: the model's compiled loss by default; metric names or functions.
    ``batch_size``/``memory_budget``/``max_chunk``: examples per forward pass, bytes one chunk
    may use (default a quarter of the free memory), most points evaluated at once.
    ``subset``/``seed``: a seeded random subset of the examples (a count or a fraction).
    ``strategy``/``jit_compile``: ``"vectorized"``, ``"per_point"`` or ``"auto"``; XLA by
    default for the vectorized strategy. ``regularization``: add the model's regularization
    losses, as ``model.evaluate`` does.
    """

    loss: Any = None
    metrics: tuple[Any, ...] = ()
    batch_size: int | None = None
    subset: int | float | None = None
    seed: int = 0
    strategy: str = "auto"
    jit_compile: bool | None = None
    memory_budget: int | None = None
    max_chunk: int = 256
    regularization: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))


@dataclass
class GridRun:
    """Everything prepared before the first point is evaluated (see :meth:`prepare`).

    ``x``/``y``: the examples evaluated (the subset when one was asked for), as the user
    gave them; ``n_used`` of ``n_total``. ``settings``: the settings the run was made from.
    """

    evaluator: GridEvaluator
    batches: Any
    origin: list
    dirs: list
    chunk: int
    subset: bool
    n_used: int
    n_total: int
    metric_names: list[str]
    x: Any
    y: Any
    settings: GridSettings
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def prepare(
        cls, model: Any, x: Any, y: Any, directions: Directions, settings: GridSettings
    ) -> GridRun:
        """Check the data, pick the examples, plan batch and chunk sizes, build the evaluator."""
        tf = require_tensorflow()
        s = settings
        directions.check_model(model)
        loss_fn = resolve_loss(model, s.loss)
        x, y, n_total, idx = checked_subset(model, x, y, s.subset, s.seed)
        n = n_total if idx is None else len(idx)

        origin = [tf.constant(o) for o in directions.origin]
        k = np.arange(min(n, 2))
        out_shape, per_ex, metric_fns, n_reg = cached_probe(
            model, origin, take(x, k), take(y, k), loss_fn, s.metrics
        )
        aligned = align_targets(y, out_shape)
        perturbed = [i for i, p in enumerate(directions.perturbed()) if p]
        strategy = choose_strategy(model, s.strategy)
        jit_compile = strategy == "vectorized" if s.jit_compile is None else s.jit_compile
        budget = int(s.memory_budget) if s.memory_budget else available_memory() // 4
        n_perturbed = int(sum(directions.layout.tensors[i].size for i in perturbed))
        bs, chunk = plan_sizes(
            n, activation_floats(model), n_perturbed, strategy, budget, s.batch_size, s.max_chunk
        )
        # A loss that reduces over the batch cannot mask padding: batches must be exact.
        batches = make_batches(x, aligned, n, bs, pad=per_ex)
        evaluator = get_evaluator(
            model,
            directions.layout.shapes,
            perturbed,
            loss_fn,
            metric_fns,
            per_ex,
            strategy,
            bool(jit_compile),
            bool(s.regularization),
        )
        dirs = [
            tf.constant(np.stack([v[i].reshape(-1) for v in directions.vectors])) for i in perturbed
        ]
        info = {
            "loss": loss_fn.name,
            "metrics": [m.name for m in metric_fns],
            "data_fingerprint": fingerprint(x, aligned),
            "n_examples": int(n),
            "n_total": int(n_total),
            "subset": None if idx is None else int(n),
            "subset_seed": None if idx is None else int(s.seed),
            "batch_size": int(batches.batch_size),
            "strategy": strategy,
            "chunk": int(chunk),
            "per_example_loss": bool(per_ex),
            # The loss includes the model's regularization losses (as model.evaluate does)
            # when "regularization" is true and the model has any ("regularization_terms").
            "regularization": bool(s.regularization),
            "regularization_terms": int(n_reg),
        }
        return cls(
            evaluator,
            batches,
            origin,
            dirs,
            chunk,
            idx is not None,
            n,
            n_total,
            [m.name for m in metric_fns],
            x,
            y,
            settings,
            info,
        )

    def worker_settings(self) -> GridSettings:
        """Settings that reproduce this plan on the examples :attr:`x`, :attr:`y` alone (what
        a remote worker is given: no subset to draw, sizes already chosen)."""
        return dataclasses.replace(
            self.settings, batch_size=int(self.batches.batch_size), subset=None, seed=0,
            strategy=self.evaluator.strategy, jit_compile=self.evaluator.jit_compile,
            memory_budget=None, max_chunk=int(self.chunk),
        )  # fmt: skip

    def finish(
        self, stats: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
        """Means (non-finite -> NaN), metric means and the standard error from summed stats.

        The loss is the data loss's mean plus the regularization loss (exact: no standard
        error).
        """
        n = self.n_used
        with np.errstate(invalid="ignore", over="ignore"):
            mean = stats[:, 0] / n
            total = mean + stats[:, 2] / n
            loss = np.where(np.isfinite(total), total, np.nan)
            metrics = {}
            for j, name in enumerate(self.metric_names):
                v = stats[:, N_LOSS_STATS + j] / n
                metrics[name] = np.where(np.isfinite(v), v, np.nan)
            stderr = None
            if self.subset:
                if n > 1:
                    var = np.maximum(stats[:, 1] / n - mean**2, 0.0) * n / (n - 1)
                    stderr = np.sqrt(var / n * (1.0 - n / self.n_total))
                else:
                    stderr = np.full(len(stats), np.nan)
        return loss, metrics, stderr

    def chunks(
        self,
        coords: np.ndarray,
        todo: Sequence[int] | np.ndarray,
        stop_event: threading.Event | None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(cell indices, stats)`` chunk by chunk over ``todo`` (indices into coords)."""
        ev = self.evaluator
        todo = np.asarray(todo)
        if not len(todo):
            return
        if ev.strategy == "vectorized":
            n_chunks = max(1, math.ceil(len(todo) / self.chunk))
            size = math.ceil(len(todo) / n_chunks)  # equal chunks: one trace, no padding waste
            for start in range(0, len(todo), size):
                if stop_event is not None and stop_event.is_set():
                    return
                cells = todo[start : start + size]
                c = coords[cells]
                if len(c) < size:  # pad to the traced shape
                    c = np.concatenate([c, np.repeat(c[-1:], size - len(c), axis=0)])
                yield cells, ev.evaluate(c, self.origin, self.dirs, self.batches)[: len(cells)]
            return
        size, start = 1, 0
        while start < len(todo):
            if stop_event is not None and stop_event.is_set():
                return
            cells = todo[start : start + size]
            t0 = time.perf_counter()
            stats = ev.evaluate(coords[cells], self.origin, self.dirs, self.batches, stop_event)
            per_point = (time.perf_counter() - t0) / max(len(stats), 1)
            yield cells[: len(stats)], stats
            start += len(stats)
            size = int(min(self.chunk, max(1, PER_POINT_CHUNK_SECONDS // max(per_point, 1e-6))))
