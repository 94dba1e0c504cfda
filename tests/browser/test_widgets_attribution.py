"""AttributionExplorer in JupyterLab 4: the heatmap, the ranked channels with their feature maps
and optimized images render, and a click on a channel selects it in the feature-map explorer."""

from __future__ import annotations

from .conftest import pixel_stats
from .widget_support import kernel_value, save_screenshot, wait_decoded_images, wait_kernel_value

CELLS = [
    """
import nbviz
from nbviz import demo

model = demo.load_demo_model()
w = nbviz.AttributionExplorer(model, demo.sample_image("grating_vertical_red"), top_channels=4)
w.add_class("nbviz-test-attr")
w.heat_image.add_class("nbviz-test-heat")
assert w.wait(600), w.status.value
w
""",
]


def test_attribution_explorer_renders_and_a_channel_click_selects_it(lab):
    lab.run_notebook("attribution_widget.ipynb", CELLS, timeout=900)
    page = lab.page
    root = page.locator(".nbviz-test-attr").first
    root.wait_for(timeout=60_000)
    # input, feature map, heatmap, and per ranked channel its map and optimized image
    wait_decoded_images(page, 3 + 2 * 4)
    assert pixel_stats(page.locator(".nbviz-test-heat"))["colors"] > 20
    assert kernel_value(lab, "w.error") == "None"
    ranked = kernel_value(lab, "w._ranked[1]")
    root.get_by_role("button", name=f"channel {ranked}:").first.click()
    assert wait_kernel_value(lab, "w.explorer.channel", ranked, timeout_s=60) == ranked
    save_screenshot(root, "attribution")
    assert not [m for m in lab.console if m.startswith("[pageerror]")], lab.console_errors()
