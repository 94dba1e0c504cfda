"""The whole Hessian spectrum in a few hundred products: its trace and its density.

Design note. The trace is estimated by Hutch++ (Meyer et al. 2021): ``m/3`` random sign
probes find the dominant subspace ``Q`` (a QR of ``H S``), whose trace is taken exactly
(``m/3`` more products), and Hutchinson's estimator (``m/3`` probes) covers only what is left,
``(I - QQ^T) H (I - QQ^T)``. Hessians of networks have a few large outlying eigenvalues, which
make plain Hutchinson noisy and which Hutch++ removes first. The standard error reported is
that of the Hutchinson part (the rest is exact). ``method="hutchinson"`` is the plain
estimator, with its standard error from the sample variance.

The density is stochastic Lanczos quadrature (Ghorbani et al. 2019): ``runs`` Lanczos runs of
``steps`` products from random unit vectors; each gives Ritz values ``theta_j`` (nodes) with
weights ``tau_j`` (squared first components of ``T``'s eigenvectors), and the density is their
average smoothed by a Gaussian. Both are generators with progress and a stop event, like
:func:`~.grid.iter_grid`; :func:`hessian_trace` and :func:`hessian_density` run them to the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .hessian import Cancelled, HessianOperator
from .lanczos import lanczos

TRACE_METHODS = ("hutch++", "hutchinson")


@dataclass
class TraceResult:
    """A trace estimate: ``value +- std_error`` from ``n_products`` products."""

    value: float
    std_error: float
    n_products: int
    method: str
    complete: bool = True  # False when stopped early (the estimate uses fewer products)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class TraceUpdate:
    """Progress of :func:`iter_trace`; ``result`` is set on the last update."""

    n_products: int
    total: int
    elapsed_s: float
    result: TraceResult | None = None


def _signs(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=(n, k))


def iter_trace(
    op: HessianOperator,
    n_products: int = 100,
    *,
    method: str = "hutch++",
    seed: int = 0,
    stop_event: threading.Event | None = None,
) -> Iterator[TraceUpdate]:
    """Estimate ``trace(H)`` with ``n_products`` Hessian-vector products (Rademacher probes).

    Yields a :class:`TraceUpdate` after every product; the last carries the
    :class:`TraceResult`. A stop event ends the run after the current product with what was
    gathered so far (``complete=False``).
    """
    if method not in TRACE_METHODS:
        raise ValueError(f"method must be one of {TRACE_METHODS}, got {method!r}.")
    n_products = int(n_products)
    if n_products < (3 if method == "hutch++" else 1):
        raise ValueError(f"{method} needs at least {3 if method == 'hutch++' else 1} products.")
    rng = np.random.default_rng(seed)
    n, t0, done = op.n, time.perf_counter(), 0

    def product(v: np.ndarray) -> np.ndarray:
        nonlocal done
        out = op.matvec(v, stop_event)
        done += 1
        return out

    def update(result: TraceResult | None = None) -> TraceUpdate:
        return TraceUpdate(done, n_products, time.perf_counter() - t0, result)

    exact, samples, complete = 0.0, [], True
    try:
        if method == "hutchinson":
            for z in _signs(rng, n, n_products).T:
                samples.append(float(z @ product(z)))
                yield update()
        else:
            third = n_products // 3
            s, g = _signs(rng, n, third), _signs(rng, n, n_products - 2 * third)
            hs = np.empty((n, third))
            for j in range(third):
                hs[:, j] = product(s[:, j])
                yield update()
            q, _ = np.linalg.qr(hs)
            for j in range(q.shape[1]):
                exact += float(q[:, j] @ product(q[:, j]))
                yield update()
            g = g - q @ (q.T @ g)  # (I - QQ^T) G
            for j in range(g.shape[1]):
                samples.append(float(g[:, j] @ product(g[:, j])))
                yield update()
    except Cancelled:
        complete = False
    values = np.asarray(samples)
    rest = float(values.mean()) if len(values) else 0.0
    err = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    result = TraceResult(exact + rest, err, done, method, complete, dict(op.info))
    yield update(result)


def hessian_trace(op: HessianOperator, n_products: int = 100, **kwargs: Any) -> TraceResult:
    """Run :func:`iter_trace` to the end and return the :class:`TraceResult`."""
    result = None
    for u in iter_trace(op, n_products, **kwargs):
        result = u.result
    assert result is not None
    return result


@dataclass
class SpectralDensity:
    """Stochastic Lanczos quadrature: per run, Ritz ``nodes`` and their quadrature ``weights``."""

    nodes: np.ndarray  # (runs, steps)
    weights: np.ndarray  # (runs, steps), each row sums to 1
    n_products: int
    info: dict[str, Any] = field(default_factory=dict)

    def default_sigma(self) -> float:
        """A smoothing width: 1% of the spectrum's range (Ghorbani et al. use ~1e-5 of
        a normalized range; wider reads better on a plot)."""
        lo, hi = float(self.nodes.min()), float(self.nodes.max())
        return max((hi - lo) * 0.01, 1e-12)

    def density(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """The Gaussian-smoothed density at ``grid`` (integrates to ~1)."""
        sigma = self.default_sigma() if sigma is None else float(sigma)
        grid = np.asarray(grid, np.float64)
        d = grid[:, None] - self.nodes.reshape(-1)[None, :]
        kernel = np.exp(-0.5 * (d / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
        return kernel @ self.weights.reshape(-1) / len(self.nodes)

    def grid(self, points: int = 1000, margin: float = 0.05) -> np.ndarray:
        """Evenly spaced points over the nodes' range plus a margin."""
        lo, hi = float(self.nodes.min()), float(self.nodes.max())
        pad = (hi - lo) * margin + 1e-12
        return np.linspace(lo - pad, hi + pad, points)

    def trace(self, n: int) -> float:
        """The trace the quadrature implies, ``n * E[sum_j tau_j theta_j]``."""
        return float(n * np.mean(np.sum(self.weights * self.nodes, axis=1)))


@dataclass
class DensityUpdate:
    """Progress of :func:`iter_density`; ``result`` is set on the last update."""

    run: int
    runs: int
    n_products: int
    elapsed_s: float
    result: SpectralDensity | None = None


def iter_density(
    op: HessianOperator,
    runs: int = 8,
    steps: int = 60,
    *,
    seed: int = 0,
    stop_event: threading.Event | None = None,
) -> Iterator[DensityUpdate]:
    """Stochastic Lanczos quadrature with ``runs`` runs of ``steps`` products each.

    Yields after every run; the last update carries the :class:`SpectralDensity` of the
    finished runs (a stop event ends after the current product, keeping finished runs).
    """
    if runs < 1 or steps < 1:
        raise ValueError(f"runs and steps must be >= 1, got {runs} and {steps}.")
    rng = np.random.default_rng(seed)
    t0, products = time.perf_counter(), 0
    nodes, weights = [], []

    def matvec(v: np.ndarray) -> np.ndarray:
        nonlocal products
        out = op.matvec(v, stop_event)
        products += 1
        return out

    try:
        for r in range(runs):
            *_, last = lanczos(matvec, rng.standard_normal(op.n), steps)
            theta, s = last.ritz()
            w = s[0, :] ** 2
            pad = steps - len(theta)  # an invariant Krylov space ends early: pad with 0 weight
            nodes.append(np.concatenate([theta, np.full(pad, theta[-1])]))
            weights.append(np.concatenate([w / w.sum(), np.zeros(pad)]))
            if r + 1 < runs:
                yield DensityUpdate(r + 1, runs, products, time.perf_counter() - t0)
    except Cancelled:
        if not nodes:
            return
    result = SpectralDensity(
        np.array(nodes),
        np.array(weights),
        products,
        {**op.info, "runs": len(nodes), "steps": int(steps)},
    )
    yield DensityUpdate(len(nodes), runs, products, time.perf_counter() - t0, result)


def hessian_density(
    op: HessianOperator, runs: int = 8, steps: int = 60, **kwargs: Any
) -> SpectralDensity:
    """Run :func:`iter_density` to the end and return the :class:`SpectralDensity`."""
    result = None
    for u in iter_density(op, runs, steps, **kwargs):
        result = u.result
    if result is None:
        raise Cancelled("stopped before the first Lanczos run finished")
    return result


def plot_density(
    density: SpectralDensity,
    ax: Any = None,
    *,
    sigma: float | None = None,
    log: bool = True,
    points: int = 1000,
) -> Any:
    """Plot the smoothed eigenvalue density (log scale by default) with matplotlib; returns
    the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    grid = density.grid(points)
    values = density.density(grid, sigma)
    if log:
        ax.semilogy(grid, np.maximum(values, 1e-12))
        ax.set_ylim(bottom=max(1e-8, float(values.max()) * 1e-8))
    else:
        ax.plot(grid, values)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    info = density.info
    ax.set_title(
        f"Hessian spectral density (SLQ, {info.get('runs')} runs x "
        f"{info.get('steps')} steps, {info.get('n_examples')} examples)"
    )
    return ax
