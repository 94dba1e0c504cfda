"""The Lanczos iteration with full reorthogonalization, as a generator.

Design note. One Krylov basis serves three uses: the extreme eigenpairs of the Hessian
(:mod:`.curvature`), the spectral density by stochastic Lanczos quadrature (:mod:`.spectrum`)
and the warm-started live sharpness estimate (:mod:`.sharpness`). Every step costs one
Hessian-vector product, which dominates by far, so the basis is reorthogonalized against all
previous vectors (twice, "twice is enough"): the Ritz values never repeat as ghost copies and
a few dozen products resolve both ends of the spectrum. Being a generator, the caller sees the
Ritz values after every product, and stops (a stop event, enough precision) between products.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

BREAKDOWN = 1e-10  # a residual norm this small (relative) means an invariant subspace


@dataclass
class LanczosStep:
    """The state after ``m`` products: the tridiagonal ``T`` (``alpha``, ``beta``) and basis."""

    m: int
    alpha: np.ndarray  # (m,) diagonal of T
    beta: np.ndarray  # (m,) off-diagonal; beta[-1] is the norm of the next residual
    basis: np.ndarray  # (m, n) orthonormal rows q_0 .. q_{m-1}
    exhausted: bool  # the Krylov space is invariant: T's eigenvalues are exact

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues (ascending) and eigenvectors of ``T`` (columns)."""
        return ritz(self.alpha, self.beta)

    def residuals(self, vectors: np.ndarray) -> np.ndarray:
        """Residual norms ``|| A y - theta y ||`` of the Ritz pairs of ``T``'s ``vectors``."""
        if self.exhausted:
            return np.zeros(vectors.shape[1])
        return np.abs(self.beta[-1] * vectors[-1, :])


def ritz(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of the tridiagonal ``T`` with
    diagonal ``alpha`` and off-diagonal ``beta[:-1]`` (``beta[-1]`` is the next residual)."""
    from scipy.linalg import eigh_tridiagonal

    if len(alpha) == 1:
        return np.array(alpha, np.float64), np.ones((1, 1))
    return eigh_tridiagonal(alpha, beta[:-1])


def lanczos(
    matvec: Callable[[np.ndarray], np.ndarray], start: np.ndarray, max_steps: int
) -> Iterator[LanczosStep]:
    """Yield a :class:`LanczosStep` after each of at most ``max_steps`` products.

    ``start`` need not be normalized; the iteration ends early when the Krylov space becomes
    invariant (then the last step has ``exhausted=True``).
    """
    n = start.shape[0]
    max_steps = int(min(max_steps, n))
    basis = np.zeros((max_steps, n))
    alpha, beta = np.zeros(max_steps), np.zeros(max_steps)
    norm = float(np.linalg.norm(start))
    if norm == 0.0 or not np.isfinite(norm):
        raise ValueError("The Lanczos start vector must be finite and non-zero.")
    q = np.asarray(start, np.float64) / norm
    scale = 0.0
    for j in range(max_steps):
        basis[j] = q
        w = np.asarray(matvec(q), np.float64)
        alpha[j] = float(q @ w)
        for _ in range(2):  # full reorthogonalization, twice
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        b = float(np.linalg.norm(w))
        beta[j] = b
        scale = max(scale, abs(alpha[j]), b)
        exhausted = b <= BREAKDOWN * max(scale, 1e-30) or j + 1 == n
        yield LanczosStep(
            j + 1, alpha[: j + 1].copy(), beta[: j + 1].copy(), basis[: j + 1], exhausted
        )
        if exhausted:
            return
        q = w / b
