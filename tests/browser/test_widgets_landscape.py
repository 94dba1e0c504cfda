"""LossLandscapeWidget in JupyterLab 4: heat map, contours, path and 3-D view render; the
browser's directions dropdown and Compute button recompute the grid on the kernel."""

from __future__ import annotations

import re

from .conftest import element_pixels, pixel_stats
from .test_render_stack import _wait_for_pixels
from .test_surface3d_browser import _colourfulness
from .widget_support import kernel_value, save_screenshot, wait_kernel_value

CELLS = [
    """
import nbviz
from nbviz import demo
from nbviz.landscape import WeightPathRecorder

x, y = demo.parabola_data(256, seed=0)
mlp = demo.build_parabola_mlp(seed=0)
rec = WeightPathRecorder()
mlp.fit(x, y, epochs=3, batch_size=32, callbacks=[rec], verbose=0)
w = nbviz.LossLandscapeWidget(mlp, x, y, path=rec, directions="pca", resolution=15,
                              autostart=True)
w.add_class("nbviz-test-ll")
w.figure.add_class("nbviz-test-2d")
w.view3d.widget.add_class("nbviz-test-3d")
assert w.wait(120) and w.error is None, w.error
print("VIEW3D", w.view3d.kind)
w
""",
]

FIG = ".nbviz-test-ll .nbviz-test-2d"

# The d attributes of every bqplot Lines path in the 2-D figure (contour levels, path line).
_LINES_JS = f"""() => Array.from(document.querySelectorAll('{FIG} g.curve path.line'))
    .map(p => p.getAttribute('d') || '').filter(d => d.length > 10)"""


def test_landscape_renders_and_recomputes_from_the_browser(lab):
    lab.run_notebook("landscape_widget.ipynb", CELLS)
    page = lab.page
    root = page.locator(".nbviz-test-ll").first
    root.wait_for(timeout=60_000)
    fig = page.locator(FIG).first
    fig.wait_for(timeout=60_000)

    # contours: several non-empty iso-line paths (plus the training path line)
    page.wait_for_function(f"() => ({_LINES_JS})().length >= 5", timeout=60_000)
    lines = page.evaluate(_LINES_JS)
    # one path per contour level (bqplot: a row of the 2-D x/y arrays), plus the path line
    assert sum(d.count("L") >= 8 for d in lines) >= 5, [d[:80] for d in lines]
    # heat map: bqplot 0.13 draws HeatMap into an <image class="heatmap"> (or a canvas)
    heat = page.locator(f"{FIG} image.heatmap, {FIG} canvas").first
    heat.wait_for(state="attached", timeout=30_000)
    tag = heat.evaluate("e => e.tagName.toLowerCase()")
    box = heat.bounding_box()
    assert box and box["width"] > 100 and box["height"] > 100, (tag, box)
    stats = pixel_stats(fig)
    assert stats["colors"] > 100, stats  # viridis gradient + lines, not an empty frame
    # the heat map shows the viridis colour bar's colours, not an opaque layer over it (the
    # invisible hover squares once covered it in bqplot's default red-yellow-green)
    px = element_pixels(fig)
    red = (px[..., 0] > px[..., 1] + 60) & (px[..., 0] > px[..., 2] + 60)
    assert red.mean() < 0.01, f"{red.mean():.1%} red pixels: something covers the heat map"
    save_screenshot(fig, "loss-landscape-2d", max_width=520)

    # the read-out: hovering a tile of the finished grid shows that cell's (a, b, loss)
    tile = page.locator(f"{FIG} .heatmapcell").nth(60)
    tile.hover(force=True)  # transparent tiles: "force" skips the visibility check
    tip = page.locator(".bqplot_mark_tooltip").filter(has_text="loss").first
    tip.wait_for(state="visible", timeout=30_000)
    text = tip.inner_text()
    numbers = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text)]
    assert len(numbers) == 3, text
    a, b, loss = numbers
    s = "w.surface"  # the cell nearest to the tooltip's (a, b), as the kernel has it
    cell = f"{s}.loss[abs({s}.ys - {b}).argmin(), abs({s}.xs - {a}).argmin()]"
    kernel_loss = float(kernel_value(lab, f"float({cell})"))
    assert abs(loss - kernel_loss) <= 1e-3 * abs(kernel_loss), (text, kernel_loss)

    # 3-D view (ipyvolume WebGL canvas or the matplotlib image fallback) is not blank
    kind = kernel_value(lab, "w.view3d.kind")
    if kind == "'ipyvolume'":
        target = page.locator(".nbviz-test-3d .ipyvolume-canvas-container canvas").first
    else:
        target = page.locator(".nbviz-test-3d .widget-image").first
    target.wait_for(timeout=60_000)
    px = _wait_for_pixels(page, target, _colourfulness, 0.05)
    assert _colourfulness(px) > 0.05, (kind, _colourfulness(px))
    save_screenshot(page.locator(".nbviz-test-3d").first, "loss-landscape-3d", max_width=380)

    # browser: random directions + Compute -> the kernel recomputes, the contours change
    assert kernel_value(lab, "w.current_directions.kind") == "'pca'"
    before = sorted(lines)
    root.locator(".widget-dropdown select").first.select_option(label="random")
    assert wait_kernel_value(lab, "w.directions", "'random'") == "'random'"
    root.get_by_role("button", name="Compute").click()
    assert wait_kernel_value(lab, "w.current_directions.kind", "'random'", 60) == "'random'"
    assert kernel_value(lab, "w.wait(120)") == "True"
    assert kernel_value(lab, "w.error") == "None"
    assert kernel_value(lab, "int(w.surface.done.sum())") == "225"
    page.wait_for_function(
        f"(old) => {{ const now = ({_LINES_JS})().sort();"
        " return now.length >= 1 && JSON.stringify(now) !== JSON.stringify(old); }",
        arg=before,
        timeout=30_000,
    )
    after = element_pixels(fig)
    assert after.std() > 10
    assert not [m for m in lab.console if m.startswith("[pageerror]")], lab.console_errors()
