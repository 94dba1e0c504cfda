"""notebooks/05-your-own-model.ipynb in JupyterLab 4 (NBVIZ_FAST=1): a fine-tuning model around
a nested base; the live watch, the feature maps of an inner layer, the optimized image and the
landscape all render and stay after Run All (their static pictures hidden while live), with
no page errors."""

from __future__ import annotations

from .conftest import pixel_stats
from .widget_support import (
    kernel_value,
    notebook_code,
    wait_decoded_images,
    wait_nbviz_widgets_live,
)


def test_your_own_model_notebook_renders_in_lab(lab):
    name = "05-your-own-model.ipynb"
    lab.run_notebook(name, notebook_code(name), timeout=600)
    page = lab.page
    # explorer input + inner feature map + optimized image: real, decoded images
    wait_decoded_images(page, 3)
    # the watched landscape and the final one: heat maps with contour lines
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll('.bqplot g.curve path.line'))
                   .filter(p => (p.getAttribute('d') || '').split('L').length > 4).length >= 2""",
        timeout=120_000,
    )
    assert pixel_stats(page.locator(".bqplot:visible").last)["colors"] > 50
    assert kernel_value(lab, "explorer.layer") == "'base/conv2'"
    assert kernel_value(lab, "fm.scaling.range") == "(0.0, 255.0)"
    assert kernel_value(lab, "(explorer.error, opt.error, landscape.error)") == "(None, None, None)"
    # After Run All every widget is still there (the watch's, the explorer, optvis, the
    # landscape), each with its static picture below it, hidden while the view is live.
    assert len(wait_nbviz_widgets_live(page, 4)) == 4  # (the watch widget is shown twice)
    assert not [m for m in lab.console if m.startswith("[pageerror]")], lab.console_errors()
