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


def test_voila_shows_finished_cells_while_later_ones_run(voila_repo_config_page, tmp_path):
    """With the repository's voila.json (progressive rendering) a dashboard shows each cell's
    output as it finishes, not a spinner until the last cell is done: the first output is on
    the page while the second cell still waits (for a file only this test creates)."""
    release = tmp_path / "release"
    cells = [
        "print('first cell done')",
        "import pathlib, time\n"
        f"flag = pathlib.Path({str(release)!r})\n"
        "deadline = time.monotonic() + 600\n"
        "while not flag.exists() and time.monotonic() < deadline:\n"
        "    time.sleep(0.05)\n"
        "print('second cell done' if flag.exists() else 'second cell gave up')",
    ]
    voila_repo_config_page.open("progressive_voila.ipynb", cells)
    page = voila_repo_config_page.page
    page.get_by_text("first cell done").wait_for(timeout=120_000)
    assert "second cell" not in page.inner_text("body")  # it is still running
    release.touch()
    page.get_by_text("second cell done").wait_for(timeout=120_000)
