"""PCA directions of a training path with the Gram-matrix trick.

A path has few snapshots (n, hundreds) of many parameters (P, millions). Instead of an SVD
of the n x P matrix, the n x n Gram matrix ``G = D D^T`` of the centred rows is accumulated a
column block at a time (float32 products, float64 sums) and diagonalized; the components are
``D^T v / sqrt(lambda)``. Nothing of size n x P is ever allocated besides the path itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import PathError
from .directions import Directions, normalize_directions, selected_tensors
from .path import as_path_matrix, column_blocks
from .weights import WeightLayout

CENTERS = ("mean", "final")
EXPLAINED = {
    "mean": "variance of the path around its mean (sklearn PCA, as Li et al.)",
    "final": "second moment of the path around the final weights",
}


FULL_EIGH_MAX = 128  # Gram matrices up to this size are diagonalized in full


def top_eigenpairs(gram: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues (descending) of the symmetric ``gram`` and their vectors.

    A full ``eigh`` is cubic in the number of snapshots: 6 s for a 1601-snapshot path on two
    busy cores, all before the first grid cell. Lanczos (ARPACK, to machine precision, a
    fixed start vector) finds the top few in a fraction of that and agrees with ``eigh`` to
    ~1e-15; the full solver remains for small matrices and when Lanczos does not converge.
    """
    n = len(gram)
    if n > max(FULL_EIGH_MAX, 2 * k + 1):
        from scipy.sparse.linalg import ArpackNoConvergence, eigsh

        try:
            lam, vec = eigsh(gram, k=k, which="LA", tol=0.0, v0=np.ones(n))
        except ArpackNoConvergence:
            pass
        else:
            order = np.argsort(lam)[::-1]
            return lam[order], vec[:, order]
    lam, vec = np.linalg.eigh(gram)
    order = np.argsort(lam)[::-1][:k]
    return lam[order], vec[:, order]


def gram_pca(
    matrix: np.ndarray,
    center: np.ndarray,
    n_components: int,
    ranges: list[tuple[int, int]] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top principal axes of the rows of ``matrix - center`` (only columns in ``ranges``).

    Returns ``(components (k, P) float32 unit rows, zero outside ranges; eigenvalues (k,) of
    D D^T; explained-variance ratios (k,))``.
    """
    n, p = matrix.shape
    blocks = column_blocks(n, p, ranges, budget_bytes=2**26)
    gram = np.zeros((n, n))
    for b in blocks:
        d = matrix[:, b] - center[b]
        gram += d @ d.T  # float32 product of one block, summed in float64
    total = float(np.trace(gram))
    lam, vec = top_eigenpairs(gram, n_components)
    rank_tol = max(total, np.finfo(np.float64).tiny) * n * 1e-7
    if len(lam) < n_components or lam[-1] <= rank_tol:
        rank = int(np.sum(lam > rank_tol))
        raise PathError(
            f"The path spans only {rank} independent direction(s) ({n} snapshots), fewer than "
            f"n_components={n_components}. Fix: record more training steps (the weights must "
            "change between snapshots), or ask for fewer components."
        )
    comps = np.zeros((n_components, p), dtype=np.float32)
    proj = (vec / np.sqrt(lam)).astype(np.float32)
    for b in blocks:
        comps[:, b] = proj.T @ (matrix[:, b] - center[b])
    comps /= np.linalg.norm(comps.astype(np.float64), axis=1, keepdims=True).astype(np.float32)
    return comps, lam, lam / total


def pca_directions(
    path: Any,
    model: Any,
    final: Any = None,
    n_components: int = 2,
    center: str = "mean",
    normalization: str = "none",
    perturb_1d: bool = False,
    perturb_non_trainable: bool = False,
) -> Directions:
    """The principal directions of a training path; the grid is centred on the final weights.

    ``path``: a :class:`WeightPathRecorder`, an (n, n_params) array, or a list of weight
    lists. ``final``: the grid's origin (weights list or flat vector); default the last
    snapshot.

    ``center`` says which point the principal axes are fitted around:

    - ``"mean"`` (default, Li et al.'s code and the seed article): the path's mean snapshot.
      Li et al. take rows ``w_i - final`` and fit ``sklearn.decomposition.PCA``, which
      subtracts the mean row again, so their axes are those of the path around its mean;
      ``explained_variance`` is then sklearn's ``explained_variance_ratio_`` (fractions of
      the path's variance around its mean).
    - ``"final"``: the final weights themselves (an uncentred SVD of ``w_i - final``). The
      first axis then tends to point from the final weights back along the path, which
      captures more of the path's distance from the plot's centre; ``explained_variance`` is
      then the fraction of the path's second moment around the final weights (not a
      variance, and not comparable with sklearn's numbers).

    Either way the grid's origin is ``final``. ``metadata["explained_variance_of"]`` says
    which quantity the ratios are of. Components are unit vectors over the selected tensors
    (trainable, >= 2-D unless asked), signed so that the path starts at negative
    coordinates; ``normalization`` may rescale them like random directions (the seed
    renormalizes per tensor).
    """
    if center not in CENTERS:
        raise ValueError(f"center must be one of {CENTERS}, got {center!r}.")
    layout = WeightLayout.from_model(model)
    matrix = as_path_matrix(path, layout)
    if matrix.shape[0] < n_components + 1:
        raise PathError(
            f"A path of {matrix.shape[0]} snapshot(s) cannot give {n_components} principal "
            f"directions. Fix: record at least {n_components + 1} snapshots."
        )
    if final is None:
        origin_flat = np.array(matrix[-1], copy=True)
    elif isinstance(final, np.ndarray) and final.ndim == 1:
        origin_flat = final.astype(np.float32)
    else:
        origin_flat = layout.flatten(list(final))
    chosen = selected_tensors(layout, perturb_1d, perturb_non_trainable)
    ranges = layout.ranges(chosen)
    if center == "final":
        c = origin_flat
    else:
        c = np.zeros(layout.n_params, dtype=np.float32)
        weights = np.full(matrix.shape[0], 1.0 / matrix.shape[0], dtype=np.float32)
        for b in column_blocks(matrix.shape[0], layout.n_params, ranges):
            c[b] = weights @ matrix[:, b]  # BLAS; a strided float64 mean is 10x slower
    comps, lam, ratios = gram_pca(matrix, c, n_components, ranges)
    first = comps @ (matrix[0] - c)
    comps[first > 0] *= -1.0
    origin = layout.unflatten(origin_flat)
    vectors = []
    for row in comps:
        parts = [np.array(x) for x in layout.unflatten(row, cast=False)]
        vectors.append(normalize_directions(parts, origin, layout, normalization))
    return Directions(
        vectors,
        origin,
        layout,
        kind="pca",
        normalization=normalization,
        explained_variance=ratios,
        metadata={
            "center": center,
            "n_snapshots": int(matrix.shape[0]),
            "explained_variance_of": EXPLAINED[center],
            "eigenvalues": [float(v) for v in lam],
            "perturb_1d": bool(perturb_1d),
            "perturb_non_trainable": bool(perturb_non_trainable),
        },
    )
