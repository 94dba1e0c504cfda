"""Loss grids on many workers, from a model source: a ``.keras`` file, a picklable builder, or a
Keras model, evaluated by a ``dask.distributed`` Client or any ``concurrent.futures.Executor``.

The driver (the process that calls :func:`iter_grid_distributed`, or
:func:`~nbviz.landscape.iter_grid` with ``executor=``) plans the run exactly like a
single-process grid (loss, data subset, batch size, strategy), splits the missing cells into
chunks and keeps a few chunks per worker in flight. Each worker process loads the model once,
caches it with its compiled evaluator, and evaluates chunks statelessly: a chunk's answer is
the raw loss sums of its points. Only the architecture matters on a worker -- the weights come
with the :class:`~nbviz.landscape.Directions` (their origin), shipped as numpy arrays with the
data: once per worker with dask (``scatter(broadcast=True)``), with every chunk for a plain
executor. The transport (workers, retries, executors) is :mod:`.remote`; this module only adds
the entry points. Example::

    from dask.distributed import Client
    client = Client("tcp://scheduler:8786")
    surface = evaluate_grid_distributed("model.keras", x, y, directions, xs, ys, client,
                                        store="surface.h5")
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .directions import Directions
from .grid import evaluate_grid, iter_grid
from .remote import (
    Job,
    ModelSource,
    Remote,
    clear_worker_cache,
    driver_model,
    evaluate_chunk,
    remote_chunks,
    worker_info,
)
from .surface import GridUpdate, Surface


# -- entry points from a model source -------------------------------------------------------------
def iter_grid_distributed(
    model_source: Any,
    x: Any,
    y: Any,
    directions: Directions,
    xs: Sequence[float],
    ys: Sequence[float],
    executor: Any,
    *,
    chunk_size: int | None = None,
    retries: int = 3,
    max_in_flight: int | None = None,
    **kwargs: Any,
) -> Iterator[GridUpdate]:
    """:func:`~nbviz.landscape.iter_grid` with the chunks evaluated on ``executor``.

    ``model_source``: a ``.keras`` path (reachable by the driver and every worker), a picklable
    zero-argument builder returning a compiled model (its weights do not matter: the origin
    comes with ``directions``), or a Keras model. The driver builds it once too, to plan the run.
    ``executor``: a ``dask.distributed.Client`` or a ``concurrent.futures.Executor``.
    Other keywords (``store``, ``subset``, ``seed``, ``loss``, ``metrics``, ``order``,
    ``stop_event``...) are :func:`iter_grid`'s. Yields the same :class:`GridUpdate` objects,
    one per finished chunk, in the order chunks finish.
    """
    model, source = driver_model(model_source)
    remote = Remote(executor, source, chunk_size, retries, max_in_flight)
    yield from iter_grid(model, x, y, directions, xs, ys, executor=remote, **kwargs)


def evaluate_grid_distributed(
    model_source: Any,
    x: Any,
    y: Any,
    directions: Directions,
    xs: Sequence[float],
    ys: Sequence[float],
    executor: Any,
    *,
    chunk_size: int | None = None,
    retries: int = 3,
    max_in_flight: int | None = None,
    **kwargs: Any,
) -> Surface:
    """:func:`iter_grid_distributed` run to the end: the :class:`Surface` (see
    :func:`~nbviz.landscape.evaluate_grid` for ``progress`` and ``stop_event``)."""
    model, source = driver_model(model_source)
    remote = Remote(executor, source, chunk_size, retries, max_in_flight)
    return evaluate_grid(model, x, y, directions, xs, ys, executor=remote, **kwargs)


__all__ = [
    "Job",
    "ModelSource",
    "Remote",
    "clear_worker_cache",
    "evaluate_chunk",
    "evaluate_grid_distributed",
    "iter_grid_distributed",
    "remote_chunks",
    "worker_info",
]
