"""Result types of grid and line evaluation: plain numpy arrays plus metadata."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .directions import Directions


@dataclass
class Surface:
    """A loss surface on a grid: ``loss[iy, ix]`` is the loss at ``(xs[ix], ys[iy])``.

    ``done`` marks computed cells; ``loss`` is NaN where a cell is missing *or* its loss was
    not finite (a diverged cell is ``done`` and NaN). ``metrics`` maps names to grids like
    ``loss``; ``stderr`` is the standard error of the loss estimate when a data subset was
    used (None when all the data was evaluated: the value is exact).
    """

    xs: np.ndarray
    ys: np.ndarray
    loss: np.ndarray
    done: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    stderr: np.ndarray | None = None
    directions: Directions | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(
        cls,
        xs: np.ndarray,
        ys: np.ndarray,
        metric_names: Sequence[str] = (),
        with_stderr: bool = False,
        **kwargs: Any,
    ) -> Surface:
        """A surface on the grid ``xs`` x ``ys`` with no cell computed yet (NaN, not done)."""
        shape = (len(ys), len(xs))
        nan = np.full(shape, np.nan)
        return cls(
            np.asarray(xs, float),
            np.asarray(ys, float),
            nan.copy(),
            np.zeros(shape, bool),
            {m: nan.copy() for m in metric_names},
            nan.copy() if with_stderr else None,
            **kwargs,
        )

    @property
    def Z(self) -> np.ndarray:  # noqa: N802 - the usual name of a surface's heights
        """The loss grid (alias of ``loss``), indexed ``Z[iy, ix]``."""
        return self.loss

    @property
    def n_done(self) -> int:
        return int(self.done.sum())

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    @property
    def nonfinite(self) -> np.ndarray:
        """Cells that were computed but whose loss was NaN or inf (diverged)."""
        return np.asarray(self.done & ~np.isfinite(self.loss))

    def set_cells(
        self,
        iy: np.ndarray,
        ix: np.ndarray,
        loss: np.ndarray,
        metrics: dict[str, np.ndarray],
        stderr: np.ndarray | None,
    ) -> None:
        """Write computed cells (used while a grid is evaluated or read back)."""
        self.loss[iy, ix] = loss
        self.done[iy, ix] = True
        for name, v in metrics.items():
            self.metrics[name][iy, ix] = v
        if self.stderr is not None and stderr is not None:
            self.stderr[iy, ix] = stderr

    def ascending(self) -> Surface:
        """This surface with ascending ``xs`` and ``ys`` (its grids permuted to match): itself
        when already ascending, else a copy. Plots and contours need ascending coordinates."""
        from .coords import ascending

        if np.all(np.diff(self.xs) > 0) and np.all(np.diff(self.ys) > 0):
            return self
        names = list(self.metrics)
        stderr_grids = [] if self.stderr is None else [self.stderr]
        xs, ys, grids = ascending(
            self.xs, self.ys, self.loss, self.done, *stderr_grids, *(self.metrics[n] for n in names)
        )
        loss, done = grids[:2]
        stderr = grids[2] if stderr_grids else None
        metrics = grids[2 + len(stderr_grids) :]
        return Surface(
            xs,
            ys,
            loss,
            done,
            dict(zip(names, metrics, strict=True)),
            stderr,
            self.directions,
            copy.deepcopy(self.metadata),
        )

    def copy(self) -> Surface:
        """A copy of the arrays (the directions are shared, they are never modified)."""
        return Surface(
            self.xs.copy(),
            self.ys.copy(),
            self.loss.copy(),
            self.done.copy(),
            {k: v.copy() for k, v in self.metrics.items()},
            None if self.stderr is None else self.stderr.copy(),
            self.directions,
            copy.deepcopy(self.metadata),
        )


@dataclass
class GridUpdate:
    """One finished chunk of a grid: its cells, their values, and the progress so far."""

    iy: np.ndarray
    ix: np.ndarray
    loss: np.ndarray
    metrics: dict[str, np.ndarray]
    stderr: np.ndarray | None
    done: int
    total: int
    elapsed_s: float
    eta_s: float | None
    surface: Surface  # a copy of everything computed so far

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class Line:
    """A 1-D loss profile: ``loss[i]`` at ``origin + ts[i] * direction``."""

    ts: np.ndarray
    loss: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    stderr: np.ndarray | None = None
    directions: Directions | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
