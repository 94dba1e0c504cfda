"""FeatureMapExplorer in JupyterLab 4: renders, and the browser's controls drive the kernel."""

from __future__ import annotations

from .conftest import element_pixels, pixel_stats
from .widget_support import kernel_value, save_screenshot, wait_image_loaded, wait_src_change

CELLS = [
    """
import nbviz
from nbviz import demo

model = demo.load_demo_model()
w = nbviz.FeatureMapExplorer(model, demo.sample_image("grating_vertical_red"), layer="conv1")
w.add_class("nbviz-test-fm")
w.map_image.add_class("nbviz-test-map")
w.input_image.add_class("nbviz-test-input")
assert w.wait(60)
w
""",
]

MAP = ".nbviz-test-fm .nbviz-test-map"


def test_feature_map_explorer_renders_and_follows_the_slider(lab):
    lab.run_notebook("fm_widget.ipynb", CELLS)
    page = lab.page
    root = page.locator(".nbviz-test-fm").first
    root.wait_for(timeout=60_000)

    # input and map are real images, not empty boxes
    wait_image_loaded(page, ".nbviz-test-fm .nbviz-test-input")
    src0 = wait_image_loaded(page, MAP)
    assert page.locator(MAP).evaluate("i => i.naturalWidth") >= 64
    assert pixel_stats(page.locator(MAP))["colors"] > 20
    px0 = element_pixels(page.locator(MAP))
    status = page.locator(".nbviz-test-fm").get_by_text("channel 0 of 16")
    status.wait_for(timeout=30_000)

    # keyboard on the channel slider's handle: the kernel gets channel 1, the map changes
    handle = root.locator(".widget-slider .noUi-handle").first
    handle.focus()
    handle.press("ArrowRight")
    src1 = wait_src_change(page, MAP, src0)
    assert kernel_value(lab, "w.channel") == "1"
    page.locator(".nbviz-test-fm").get_by_text("channel 1 of 16").wait_for(timeout=30_000)
    px1 = element_pixels(page.locator(MAP))
    assert px0.shape == px1.shape and abs(px0 - px1).mean() > 1.0, "the map did not change"

    # a few more steps: each one is a new image and the kernel follows
    for _ in range(3):
        handle.press("ArrowRight")
    wait_src_change(page, MAP, src1)
    page.locator(".nbviz-test-fm").get_by_text("channel 4 of 16").wait_for(timeout=30_000)
    assert kernel_value(lab, "w.channel") == "4"

    # another layer from the dropdown is computed on the worker and shown
    src4 = page.locator(MAP).get_attribute("src")
    select = root.locator(".widget-dropdown select").first  # the layer picker
    label = select.locator("option", has_text="conv3").first.text_content()
    select.select_option(label=label)
    wait_src_change(page, MAP, src4, timeout_ms=60_000)
    page.locator(".nbviz-test-fm").get_by_text("of 64").first.wait_for(timeout=60_000)
    assert kernel_value(lab, "w.layer") == "'conv3'"
    assert kernel_value(lab, "w.error") == "None"

    # "all channels": the mosaic is wider than one map
    width1 = page.locator(MAP).evaluate("i => i.naturalWidth")
    src_single = page.locator(MAP).get_attribute("src")
    root.get_by_role("button", name="all channels").click()
    wait_src_change(page, MAP, src_single)
    assert kernel_value(lab, "w.mode") == "'grid'"
    assert page.locator(MAP).evaluate("i => i.naturalWidth") > width1
    page.locator(".nbviz-test-fm").get_by_text("all 64 maps").wait_for(timeout=30_000)
    save_screenshot(root, "feature-maps")
    assert not [m for m in lab.console if m.startswith("[pageerror]")], lab.console_errors()
