"""The default 3-D surface view (nbviz.widgets.surface3d) really draws in JupyterLab 4."""

from __future__ import annotations

import numpy as np
import pytest

from nbviz.widgets.surface3d import resolve_kind

from .conftest import element_pixels
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


def _settled_pixels(page, locator, unlike: np.ndarray | None = None, timeout_s: float = 90.0):
    """The element's pixels once they differ from ``unlike`` (when given) and two reads in a
    row agree: waits for the redraw to land, however busy the machine is, not a fixed time."""
    deadline = page.evaluate("() => performance.now()") + timeout_s * 1000
    last = None
    while True:
        px = element_pixels(locator)
        changed = unlike is None or px.shape != unlike.shape or not np.array_equal(px, unlike)
        if changed and last is not None and np.array_equal(px, last):
            return px
        if page.evaluate("() => performance.now()") > deadline:
            raise AssertionError(f"the view did not settle on a new picture in {timeout_s} s")
        last = px if changed else None
        page.wait_for_timeout(300)


def _red(px: np.ndarray) -> int:
    """Pixels of the red path (viridis has no saturated red)."""
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    return int(((r > 150) & (g < 90) & (b < 90)).sum())


@pytest.mark.parametrize("requested", ["auto", "matplotlib"])
def test_view_updates_live_after_display(lab, requested):
    """Cells and path points arrive while the view is on screen (a live landscape)."""
    kind = resolve_kind(requested)
    lab.run_notebook(f"surface3d_live_{kind}.ipynb", [
        "import numpy as np\n"
        "from nbviz.widgets.surface3d import make_surface_view\n"
        "xs = np.linspace(-1, 1, 21); ys = np.linspace(-1, 1, 17)\n"
        "Z = np.full((17, 21), np.nan)\n"
        f"view = make_surface_view({kind!r}, width=400, height=340)\n"
        "view.set_surface(xs, ys, Z)\n"
        "t = np.linspace(0, 1, 12); pa = 0.9 - 0.9 * t; pb = -0.9 + 0.9 * t\n"
        "view",
    ])  # fmt: skip
    page = lab.page
    sel = ".ipyvolume-canvas-container canvas" if kind == "ipyvolume" else ".widget-image"
    target = page.locator(sel).first
    target.wait_for(timeout=60_000)
    shown = _settled_pixels(page, target)
    empty = _colourfulness(shown)

    def update(code: str, changes: bool = True) -> np.ndarray:
        nonlocal shown
        reply = lab.execute(code)
        assert reply == {"status": "ok", "error": None}, reply
        shown = _settled_pixels(page, target, unlike=shown if changes else None)
        return shown

    # the whole grid at once, then the path in two growing steps
    filled = update("Z[:] = np.add.outer(ys**2, xs**2); view.set_surface(xs, ys, Z)")
    short = update("view.set_path(pa[:4], pb[:4], pa[:4]**2 + pb[:4]**2)")
    full = update("view.set_path(pa, pb, pa**2 + pb**2)")
    hidden = update("view.show_path = False")
    steps = {
        "empty": empty,
        "filled": _colourfulness(filled),
        "red_filled": _red(filled), "red_short": _red(short), "red_full": _red(full),
        "red_hidden": _red(hidden),
    }  # fmt: skip
    print(f"{kind} live updates: {steps}")
    assert steps["empty"] < 0.01 and steps["filled"] > 0.05, steps
    assert steps["red_filled"] < steps["red_short"] < steps["red_full"], steps
    assert steps["red_hidden"] < steps["red_short"], steps
