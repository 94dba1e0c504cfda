"""Transport for loss grids on many workers: a ``dask.distributed`` Client or any
``concurrent.futures.Executor``. A leaf: it uses the grid plan (:mod:`.plan`) and never imports
the grid driver (:mod:`.grid`) back; the entry points from a model source live in
:mod:`.distributed`.

The driver (the process that calls :func:`~nbviz.landscape.iter_grid` with ``executor=``, or
:func:`iter_grid_distributed`) plans the run exactly like a single-process grid (loss, data
subset, batch size, strategy), splits the missing cells into chunks and keeps a few chunks
per worker in flight. Each worker process loads the model once (from a ``.keras`` file, a
picklable zero-argument builder, or the driver model's architecture), caches it with its
compiled evaluator, and evaluates chunks statelessly: a chunk's answer is the raw loss sums of
its points. Only the architecture matters on a worker -- the weights come with the
:class:`~nbviz.landscape.Directions` (their origin), shipped as numpy arrays with the data:
once per worker with dask (``scatter(broadcast=True)``), with every chunk for a plain executor.

Finished chunks come back in any order and are written to the resumable surface file as they
arrive. A chunk whose worker fails (killed process, lost connection...) is resubmitted up to
``retries`` times, so a lost worker costs at most its in-flight chunks; nbviz errors (bad data,
wrong model) are raised at once. Example::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")
    surface = evaluate_grid_distributed("model.keras", x, y, directions, xs, ys, client,
                                        store="surface.h5")
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import pickle
import queue
import threading
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._tf import require_keras
from ..errors import DistributedError, ModelError, NbvizError
from .directions import Directions
from .losses import resolve_loss
from .plan import GridRun, GridSettings

PER_POINT_MAX_CHUNK = 16  # per-point chunks: a lost worker loses at most this many points
CHUNKS_PER_WORKER = 4  # automatic chunk size: about this many chunks per worker thread
IN_FLIGHT_PER_WORKER = 2  # chunks queued per worker thread (stop and retries stay prompt)
CACHE_SIZE = 2  # models / prepared runs a worker process keeps


# -- where the model comes from -------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSource:
    """How a worker gets the model: ``kind`` is ``"file"``, ``"builder"`` or ``"config"``."""

    kind: str
    value: Any
    key: str  # identifies the architecture (cache key on workers)

    @classmethod
    def of(cls, source: Any) -> ModelSource:
        """A ``.keras`` path, a picklable zero-argument builder, or a Keras model (its
        architecture and compile settings travel as a config; custom layers must be
        registered with ``keras.saving.register_keras_serializable`` where workers import them)."""
        if isinstance(source, ModelSource):
            return source
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if path.suffix != ".keras":
                raise ModelError(
                    f"model_source {os.fspath(source)!r} is not a .keras file. Fix: save the "
                    "model with model.save('model.keras'), or pass a builder function."
                )
            if not path.is_file():
                raise ModelError(
                    f"No model file at {os.fspath(source)!r}. Fix: check the path; workers "
                    "need it at the same path too (a shared filesystem), or pass a builder."
                )
            stat = path.stat()
            key = f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
            return cls("file", os.fspath(path.resolve()), key)
        keras = require_keras()
        if isinstance(source, keras.Model):
            try:
                config = keras.saving.serialize_keras_object(source)
                blob = pickle.dumps(config)
            except Exception as exc:  # noqa: BLE001 - any failure: the architecture cannot travel
                raise ModelError(
                    f"Model {source.name!r} cannot be serialized for the workers "
                    f"({type(exc).__name__}: {exc}). Fix: pass model_source= a .keras file or a "
                    "picklable function that builds and compiles the model."
                ) from exc
            return cls("config", config, "config:" + hashlib.sha256(blob).hexdigest()[:16])
        if callable(source):
            return cls("builder", source, "builder:" + _pickle_hash(source))
        raise ModelError(
            f"model_source must be a .keras path, a zero-argument builder or a Keras model, got "
            f"{type(source).__name__}."
        )

    def load(self) -> Any:
        """Build the model (on a worker, or on the driver for planning)."""
        keras = require_keras()
        if self.kind == "file":
            if not Path(self.value).is_file():
                raise ModelError(
                    f"Model file {self.value!r} is not reachable on worker process {os.getpid()}. "
                    "Fix: put it on a filesystem every worker sees (same path), or pass "
                    "model_source= a builder function."
                )
            with warnings.catch_warnings():  # the optimizer's state is irrelevant here
                warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
                return keras.models.load_model(self.value)
        if self.kind == "config":
            try:
                # A copy: deserializing consumes the dict, which other tasks (and workers
                # fetching it from this one) still need.
                return keras.saving.deserialize_keras_object(copy.deepcopy(self.value))
            except Exception as exc:  # noqa: BLE001
                raise ModelError(
                    f"The model's architecture could not be rebuilt on worker process "
                    f"{os.getpid()} ({type(exc).__name__}: {exc}). Fix: register custom layers "
                    "in a module the workers import, or pass model_source= a builder function."
                ) from exc
        model = self.value()
        if not isinstance(model, keras.Model):
            raise ModelError(
                f"The model builder {self.value!r} returned {type(model).__name__}, not a Keras "
                "model. Fix: return the built and compiled model."
            )
        return model


def _pickle_hash(obj: Any) -> str:
    try:
        blob = pickle.dumps(obj)
    except Exception:  # noqa: BLE001 - lambdas and closures: dask ships them with cloudpickle
        try:
            import cloudpickle
        except ImportError:
            raise ModelError(
                f"The model builder {obj!r} cannot be pickled. Fix: define it at module level "
                "(importable by the workers), or install cloudpickle."
            ) from None
        blob = cloudpickle.dumps(obj)
    return hashlib.sha256(blob).hexdigest()[:16]


# -- what a worker needs, and the worker's side ---------------------------------------------------
@dataclass
class Job:
    """Everything a worker needs to evaluate chunks of one grid (plain numpy and settings)."""

    source: ModelSource
    x: Any
    y: Any
    directions: Directions
    settings: GridSettings  # the driver's plan, with no subset left to draw
    loss_name: str
    token: str = ""  # identifies the prepared run (cache key on workers)


_MODELS: OrderedDict[str, Any] = OrderedDict()
_RUNS: OrderedDict[str, GridRun] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_COUNTS = {"models_loaded": 0, "runs_prepared": 0, "chunks": 0}


def _remember(cache: OrderedDict, key: str, make: Callable[[], Any]) -> Any:
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = make()
    while len(cache) > CACHE_SIZE:
        cache.popitem(last=False)
    return value


def _load_model(source: ModelSource) -> Any:
    _COUNTS["models_loaded"] += 1
    return source.load()


def _prepare_job(job: Job) -> GridRun:
    model = _remember(_MODELS, job.source.key, lambda: _load_model(job.source))
    name = resolve_loss(model, job.settings.loss).name
    if name != job.loss_name:
        raise ModelError(
            f"The workers' model computes the loss {name!r}, the driver's {job.loss_name!r}. "
            "Fix: pass loss= explicitly, or a model_source compiled like the driver's model."
        )
    _COUNTS["runs_prepared"] += 1
    return GridRun.prepare(model, job.x, job.y, job.directions, job.settings)


def evaluate_chunk(job: Job, coords: np.ndarray) -> np.ndarray:
    """Raw stats ``(n_points, n_stats)`` of the grid points ``coords`` (n_points, 2).

    Runs on a worker: the model and compiled evaluator are built once per process and job
    (cached), then each call is stateless. Columns: sum of the loss, sum of its square, the
    regularization loss per batch times its examples, then the sum of each metric, over all
    examples (the driver turns them into means).
    """
    with _CACHE_LOCK:  # one thread builds; dask workers may run several tasks at once
        run = _remember(_RUNS, job.token, lambda: _prepare_job(job))
    coords = np.asarray(coords, dtype=float)
    parts = [stats for _, stats in run.chunks(coords, np.arange(len(coords)), None)]
    _COUNTS["chunks"] += 1
    return np.concatenate(parts) if parts else np.zeros((0, run.evaluator.n_stats))


def worker_info() -> dict[str, int]:
    """This process' pid and how many models it loaded, runs it prepared and chunks it ran
    (``client.run(worker_info)`` shows it for every dask worker)."""
    return {"pid": os.getpid(), **_COUNTS}


def clear_worker_cache() -> None:
    """Drop this process' cached models and prepared runs (``client.run(clear_worker_cache)``)."""
    with _CACHE_LOCK:
        _MODELS.clear()
        _RUNS.clear()


def driver_model(model_source: Any) -> tuple[Any, ModelSource]:
    """The driver's own model (built once and cached for a file or builder) and its source."""
    keras = require_keras()
    if isinstance(model_source, keras.Model):
        return model_source, ModelSource.of(model_source)
    source = ModelSource.of(model_source)
    with _CACHE_LOCK:
        model = _remember(_MODELS, source.key, lambda: _load_model(source))
    return model, source


# -- executors --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Remote:
    """An executor plus how to use it; pass it (or a bare executor) as ``executor=``.

    ``executor``: a ``dask.distributed.Client`` or any ``concurrent.futures.Executor`` (use a
    ``spawn`` multiprocessing context for process pools: TensorFlow is not fork-safe).
    ``model_source``: what workers build the model from (a ``.keras`` path, a picklable
    zero-argument builder, or a Keras model); None ships the driver model's architecture.
    ``chunk_size``: grid points per task (default: about 4 chunks per worker thread, at most
    16 for convnets). ``retries``: resubmissions of a chunk whose worker failed.
    ``max_in_flight``: chunks queued at once (default 2 per worker thread).
    """

    executor: Any
    model_source: Any = None
    chunk_size: int | None = None
    retries: int = 3
    max_in_flight: int | None = None


def _is_dask(executor: Any) -> bool:
    return type(executor).__module__.split(".")[0] == "distributed" and hasattr(executor, "scatter")


class _Backend:
    """``submit`` / ``cancel`` over a dask Client or a concurrent.futures.Executor."""

    def __init__(self, executor: Any, job: Job) -> None:
        if not hasattr(executor, "submit"):
            raise TypeError(
                f"executor must be a dask.distributed.Client or a concurrent.futures.Executor, "
                f"got {type(executor).__name__}."
            )
        self.executor, self.job = executor, job
        self.dask = _is_dask(executor)
        self.shipped: Any = self._scatter() if self.dask else job  # a dask Future or the Job

    def _scatter(self) -> Any:
        # Once per worker; workers that join later fetch it from a peer.
        return self.executor.scatter(self.job, broadcast=True, hash=False)

    def workers(self) -> int:
        if self.dask:
            return max(1, sum(self.executor.nthreads().values()))
        return max(1, int(getattr(self.executor, "_max_workers", 0) or os.cpu_count() or 1))

    def submit(self, coords: np.ndarray) -> Any:
        if self.dask:
            return self.executor.submit(evaluate_chunk, self.shipped, coords, pure=False)
        return self.executor.submit(evaluate_chunk, self.shipped, coords)

    def refresh(self) -> None:
        """Before a retry: scatter the job again if every worker holding it was lost."""
        if self.dask and self.shipped.status != "finished":
            self.shipped = self._scatter()

    def cancel(self, futures: list) -> None:
        if self.dask:
            if futures:
                self.executor.cancel(futures)
        else:
            for f in futures:
                f.cancel()

    def close(self) -> None:
        if self.dask:
            self.shipped.release()


def _auto_chunk(run: GridRun, n_todo: int, workers: int) -> int:
    cap = run.chunk if run.evaluator.strategy == "vectorized" else PER_POINT_MAX_CHUNK
    return int(max(1, min(cap, math.ceil(n_todo / (CHUNKS_PER_WORKER * workers)))))


def _make_job(source: ModelSource, run: GridRun, directions: Directions) -> Job:
    # The workers get only the examples evaluated (the subset), with the driver's plan.
    settings = run.worker_settings()
    job = Job(source, run.x, run.y, directions, settings, run.info["loss"])
    token = hashlib.sha256(
        repr(
            (
                source.key,
                directions.hash(),
                run.info["data_fingerprint"],
                repr(settings),
            )
        ).encode()
    )
    job.token = token.hexdigest()[:24]
    return job


def remote_chunks(
    executor: Any,
    model: Any,
    run: GridRun,
    directions: Directions,
    coords: np.ndarray,
    todo: np.ndarray,
    stop_event: threading.Event | None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(cell indices, stats)`` as remote chunks finish, in any order (used by
    :func:`~nbviz.landscape.iter_grid` when it is given ``executor=``).

    Cells are taken in ``todo`` order (coarse-to-fine stays coarse first). On stop, finished
    chunks are still yielded and queued ones are cancelled. Raises :class:`DistributedError`
    when a chunk failed more than ``retries`` times or the executor cannot run tasks anymore.
    """
    remote = executor if isinstance(executor, Remote) else Remote(executor)
    if remote.retries < 0:
        raise ValueError(f"retries must be >= 0, got {remote.retries}.")
    if not len(todo):
        return
    source = ModelSource.of(model if remote.model_source is None else remote.model_source)
    job = _make_job(source, run, directions)
    backend = _Backend(remote.executor, job)
    workers = backend.workers()
    size = int(remote.chunk_size or _auto_chunk(run, len(todo), workers))
    if size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {remote.chunk_size}.")
    window = int(remote.max_in_flight or IN_FLIGHT_PER_WORKER * workers)
    pad = run.evaluator.strategy == "vectorized"  # one traced shape on the workers
    pending = deque((todo[i : i + size], 0) for i in range(0, len(todo), size))
    in_flight: dict[Any, tuple[np.ndarray, int]] = {}
    finished: queue.SimpleQueue = queue.SimpleQueue()

    def submit(cells: np.ndarray, attempt: int) -> None:
        c = coords[cells]
        if pad and len(c) < size:
            c = np.concatenate([c, np.repeat(c[-1:], size - len(c), axis=0)])
        try:
            future = backend.submit(c)
        except Exception as exc:  # noqa: BLE001 - e.g. BrokenProcessPool, a closed client
            raise DistributedError(
                f"The executor cannot run tasks anymore ({type(exc).__name__}: {exc}). A "
                "concurrent.futures process pool cannot replace a dead worker. Fix: make a new "
                "executor (or use a dask.distributed Client, whose nannies restart workers) "
                "and rerun with the same store= to compute only the missing cells."
            ) from exc
        in_flight[future] = (cells, attempt)
        future.add_done_callback(finished.put)

    def outcome(future: Any) -> tuple[np.ndarray, np.ndarray] | None:
        """The chunk's result, or None after queueing a retry."""
        cells, attempt = in_flight.pop(future)
        try:
            stats = np.asarray(future.result())
        except NbvizError:
            raise  # bad model or data: the same on every try
        except Exception as exc:  # noqa: BLE001 - a worker died, a connection dropped...
            if attempt >= remote.retries:
                raise DistributedError(
                    f"A chunk of {len(cells)} grid points failed {attempt + 1} time(s) on the "
                    f"workers; last error: {type(exc).__name__}: {exc}. Fix: check the worker "
                    "logs (can every worker import nbviz and TensorFlow, reach the model file "
                    "and hold the data in memory?), then rerun with the same store= to compute "
                    "only the missing cells; retries= allows more attempts."
                ) from exc
            backend.refresh()
            pending.appendleft((cells, attempt + 1))
            return None
        return cells, stats[: len(cells)]

    try:
        while pending or in_flight:
            if stop_event is not None and stop_event.is_set():
                for future in [f for f in in_flight if f.done()]:
                    try:
                        got = outcome(future)
                    except DistributedError:
                        continue
                    if got is not None:
                        yield got
                return
            while pending and len(in_flight) < window:
                submit(*pending.popleft())
            try:
                future = finished.get(timeout=0.1)
            except queue.Empty:
                continue
            if future in in_flight:
                got = outcome(future)
                if got is not None:
                    yield got
    finally:
        backend.cancel(list(in_flight))
        backend.close()
