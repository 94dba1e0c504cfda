"""The default 3-D surface view (nbviz.widgets.surface3d) really draws in JupyterLab 4."""

from __future__ import annotations

import numpy as np

from nbviz.widgets.surface3d import resolve_kind

from .test_render_stack import _wait_for_pixels

SETUP = """
import numpy as np
from nbviz.widgets.surface3d import make_surface_view

xs = np.linspace(-1, 1, 25); ys = np.linspace(-1.5, 1.5, 19)
Z = np.add.outer(ys**2, xs**2) + 0.2 * np.sin(4 * xs)[None, :]
Z[12:, 18:] = np.nan          # cells not computed yet
view = make_surface_view({kind!r}, width=420, height=360)
view.set_surface(xs, ys, Z)
t = np.linspace(0, 1, 20)
a, b = 0.9 * (1 - t), 1.2 * (1 - t)
view.set_path(a, b, a**2 + b**2)
print('KIND', view.kind)
view
"""


def _colourfulness(px: np.ndarray) -> float:
    """Fraction of saturated pixels (viridis surface / red path; axes are grey/black)."""
    return float(((px.max(axis=-1) - px.min(axis=-1)) > 60).mean())


def _check_view(lab, kind: str) -> float:
    lab.run_notebook(f"surface3d_{kind}.ipynb", [SETUP.format(kind=kind)])
    page = lab.page
    out = page.locator(".jp-OutputArea-output").filter(has_text="KIND")
    assert kind in out.first.inner_text()
    if kind == "ipyvolume":
        target = page.locator(".ipyvolume-canvas-container canvas").first
    else:
        target = page.locator(".widget-image").first
    target.wait_for(timeout=60_000)
    px = _wait_for_pixels(page, target, _colourfulness, 0.05)
    frac = _colourfulness(px)
    print(f"{kind} view: {frac:.1%} coloured pixels, {px.shape}; console errors: "
          f"{lab.console_errors()}")  # fmt: skip
    return frac


def test_default_surface_view_is_not_blank(lab):
    kind = resolve_kind("auto")
    frac = _check_view(lab, kind)
    assert frac > 0.05, frac
    # a bare Figure (no pylab container) raises nothing in the page
    assert not [m for m in lab.console if m.startswith("[pageerror]")], lab.console_errors()


def test_matplotlib_fallback_view_is_not_blank(lab):
    frac = _check_view(lab, "matplotlib")
    assert frac > 0.05, frac
    img = lab.page.locator(".widget-image").first
    assert img.evaluate("i => i.naturalWidth") == 420
