"""notebooks/00-tour.ipynb as a Voila dashboard: all three widgets render (NBVIZ_FAST=1)."""

from __future__ import annotations

import nbformat

from .conftest import REPO, pixel_stats
from .widget_support import wait_image_loaded

TOUR = REPO / "notebooks" / "00-tour.ipynb"


def test_tour_renders_in_voila(voila_page):
    nb = nbformat.read(TOUR, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    voila_page.open("00-tour.ipynb", cells, timeout=300)
    page = voila_page.page
    # three image widgets at least (input, feature map, optvis frame), all decoded
    page.wait_for_function(
        """() => { const imgs = Array.from(document.querySelectorAll('.widget-image'));
                   return imgs.filter(i => i.complete && i.naturalWidth > 0).length >= 3; }""",
        timeout=240_000,
    )
    wait_image_loaded(page, ".widget-image")
    # the loss landscape's contours (bqplot Lines with real paths)
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('.bqplot g.curve path.line'))
                   .filter(p => (p.getAttribute('d') || '').split('L').length > 8).length >= 3""",
        timeout=120_000,
    )
    assert pixel_stats(page.locator(".bqplot:visible").last)["colors"] > 100  # the landscape
    errors = [m for m in voila_page.console if m.startswith("[pageerror]")]
    assert not errors, errors
    assert "Traceback" not in page.inner_text("body")
