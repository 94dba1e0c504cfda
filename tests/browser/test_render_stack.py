"""What renders in JupyterLab 4 with this stack: ipywidgets, bqplot, ipyvolume."""

from __future__ import annotations

import numpy as np

from .conftest import element_pixels, pixel_stats

IMAGE_CELLS = [
    """
import io
import ipywidgets as w
import numpy as np
from PIL import Image

rgb = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype('uint8')
buf = io.BytesIO(); Image.fromarray(rgb).save(buf, format='PNG')
slider = w.IntSlider(value=3, min=0, max=10, description='unit')
img = w.Image(value=buf.getvalue(), format='png', width=128, height=128)
w.VBox([slider, img])
""",
]


def test_ipywidgets_slider_and_image_render(lab):
    lab.run_notebook("widgets.ipynb", IMAGE_CELLS)
    page = lab.page
    page.wait_for_selector(".widget-slider", timeout=30_000)
    img = page.locator(".widget-image").first
    img.wait_for(timeout=30_000)
    src = img.get_attribute("src")
    assert src and src.startswith("blob:") or src.startswith("data:")
    page.wait_for_function(
        "() => { const i = document.querySelector('.widget-image');"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=30_000,
    )
    assert img.evaluate("i => i.naturalWidth") == 64
    # the slider's readout shows the Python value
    assert page.locator(".widget-readout").first.inner_text().strip() == "3"
    stats = pixel_stats(img)
    assert stats["std"] > 20, stats  # random noise, not a blank box


BQPLOT_CELLS = [
    """
import numpy as np
import bqplot as bq

x = np.linspace(-1, 1, 30); y = np.linspace(-1, 1, 20)
Z = np.add.outer(y**2, x**2)
sx, sy = bq.LinearScale(), bq.LinearScale()
sc = bq.ColorScale(scheme='viridis')
heat = bq.HeatMap(x=x, y=y, color=Z, scales={'x': sx, 'y': sy, 'color': sc})
t = np.linspace(0, 2 * np.pi, 50)
lines = bq.Lines(x=[0.5 * np.cos(t)], y=[0.5 * np.sin(t)], scales={'x': sx, 'y': sy},
                 colors=['white'])
fig = bq.Figure(marks=[heat, lines], axes=[bq.Axis(scale=sx), bq.Axis(scale=sy, orientation='vertical')],
                animation_duration=0)
fig
""",
]


def test_bqplot_heatmap_and_lines_render(lab):
    lab.run_notebook("bqplot.ipynb", BQPLOT_CELLS)
    page = lab.page
    page.wait_for_selector(".bqplot", timeout=60_000)
    path = page.locator("g.curve path.line").first
    path.wait_for(state="attached", timeout=60_000)
    page.wait_for_function(
        "() => { const p = document.querySelector('g.curve path.line');"
        " return p && (p.getAttribute('d') || '').length > 20; }",
        timeout=30_000,
    )
    d = path.get_attribute("d")
    assert d and d.startswith("M") and d.count("L") > 10, d
    heat = page.locator(".bqplot image.heatmap, .bqplot canvas").first
    heat.wait_for(state="attached", timeout=30_000)
    stats = pixel_stats(page.locator(".bqplot").first)
    assert stats["colors"] > 50, stats  # a viridis gradient, not an empty figure


IPYVOLUME_CELLS = [
    """
import numpy as np
import ipyvolume as ipv

x, y = np.meshgrid(np.linspace(-1, 1, 40), np.linspace(-1, 1, 40))
z = np.sin(3 * x) * np.cos(3 * y)
fig = ipv.figure(width=400, height=400)
ipv.plot_surface(x, z, y, color='orange')
ipv.show()
""",
]


def test_ipyvolume_plot_surface_renders(lab):
    """ipyvolume 0.6.3 (built for JupyterLab 3) draws a WebGL mesh in JupyterLab 4.

    Known front-end noise, recorded in the console log artifact: "Unsatisfied version 6.0.12
    of shared singleton module @jupyter-widgets/base (required ^1.0 || ... || ^4.0)" and, from
    pylab's Vue legend panel only, "this.$set is not a function". The canvas renders anyway.
    """
    lab.run_notebook("ipyvolume.ipynb", IPYVOLUME_CELLS)
    page = lab.page
    canvas = page.locator(".ipyvolume-canvas-container canvas").first
    canvas.wait_for(timeout=60_000)
    px = _wait_for_pixels(page, canvas, _orange_fraction, 0.05)
    frac = _orange_fraction(px)
    print(f"ipyvolume canvas: {frac:.1%} orange pixels; console:\n{lab.console_text()}")
    assert frac > 0.05, (frac, lab.console_errors())


def _orange_fraction(px: np.ndarray) -> float:
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    return float(((r > 120) & (r > g + 30) & (g > b + 30)).mean())


def _wait_for_pixels(page, locator, measure, threshold, timeout_s: float = 20.0):
    """WebGL draws a few frames after the DOM exists: poll the element's pixels."""
    deadline = page.evaluate("() => performance.now()") + timeout_s * 1000
    while True:
        px = element_pixels(locator)
        if measure(px) > threshold or page.evaluate("() => performance.now()") > deadline:
            return px
        page.wait_for_timeout(500)
