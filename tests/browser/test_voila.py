"""The 3-D views also render in Voila (dashboards / Binder's Voila URL)."""

from __future__ import annotations

from .conftest import element_pixels
from .test_render_stack import _wait_for_pixels
from .test_surface3d_browser import SETUP, _colourfulness


def test_surface_views_render_in_voila(voila_page):
    cells = [SETUP.format(kind="ipyvolume"), SETUP.format(kind="matplotlib")]
    voila_page.open("surface3d_voila.ipynb", cells)
    page = voila_page.page
    canvas = page.locator(".ipyvolume-canvas-container canvas").first
    canvas.wait_for(timeout=120_000)
    gl = _colourfulness(_wait_for_pixels(page, canvas, _colourfulness, 0.05))
    img = page.locator(".widget-image").first
    img.wait_for(timeout=120_000)
    page.wait_for_function(
        "() => { const i = document.querySelector('.widget-image');"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=60_000,
    )
    png = _colourfulness(element_pixels(img))
    print(f"voila: ipyvolume {gl:.1%}, matplotlib {png:.1%} coloured pixels")
    assert gl > 0.05 and png > 0.05, (gl, png, voila_page.console[-20:])
