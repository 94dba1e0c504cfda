"""Extreme eigenpairs of the Hessian of a model's loss, and the plane of the top two.

Design note. :func:`iter_eigen` runs :func:`.lanczos.lanczos` on a :class:`HessianOperator`
and yields an :class:`EigenUpdate` after every Hessian-vector product (current Ritz values,
residual bounds, progress); it stops when the ``k`` largest and the most negative Ritz pairs
have residuals below ``tol`` times the largest magnitude (a residual ``r`` bounds the
eigenvalue's error by ``r``), or on a stop event. One Krylov basis gives both ends of the
spectrum, so the most negative eigenvalue costs nothing extra. :func:`hessian_eigen` is the
one-call form; :func:`eigsh_eigen` is scipy's ARPACK (``eigsh`` on the operator's
``LinearOperator``), an independent implicitly restarted method for checks.

Eigenvectors come with a fixed sign: the entry of largest magnitude is positive (the first
such entry on ties), so the same weights always give the same directions.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ModelError
from .directions import Directions, normalize_directions, selected_tensors
from .hessian import Cancelled, HessianOperator
from .lanczos import lanczos
from .weights import WeightLayout, snapshot_weights


@dataclass
class EigenResult:
    """Top eigenpairs of the Hessian (descending) and its most negative eigenvalue."""

    values: np.ndarray  # (k,) largest first
    vectors: np.ndarray  # (k, n) unit vectors of the operator's space, fixed sign
    min_value: float  # the smallest (most negative) eigenvalue found
    min_vector: np.ndarray  # (n,)
    residuals: np.ndarray  # (k,) residual norms of the top pairs
    n_products: int
    converged: bool
    method: str
    elapsed_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def top(self) -> float:
        """The largest eigenvalue (the sharpness)."""
        return float(self.values[0])


@dataclass
class EigenUpdate:
    """Progress of :func:`iter_eigen` after ``n_products`` products."""

    n_products: int
    max_products: int
    values: np.ndarray  # current top Ritz values, largest first
    min_value: float
    residual: float  # the largest residual among the wanted pairs, relative
    elapsed_s: float
    result: EigenResult | None = None  # set on the last update


def fix_sign(vector: np.ndarray) -> np.ndarray:
    """``vector`` or ``-vector``: the one whose entry of largest magnitude is positive."""
    i = int(np.argmax(np.abs(vector)))
    return -vector if vector[i] < 0 else vector


def _check_k(k: int, n: int) -> int:
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}.")
    if int(k) > n:
        raise ModelError(
            f"k={k} eigenvalues were asked for, but the Hessian is only {n} x {n} (the model's "
            f"selected trainable parameters). Fix: pass k <= {n}."
        )
    return int(k)


def _start_vector(n: int, start: np.ndarray | None, seed: int) -> np.ndarray:
    if start is not None:
        start = np.asarray(start, np.float64).reshape(-1)
        if start.shape != (n,):
            raise ValueError(f"start must have {n} entries, got shape {start.shape}.")
        return start
    return np.random.default_rng(seed).standard_normal(n)


def iter_eigen(
    op: HessianOperator,
    k: int = 1,
    *,
    tol: float = 1e-6,
    max_products: int | None = None,
    start: np.ndarray | None = None,
    seed: int = 0,
    preconditioner: np.ndarray | None = None,
    value_tol: float | None = None,
    stop_event: threading.Event | None = None,
) -> Iterator[EigenUpdate]:
    """Lanczos on ``op`` for the ``k`` largest eigenpairs and the most negative eigenvalue.

    ``max_products`` (default ``min(n, max(6 k + 60, 120))``) bounds the cost; ``start`` warm
    starts from a vector (e.g. the previous top eigenvector). With ``preconditioner`` (a
    positive vector ``p``) the eigenpairs are those of ``P^-1 H``, computed on the symmetric
    ``P^-1/2 H P^-1/2`` (same eigenvalues; vectors are returned mapped back, ``P^-1/2 u``,
    normalized; ``start`` is given in the same space). ``value_tol`` also stops when the top
    ``k`` Ritz values moved less than ``value_tol`` times the largest since the previous
    product (Ritz values settle well before their residuals shrink: cheap estimates from a
    warm start). The last update carries the :class:`EigenResult`; a stop event ends the run
    after the current product with ``converged=False``.
    """
    n = op.n
    k = _check_k(k, n)
    if max_products is None:
        max_products = min(n, max(6 * k + 60, 120))
    max_products = max(int(max_products), min(k + 1, n))
    scale = None
    if preconditioner is not None:
        p = np.asarray(preconditioner, np.float64).reshape(-1)
        if p.shape != (n,) or not np.all(p > 0):
            raise ValueError(f"preconditioner must be {n} positive entries.")
        scale = 1.0 / np.sqrt(p)
        if start is not None:  # given in the weights' space: into the symmetric one
            start = np.asarray(start, np.float64).reshape(-1) / scale

    def matvec(v: np.ndarray) -> np.ndarray:
        if scale is None:
            return op.matvec(v, stop_event)
        return scale * op.matvec(scale * v, stop_event)

    t0 = time.perf_counter()
    step = None
    converged = False
    theta = s = previous = None
    steps = lanczos(matvec, _start_vector(n, start, seed), max_products)
    try:
        for step in steps:
            theta, s = step.ritz()
            kk = min(k, step.m)
            wanted = list(range(step.m - kk, step.m)) + [0]
            res = step.residuals(s[:, wanted])
            size = max(float(np.max(np.abs(theta))), 1e-30)
            rel = float(np.max(res) / size)
            top = theta[::-1][:kk]
            settled = (
                value_tol is not None
                and previous is not None
                and step.m > k
                and np.all(np.abs(top - previous) <= value_tol * size)
            )
            previous = top.copy()
            converged = step.exhausted or (step.m >= k and rel <= tol) or bool(settled)
            done = converged or step.m >= max_products
            update = EigenUpdate(
                step.m,
                max_products,
                theta[::-1][:kk].copy(),
                float(theta[0]),
                rel,
                time.perf_counter() - t0,
            )
            if done:
                break
            yield update
    except Cancelled:
        pass
    if step is None:  # stopped before the first product
        return
    assert theta is not None and s is not None  # set by the first step
    top_rows = list(range(step.m - 1, step.m - 1 - min(k, step.m), -1))
    vectors = (step.basis.T @ s[:, top_rows]).T
    min_vector = step.basis.T @ s[:, 0]
    if scale is not None:
        vectors = vectors * scale
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        min_vector = min_vector * scale
        min_vector /= np.linalg.norm(min_vector)
    result = EigenResult(
        values=theta[top_rows].copy(),
        vectors=np.stack([fix_sign(v) for v in vectors]),
        min_value=float(theta[0]),
        min_vector=fix_sign(min_vector),
        residuals=step.residuals(s[:, top_rows]),
        n_products=step.m,
        converged=bool(converged),
        method="lanczos" + ("-preconditioned" if scale is not None else ""),
        elapsed_s=time.perf_counter() - t0,
        info=dict(op.info),
    )
    yield EigenUpdate(
        step.m,
        max_products,
        result.values,
        result.min_value,
        float(np.max(result.residuals) / max(abs(result.values[0]), 1e-30)),
        result.elapsed_s,
        result,
    )


def run_eigen(op: HessianOperator, k: int = 1, **kwargs: Any) -> EigenResult:
    """Run :func:`iter_eigen` to the end; warns when it did not converge."""
    result = None
    for update in iter_eigen(op, k, **kwargs):
        result = update.result
    if result is None:
        raise Cancelled("stopped before the first Hessian-vector product")
    stopped = kwargs.get("stop_event") is not None and kwargs["stop_event"].is_set()
    if not result.converged and not stopped:
        warnings.warn(
            f"Lanczos did not converge in {result.n_products} products (relative residual "
            f"{np.max(result.residuals) / max(abs(result.top), 1e-30):.2g}); raise max_products "
            "for more precise eigenvalues.",
            RuntimeWarning,
            stacklevel=2,
        )
    return result


def hessian_eigen(
    model: Any,
    x: Any,
    y: Any,
    k: int = 5,
    *,
    loss: Any = None,
    subset: int | float | None = None,
    seed: int = 0,
    tol: float = 1e-6,
    max_products: int | None = None,
    batch_size: int | None = None,
    stop_event: threading.Event | None = None,
    **operator_kwargs: Any,
) -> EigenResult:
    """The ``k`` largest Hessian eigenvalues/vectors of ``model``'s loss on ``x, y`` and the
    most negative eigenvalue, by Lanczos (see :func:`iter_eigen`). The model is not touched."""
    op = HessianOperator(
        model, x, y, loss=loss, subset=subset, seed=seed, batch_size=batch_size, **operator_kwargs
    )
    _check_k(k, op.n)
    return run_eigen(op, k, tol=tol, max_products=max_products, seed=seed, stop_event=stop_event)


def eigsh_eigen(
    op: HessianOperator,
    k: int = 1,
    *,
    tol: float = 1e-8,
    which: str = "LA",
    start: np.ndarray | None = None,
    stop_event: threading.Event | None = None,
) -> EigenResult:
    """scipy's ``eigsh`` (ARPACK) on ``op``: ``which="LA"`` for the largest, ``"SA"`` for the
    smallest eigenvalues. A reference for :func:`iter_eigen` (no progress, no warm Ritz view)."""
    from scipy.sparse.linalg import eigsh

    k = _check_k(k, op.n)
    if k >= op.n:  # ARPACK needs k < n
        raise ModelError(f"eigsh needs k < n = {op.n}. Fix: use hessian_eigen for k = n.")
    before, t0 = op.n_products, time.perf_counter()
    v0 = None if start is None else np.asarray(start, np.float64)
    vals, vecs = eigsh(op.as_linear_operator(stop_event), k=k, which=which, tol=tol, v0=v0)
    order = np.argsort(vals)[::-1] if which == "LA" else np.argsort(vals)
    vals, vecs = vals[order], vecs[:, order].T
    lo = int(np.argmin(vals))
    return EigenResult(
        vals,
        np.stack([fix_sign(v) for v in vecs]),
        float(vals[lo]),
        fix_sign(vecs[lo]),
        np.zeros(k),
        op.n_products - before,
        True,
        f"eigsh-{which}",
        time.perf_counter() - t0,
        dict(op.info),
    )


def hessian_directions(
    model: Any,
    x: Any,
    y: Any,
    n: int = 2,
    *,
    loss: Any = None,
    normalization: str = "filter",
    perturb_1d: bool = False,
    subset: int | float | None = 256,
    seed: int = 0,
    origin: Sequence[np.ndarray] | None = None,
    tol: float = 1e-4,
    stop_event: threading.Event | None = None,
    **operator_kwargs: Any,
) -> Directions:
    """The top-``n`` Hessian eigenvectors at ``origin`` (default: the model's weights) as
    :class:`Directions`: the plane where the loss bends most.

    Over the same tensors as :func:`random_directions` (trainable tensors of rank >= 2 unless
    ``perturb_1d``): the eigenvectors are those of the Hessian restricted to them. They are
    then scaled like random directions: ``normalization="filter"`` (default) gives every
    filter / neuron slice the norm of the same slice of the weights (Li et al.), so grid
    coordinates mean the same as for random directions (the scaled vectors are then no longer
    exact eigenvectors); ``"none"`` keeps the unit-norm eigenvectors, so that the loss along
    axis ``i`` curves as ``lambda_i t^2 / 2``. Signs are fixed (largest entry positive). The
    loss is the grid's: inference mode, regularization included, on a seeded ``subset``.
    ``metadata["eigenvalues"]`` holds the eigenvalues.
    """
    layout = WeightLayout.from_model(model)
    origin = snapshot_weights(model) if origin is None else [np.array(w, copy=True) for w in origin]
    layout.check(origin, "origin")
    chosen = [
        c and t.trainable
        for c, t in zip(selected_tensors(layout, perturb_1d), layout.tensors, strict=True)
    ]
    if not any(chosen):
        raise ModelError(
            f"Model {layout.model_name!r} has no trainable tensor of rank >= 2 for Hessian "
            "directions. Fix: pass perturb_1d=True."
        )
    op = HessianOperator(
        model,
        x,
        y,
        loss=loss,
        weights=origin,
        tensors=chosen,
        subset=subset,
        seed=seed,
        **operator_kwargs,
    )
    result = run_eigen(op, n, tol=tol, seed=seed, stop_event=stop_event)
    vectors = [
        normalize_directions(op.to_weights(v), origin, layout, normalization)
        for v in result.vectors
    ]
    return Directions(
        vectors,
        origin,
        layout,
        kind="hessian",
        seed=int(seed),
        normalization=normalization,
        metadata={
            "eigenvalues": [float(v) for v in result.values],
            "perturb_1d": bool(perturb_1d),
            "hessian": {k: op.info[k] for k in ("n_examples", "subset", "batch_size", "mode")},
            "n_products": int(result.n_products),
            "converged": bool(result.converged),
        },
    )
