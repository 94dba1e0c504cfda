"""Static matplotlib plots: seed-like contours, path, 3-D surface, line; no global figure state."""

from __future__ import annotations

import numpy as np
import pytest

from nbviz.landscape import (
    Line,
    Surface,
    grid_coords,
    plot_contour,
    plot_line,
    plot_path,
    plot_surface,
)
from nbviz.landscape.plot import contour_levels


def _bowl(nx=21, ny=15) -> Surface:
    xs, ys = grid_coords(nx), grid_coords(ny, 0.5)
    s = Surface.empty(xs, ys, metadata={"directions": {"anchors": {"a": [0.0, 0.0]}}})
    gx, gy = np.meshgrid(xs, ys)
    s.set_cells(*np.nonzero(np.ones_like(gx, bool)), (0.1 + gx**2 + 4 * gy**2).ravel(), {}, None)
    return s


def _pyplot_figures():
    import matplotlib.pyplot as plt

    return list(plt.get_fignums())


def test_contour_uses_log_levels_and_marks_nonfinite_cells():
    before = _pyplot_figures()
    s = _bowl()
    s.loss[3, 4] = np.nan  # computed but diverged
    ax = plot_contour(s, levels=12)
    cs = [c for c in ax.collections if hasattr(c, "levels")][0]
    ratios = cs.levels[1:] / cs.levels[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-9)  # geometric: log-spaced
    assert cs.levels[0] == pytest.approx(np.nanmin(s.loss))
    assert any(line.get_label() == "non-finite loss" for line in ax.lines)
    assert ax.texts, "contour labels (clabel) and anchors are drawn"
    assert ax.get_xlim() == (s.xs[0], s.xs[-1])
    assert _pyplot_figures() == before, "plots must not create pyplot figures"


def test_contour_levels_fall_back_to_linear_and_partial_surfaces_draw():
    z = np.array([[-1.0, 0.0], [1.0, 3.0]])
    lv, is_log = contour_levels(z, 5)
    assert not is_log and np.allclose(np.diff(lv), 1.0)
    s = _bowl(5, 4)
    s.done[:] = False
    s.loss[:] = np.nan
    plot_contour(s)  # nothing computed yet: no error


def test_path_surface_and_line_plots():
    import matplotlib.figure

    s = _bowl()
    ax = plot_contour(s)
    coords = np.stack([np.linspace(-1, 0, 30), np.linspace(0.5, 0, 30)], 1)
    assert plot_path(coords, ax=ax, steps=np.arange(0, 60, 2)) is ax
    assert ax.collections[-1].get_cmap().name == "cividis"
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        plot_path(np.zeros((3, 3)))
    ax3 = plot_surface(s, log=True)
    assert ax3.name == "3d" and isinstance(ax3.figure, matplotlib.figure.Figure)
    with pytest.raises(ValueError, match="3-D Axes"):
        plot_surface(s, ax=ax)
    line = Line(
        np.linspace(-1, 1, 11),
        np.linspace(0, 1, 11),
        stderr=np.full(11, 0.05),
        metadata={"directions": {"anchors": {"start": [0.0], "end": [1.0]}}},
    )
    line.loss[3] = np.nan
    axl = plot_line(line)
    assert any(line.get_label() == "non-finite loss" for line in axl.lines)
