"""Loss landscapes of any Keras model (Li et al. 2018), fast and without touching the model.

- :mod:`.directions` -- random directions (filter / layer / per-tensor normalized),
  interpolation between two models or the plane of three; :mod:`.pca` -- PCA directions of a
  training path (Gram-matrix trick).
- :mod:`.grid` -- :func:`iter_grid` (a generator of finished chunks, resumable, cancellable),
  :func:`evaluate_grid`, :func:`evaluate_line`; :mod:`.plan` -- :class:`GridSettings` and
  :class:`GridRun`, the plan a grid, a line and a remote worker share; :mod:`.coords` -- grid
  coordinates;
  :func:`loss_at_weights` -- the loss (with regularization, as ``model.evaluate``) at any weights.
- :mod:`.path` -- :class:`WeightPathRecorder` (a Keras callback) and :func:`project_path`.
- :mod:`.storage` -- :class:`SurfaceFile` (resumable HDF5), saved directions.
- :mod:`.plot` -- matplotlib figures like the seed article's.
- :mod:`.hessian` -- :class:`HessianOperator` (Hessian-vector products); :mod:`.curvature` --
  top / most negative eigenpairs by Lanczos, :func:`hessian_directions`; :mod:`.spectrum` --
  trace (Hutch++) and spectral density (stochastic Lanczos quadrature); :mod:`.topeigen` -- the
  top eigenvalue by Lanczos in compiled chunks; :mod:`.sharpness` --
  :class:`SharpnessTracker` (live sharpness during ``fit``) and stability thresholds.

Everything returns plain numpy arrays; nothing here imports widgets.
"""

from __future__ import annotations

from .coords import cell_order, grid_coords
from .curvature import EigenResult, EigenUpdate, hessian_directions, hessian_eigen, iter_eigen
from .directions import (
    Directions,
    interpolation_directions,
    normalize_directions,
    plane_directions,
    random_directions,
)
from .evaluator import loss_at_weights
from .grid import evaluate_grid, evaluate_line, iter_grid
from .hessian import HessianOperator
from .path import WeightPathRecorder, as_path_matrix, project_path
from .pca import pca_directions
from .plan import GridRun, GridSettings
from .plot import plot_contour, plot_line, plot_path, plot_surface
from .sharpness import SharpnessEstimate, SharpnessTracker, Threshold, stability_threshold
from .spectrum import (
    DensityUpdate,
    SpectralDensity,
    TraceResult,
    TraceUpdate,
    hessian_density,
    hessian_trace,
    iter_density,
    iter_trace,
    plot_density,
)
from .storage import SurfaceFile, load_directions, save_directions
from .surface import GridUpdate, Line, Surface
from .weights import WeightLayout, snapshot_weights, weights_hash

__all__ = [
    "DensityUpdate",
    "EigenUpdate",
    "Threshold",
    "TraceUpdate",
    "GridRun",
    "GridSettings",
    "Directions",
    "EigenResult",
    "GridUpdate",
    "HessianOperator",
    "Line",
    "SharpnessEstimate",
    "SharpnessTracker",
    "SpectralDensity",
    "Surface",
    "SurfaceFile",
    "TraceResult",
    "WeightLayout",
    "WeightPathRecorder",
    "as_path_matrix",
    "cell_order",
    "evaluate_grid",
    "evaluate_line",
    "grid_coords",
    "hessian_density",
    "hessian_directions",
    "hessian_eigen",
    "hessian_trace",
    "interpolation_directions",
    "iter_density",
    "iter_eigen",
    "iter_grid",
    "iter_trace",
    "load_directions",
    "loss_at_weights",
    "normalize_directions",
    "pca_directions",
    "plane_directions",
    "plot_density",
    "plot_contour",
    "plot_line",
    "plot_path",
    "plot_surface",
    "project_path",
    "random_directions",
    "save_directions",
    "snapshot_weights",
    "stability_threshold",
    "weights_hash",
]
