"""notebooks/00-tour.ipynb as a Voila dashboard: all three widgets render and stay, their static
pictures hidden while the views are live (NBVIZ_FAST=1)."""

from __future__ import annotations

from .conftest import pixel_stats
from .widget_support import notebook_code, wait_decoded_images, wait_nbviz_widgets_live


def test_tour_renders_in_voila(voila_page):
    voila_page.open("00-tour.ipynb", notebook_code("00-tour.ipynb"), timeout=300)
    page = voila_page.page
    # three image widgets at least (input, feature map, optvis frame), all decoded
    wait_decoded_images(page, 3, timeout_ms=240_000)
    # the loss landscape's contours (bqplot Lines with real paths)
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('.bqplot g.curve path.line'))
                   .filter(p => (p.getAttribute('d') || '').split('L').length > 8).length >= 3""",
        timeout=120_000,
    )
    assert pixel_stats(page.locator(".bqplot:visible").last)["colors"] > 100  # the landscape
    # all three widgets are still there at the end, their static pictures hidden while live
    assert len(wait_nbviz_widgets_live(page, 3)) == 3
    errors = [m for m in voila_page.console if m.startswith("[pageerror]")]
    assert not errors, errors
    assert "Traceback" not in page.inner_text("body")
