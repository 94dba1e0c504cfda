"""The top eigenvalue of a (preconditioned) Hessian in a few compiled calls: the live estimate.

Design note. The live sharpness (:mod:`.sharpness`) needs one number every few batches, within
a few percent, at a cost small against the training steps between two.
:func:`.curvature.iter_eigen` drives Lanczos from the host, one compiled product per call with
numpy between (progress after every product, both ends of the spectrum): on small models the
call and the conversions cost about as much as the product. Here the Lanczos steps run inside
the graph, ``chunk`` of them per call (:meth:`.HessianOperator.lanczos_steps`), and the host
only looks at the small tridiagonal matrix between calls. Measured on the seed MLP (CPU time):
a warm estimate of two products went from ~10 ms to ~4.5 ms, a call of two steps costs 2.9 ms.

The start vector is the previous estimate's eigenvector *plus* a fresh seeded random vector of
the same norm, and the run stops only on the residual of the top Ritz pair (``|theta - lambda|
<= residual``). A warm start alone is not enough: when the top eigenvector moves a lot between
two estimates (Adam's preconditioner early in training, measured: the top eigenvalue of
``P^-1 H`` jumps between ~3e2 and ~4e4 every few batches), the old vector has almost no
component along the new one, Lanczos converges to a lower eigenvalue with a small residual, and
the estimate is off by up to 99% (seen as two runs disagreeing by 100x). The random half brings
every direction in; where the top eigenvector moved little, the warm half still makes two or
four products enough.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._tf import require_tensorflow
from .curvature import fix_sign
from .hessian import HessianOperator
from .lanczos import ritz

BREAKDOWN32 = 1e-5  # relative residual norm at which float32 Lanczos has found an invariant space


@dataclass
class TopEigen:
    """The top eigenpair of ``H`` (or ``P^-1 H``) from :func:`top_eigen`."""

    value: float
    vector: np.ndarray  # (n,) unit, in the weights' space, fixed sign
    residual: float  # the top Ritz pair's residual norm relative to the value
    n_products: int
    converged: bool


def mixed_start(
    n: int, warm: np.ndarray | None, pscale: np.ndarray, seed: int | Sequence[int]
) -> np.ndarray:
    """The start vector in the symmetric space: a seeded random unit vector, plus the unit
    ``warm`` vector (given in the weights' space) when there is one."""
    r = np.random.default_rng(seed).standard_normal(n)
    r /= np.linalg.norm(r)
    if warm is None:
        return r
    u = np.asarray(warm, np.float64).reshape(-1)
    if u.shape != (n,):
        raise ValueError(f"warm must have {n} entries, got shape {u.shape}.")
    u = u / pscale
    norm = float(np.linalg.norm(u))
    if norm == 0.0 or not math.isfinite(norm):
        return r
    z = u / norm + r
    return z / np.linalg.norm(z)


def top_eigen(
    op: HessianOperator,
    *,
    warm: np.ndarray | None = None,
    preconditioner: np.ndarray | None = None,
    seed: int | Sequence[int] = 0,
    tol: float = 3e-2,
    max_products: int = 20,
    chunk: int = 2,
    value_tol: float | None = None,
    stop_event: threading.Event | None = None,
) -> TopEigen:
    """The largest eigenvalue of ``op``'s Hessian (of ``P^-1 H`` with a positive
    ``preconditioner`` ``p``, computed on ``P^-1/2 H P^-1/2``) by Lanczos in compiled chunks.

    Starts from :func:`mixed_start` (``warm``: e.g. the previous estimate's vector) and stops
    when the top Ritz pair's residual is below ``tol`` times its value, after ``max_products``
    products, or (``value_tol``) when the top value moved less than ``value_tol`` (relative)
    over the last chunk. ``chunk`` products run per call (one trace per chunk size).
    Raises :class:`.hessian.Cancelled` on a stop event.
    """
    tf = require_tensorflow()
    n = op.n
    if preconditioner is None:
        pscale = np.ones(n)
    else:
        p = np.asarray(preconditioner, np.float64).reshape(-1)
        if p.shape != (n,) or not np.all(p > 0):
            raise ValueError(f"preconditioner must be {n} positive entries.")
        pscale = 1.0 / np.sqrt(p)
    chunk = max(1, int(chunk))
    max_products = max(1, min(int(max_products), n))
    rows = chunk * math.ceil(max_products / chunk)
    z = mixed_start(n, warm, pscale, seed)
    state = op.lanczos_state(z, rows)
    ps = tf.constant(pscale, tf.float32)
    before, previous = op.n_products, None
    while True:
        state = op.lanczos_steps(state, chunk, ps, stop_event)
        m = min(int(state[3]), rows)
        alpha = state[1].numpy()[:m].astype(np.float64)
        beta = state[2].numpy()[:m].astype(np.float64)
        size = max(float(np.max(np.abs(alpha))), float(np.max(beta)), 1e-30)
        broke = np.flatnonzero(beta <= BREAKDOWN32 * size)
        if len(broke):
            m = int(broke[0]) + 1
        theta, s = ritz(alpha[:m], beta[:m])
        top = float(theta[-1])
        residual = 0.0 if len(broke) else abs(beta[m - 1] * s[-1, -1])
        rel = residual / max(abs(top), 1e-30)
        settled = (
            value_tol is not None
            and previous is not None
            and abs(top - previous) <= value_tol * abs(top)
        )
        converged = bool(len(broke)) or rel <= tol or settled
        if converged or m >= max_products:
            break
        previous = top
    coeffs = tf.constant(s[:, -1], tf.float32)
    y = tf.linalg.matvec(state[0][:m], coeffs, transpose_a=True).numpy().astype(np.float64)
    vector = y * pscale
    vector /= np.linalg.norm(vector)
    return TopEigen(top, fix_sign(vector), rel, op.n_products - before, bool(converged))
