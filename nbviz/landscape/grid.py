"""Evaluate the loss on a grid (or a line) of points ``origin + a*d0 + b*d1``.

:func:`iter_grid` is a generator that yields a :class:`GridUpdate` after every finished
chunk (raster or coarse-to-fine order), with progress and an ETA; setting ``stop_event`` or
closing the generator stops after the current chunk and keeps every finished cell. With
``store=`` the cells go to a resumable HDF5 file as they finish, and a rerun computes only the
missing ones. :func:`evaluate_grid` runs it to the end (tqdm progress in a terminal).

The user's model is never modified: see :mod:`.evaluator`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..errors import StaleOriginWarning
from ..fingerprint import fingerprint_of
from .coords import cell_order, grid_coords
from .directions import Directions, random_directions
from .plan import GridRun, GridSettings
from .remote import remote_chunks
from .storage import SurfaceFile
from .surface import GridUpdate, Line, Surface
from .weights import snapshot_weights

ORIGINS = (None, "directions", "model")
STALE_KINDS = ("random", "pca")  # directions whose origin is "the model's weights at the time"


def resolve_origin(model: Any, directions: Directions, origin: str | None) -> Directions:
    """The directions to evaluate around, by ``origin``.

    ``None``: the directions' own origin, with a :class:`StaleOriginWarning` when random or
    PCA directions were made at weights the model no longer has (it trained on since; the
    origin of interpolation, plane and custom directions is a deliberate choice);
    ``"directions"``: the same, silently (an explicit choice); ``"model"``: the same directions
    around the model's current weights.
    """
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, got {origin!r}.")
    if origin == "directions":
        return directions
    if origin == "model":
        return directions.with_origin(snapshot_weights(model))
    if directions.kind in STALE_KINDS and not fingerprint_of(model).matches(directions.origin):
        warnings.warn(
            StaleOriginWarning(
                f"The {directions.kind} directions were made at other weights than model "
                f"{model.name!r} has now (it was trained, or its weights were set, since): the "
                "landscape is centred on the directions' origin, not on the current weights. Fix: "
                "origin='model' to centre it on the current weights, origin='directions' to keep "
                "the old centre (silences this), or make new directions from the model."
            ),
            stacklevel=3,
        )
    return directions


DEFAULT_POINTS = 21  # grid points per axis when no coordinates are given


def prepare_run(
    model: Any, x: Any, y: Any, directions: Directions, *, origin: str | None, **settings: Any
) -> tuple[Directions, GridRun]:
    """The one way grids and lines start: check ``directions`` against ``model``, place their
    origin, and prepare the run from the :class:`GridSettings` fields given as ``settings``."""
    directions.check_model(model)
    directions = resolve_origin(model, directions, origin)
    return directions, GridRun.prepare(model, x, y, directions, GridSettings(**settings))


def iter_grid(
    model: Any,
    x: Any,
    y: Any,
    directions: Directions | None = None,
    xs: ArrayLike | None = None,
    ys: ArrayLike | None = None,
    *,
    loss: Any = None,
    metrics: Sequence[Any] = (),
    batch_size: int | None = None,
    subset: int | float | None = None,
    seed: int = 0,
    order: str = "raster",
    strategy: str = "auto",
    store: str | os.PathLike | SurfaceFile | None = None,
    stop_event: threading.Event | None = None,
    memory_budget: int | None = None,
    max_chunk: int = 256,
    jit_compile: bool | None = None,
    executor: Any = None,
    regularization: bool = True,
    origin: str | None = None,
) -> Iterator[GridUpdate]:
    """Evaluate ``loss`` at every ``(xs[ix], ys[iy])`` of a 2-direction plane, chunk by chunk.

    Parameters
    ----------
    model:
        A built Keras model; only called statelessly with ``training=False``, never modified.
    x, y:
        Data (arrays; x fits the model's input, y its output / the loss).
    directions:
        Two :class:`Directions` (random, PCA, plane...), which also carry the origin; default:
        two filter-normalized random directions (``seed``).
    xs, ys:
        Coordinates along ``directions[0]`` and ``directions[1]`` (any lengths, see
        :func:`grid_coords`); default 21 points over [-1, 1] each. Results are indexed
        ``[iy, ix]``.
    loss, metrics:
        A loss (default: the model's compiled loss) and metric names/functions
        (``"accuracy"`` gives an accuracy surface).
    regularization:
        Add the model's regularization losses (``kernel_regularizer``, activity regularizers,
        ``add_loss``) at each point, as ``model.evaluate`` does (default). ``False``: the data
        loss alone. Recorded in ``surface.metadata["regularization"]`` (and
        ``"regularization_terms"``, how many the model has).
    origin:
        Where the plane is centred: ``None`` (default) the directions' origin, warning
        (:class:`~nbviz.errors.StaleOriginWarning`) when the model's weights changed since
        the directions were made; ``"directions"`` the same without the warning; ``"model"``
        the model's current weights (the same direction vectors, moved there).
    batch_size, memory_budget, max_chunk:
        Examples per forward pass, bytes one chunk may use (default a quarter of the free
        memory), and the most grid points evaluated at once.
    subset, seed:
        Evaluate on a seeded random subset (a count, or a fraction); the surface then carries
        the standard error of each estimate.
    order:
        ``"raster"`` or ``"coarse_to_fine"`` (a stop early still covers the plane).
    strategy, jit_compile:
        ``"vectorized"``, ``"per_point"`` or ``"auto"`` (per point for conv/recurrent models);
        XLA by default for the vectorized strategy.
    store:
        An HDF5 path or :class:`SurfaceFile`: cells are written as they finish; an existing
        file for the same computation is resumed (only missing cells are computed).
    stop_event:
        A ``threading.Event``; once set, the generator stops after the current chunk.
    executor:
        A ``dask.distributed.Client``, a ``concurrent.futures.Executor`` or a
        :class:`~nbviz.landscape.distributed.Remote`: chunks run on its workers and updates
        come as they finish (see :mod:`.distributed`).

    Yields
    ------
    :class:`GridUpdate`
        After each chunk, and always at least once: an update with no new cells comes first
        when a file already held some (or nothing is left to compute), and alone when stopped
        before the first chunk.
    """
    if directions is None:
        directions = random_directions(model, n=2, seed=seed)
    xs = grid_coords(DEFAULT_POINTS, 1.0) if xs is None else xs
    ys = grid_coords(DEFAULT_POINTS, 1.0) if ys is None else ys
    if directions.n != 2:
        raise ValueError(
            f"A grid needs 2 directions, got {directions.n}. Fix: random_directions(model, n=2), "
            "or evaluate_line for one direction."
        )
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if xs.ndim != 1 or ys.ndim != 1 or not len(xs) or not len(ys):
        raise ValueError("xs and ys must be non-empty 1-D coordinate arrays (see grid_coords).")
    directions, run = prepare_run(
        model, x, y, directions, origin=origin, loss=loss, metrics=metrics,
        batch_size=batch_size, subset=subset, seed=seed, strategy=strategy,
        jit_compile=jit_compile, memory_budget=memory_budget, max_chunk=max_chunk,
        regularization=regularization,
    )  # fmt: skip
    nx = len(xs)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    coords = np.stack([gx.ravel(), gy.ravel()], axis=1)
    meta = {
        **run.info,
        "model_name": model.name,
        "n_params": directions.layout.n_params,
        "order": order,
        "directions": directions.describe(),
    }

    opened = None
    if store is not None and not isinstance(store, SurfaceFile):
        store = opened = SurfaceFile.for_grid(store, directions, xs, ys, run.metric_names, run.info)
    try:
        if store is not None:
            surface = store.surface()
            surface.directions = directions
            surface.metadata = {**meta, "file": store.path}
        else:
            surface = Surface.empty(
                xs, ys, run.metric_names, run.subset, directions=directions, metadata=meta
            )
        order_idx = cell_order(len(ys), nx, order)
        todo = order_idx[~surface.done.ravel()[order_idx]]
        total, already = surface.done.size, surface.n_done
        t_start = time.perf_counter()

        def nothing_new() -> GridUpdate:
            return GridUpdate(
                np.zeros(0, int),
                np.zeros(0, int),
                np.zeros(0),
                {},
                None,
                already,
                total,
                0.0,
                None if len(todo) else 0.0,
                surface.copy(),
            )

        if already or not len(todo):
            yield nothing_new()
        computed, first = 0, None
        if executor is None:
            chunks = run.chunks(coords, todo, stop_event)
        else:
            chunks = remote_chunks(executor, model, run, directions, coords, todo, stop_event)
        for cells, stats in chunks:
            loss_v, metric_v, stderr_v = run.finish(stats)
            iy, ix = np.divmod(cells, nx)
            surface.set_cells(iy, ix, loss_v, metric_v, stderr_v)
            if store is not None:
                store.write_cells(iy, ix, loss_v, metric_v, stderr_v)
            computed += len(cells)
            elapsed = time.perf_counter() - t_start
            if first is None:
                first = (computed, elapsed)  # includes tracing / compiling: not a rate sample
            remaining = len(todo) - computed
            if computed > first[0]:
                eta = remaining * (elapsed - first[1]) / (computed - first[0])
            else:
                eta = remaining * elapsed / computed
            surface.metadata["elapsed_s"] = elapsed
            yield GridUpdate(
                iy,
                ix,
                loss_v,
                metric_v,
                stderr_v,
                already + computed,
                total,
                elapsed,
                eta,
                surface.copy(),
            )
        if not computed and not already and len(todo):  # stopped before the first chunk
            yield nothing_new()
    finally:
        if opened is not None:
            opened.close()


def _progress_bar(total: int, initial: int, progress: bool | None) -> Any:
    show = sys.stderr.isatty() if progress is None else progress
    if not show:
        return None
    from tqdm import tqdm  # plain tqdm: tqdm.auto would import ipywidgets in a notebook

    return tqdm(total=total, initial=initial, unit="pt", desc="loss grid", leave=False)


def evaluate_grid(
    model: Any,
    x: Any,
    y: Any,
    directions: Directions | None = None,
    xs: ArrayLike | None = None,
    ys: ArrayLike | None = None,
    *,
    progress: bool | None = None,
    stop_event: threading.Event | None = None,
    **kwargs: Any,
) -> Surface:
    """Run :func:`iter_grid` to the end and return the :class:`Surface`.

    ``evaluate_grid(model, x, y)`` alone gives a 21x21 grid over [-1, 1]^2 along two
    filter-normalized random directions, like :func:`evaluate_line` does for one.

    ``progress``: a tqdm bar on stderr (default: only when stderr is a terminal). When
    ``stop_event`` is set the partial surface comes back with ``metadata["cancelled"]``.
    """
    last: GridUpdate | None = None
    bar = None
    try:
        for update in iter_grid(model, x, y, directions, xs, ys, stop_event=stop_event, **kwargs):
            if bar is None:
                bar = _progress_bar(update.total, update.done - len(update.iy), progress)
            if bar is not None:
                bar.update(len(update.iy))
            last = update
    finally:
        if bar is not None:
            bar.close()
    assert last is not None  # iter_grid always yields at least once
    surface = last.surface
    surface.metadata["cancelled"] = not surface.complete
    surface.metadata["nonfinite_cells"] = int(surface.nonfinite.sum())
    return surface


def evaluate_line(
    model: Any,
    x: Any,
    y: Any,
    directions: Directions | None = None,
    ts: ArrayLike | None = None,
    *,
    seed: int = 0,
    stop_event: threading.Event | None = None,
    loss: Any = None,
    metrics: Sequence[Any] = (),
    batch_size: int | None = None,
    subset: int | float | None = None,
    strategy: str = "auto",
    memory_budget: int | None = None,
    max_chunk: int = 256,
    jit_compile: bool | None = None,
    regularization: bool = True,
    origin: str | None = None,
) -> Line:
    """The loss along one direction: ``origin + t * d`` for every ``t`` in ``ts``.

    ``directions`` defaults to one filter-normalized random direction (``seed``); use
    :func:`interpolation_directions` for the line between two models (t=0 and t=1).
    ``ts`` defaults to 41 points over [-1, 1] (random) or [-0.5, 1.5] (interpolation).
    ``seed`` also seeds ``subset``. ``regularization``, ``origin``: as in :func:`iter_grid`
    (``origin`` only applies to given directions).
    """
    if directions is None:
        directions = random_directions(model, n=1, seed=seed)
    if directions.n != 1:
        raise ValueError(f"A line needs 1 direction, got {directions.n}.")
    if ts is None:
        ts = (
            np.linspace(-0.5, 1.5, 41)
            if directions.kind == "interpolation"
            else grid_coords(41, 1.0)
        )
    ts = np.asarray(ts, float)
    directions, run = prepare_run(
        model, x, y, directions, origin=origin, loss=loss, metrics=metrics,
        batch_size=batch_size, subset=subset, seed=seed, strategy=strategy,
        jit_compile=jit_compile, memory_budget=memory_budget, max_chunk=max_chunk,
        regularization=regularization,
    )  # fmt: skip
    loss_v = np.full(len(ts), np.nan)
    metric_v = {m: np.full(len(ts), np.nan) for m in run.metric_names}
    stderr_v = np.full(len(ts), np.nan) if run.subset else None
    t0 = time.perf_counter()
    for cells, stats in run.chunks(ts[:, None], np.arange(len(ts)), stop_event):
        l_, m_, s_ = run.finish(stats)
        loss_v[cells] = l_
        for k, v in m_.items():
            metric_v[k][cells] = v
        if stderr_v is not None:
            stderr_v[cells] = s_
    meta = {
        **run.info,
        "model_name": model.name,
        "directions": directions.describe(),
        "elapsed_s": time.perf_counter() - t0,
    }
    return Line(ts, loss_v, metric_v, stderr_v, directions, meta)
