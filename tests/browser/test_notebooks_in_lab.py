"""The tour, ``03-loss-landscape`` and ``04-live-training`` run as a user runs them: Run All of
the real notebook's code cells in JupyterLab 4 (NBVIZ_FAST=1), with the page probe
(``PAGE_PROBE_JS``) watching every heat-map picture from the first cell on (issue 18, items 1,
2 and 4; ``05`` has its own test, ``test_notebook_your_own_model.py``).

After Run All every nbviz widget the notebook shows is still on the page and live (its static
picture present, hidden); each landscape shows a finished grid (heat map, iso-lines, read-out
squares) and tells the truth about it: nothing computing, Stop disabled, the whole grid
counted without an ETA, one clock for the progress label and the status line, the same texts
as the kernel's widget. While the notebook ran, each landscape redrew at most ``max_fps``
times a second at the kernel's throttle, its figure stayed bounded, its hidden 1-D view was
never drawn nor put in the page, and neither the page nor bqplot nor nbviz logged an error.

NBVIZ_FAST grids are small: the parabola MLP's 11x11 grid is done in one or a few chunks within
about a second, which the throttle may draw as one picture (2 were seen), so only the
finished picture is required there (the 41x41 grid filling in visibly is checked by
``test_landscape_live.py``). The convnet's grids (evaluated point by point, in chunks that grow
from one point) and the watched trainings (a landscape before ``fit``, during it and after)
show several (5-14 were seen), and at least 2 (3 for the watched convnet) are required.
"""

from __future__ import annotations

import ast
import html
import re
import time
from dataclasses import dataclass

import pytest

from .conftest import PAGE_PROBE_JS, pixel_stats
from .widget_support import (
    MAX_LIVE_ELEMENTS,
    check_landscape_view,
    heat_pictures,
    kernel_value,
    notebook_code,
    wait_decoded_images,
    wait_landscape_drawn,
    wait_nbviz_widgets_live,
)

pytestmark = pytest.mark.slow  # minutes each: Run All of a whole notebook


@dataclass(frozen=True)
class Shows:
    """What a notebook shows: ``widgets`` nbviz widgets, ``images`` decoded image widgets at
    least, and its landscapes (kernel expressions) with the distinct heat-map pictures each
    shows at least while the notebook runs."""

    widgets: int
    images: int
    landscapes: dict[str, int]


NOTEBOOKS = {
    # explorer, optvis, landscape (an 11x11 MLP grid: the finished picture at least)
    "00-tour.ipynb": Shows(3, 3, {"landscape": 1}),
    # the MLP's 11x11 grid and the convnet's 5x5 grid (from one point to all 25)
    "03-loss-landscape.ipynb": Shows(2, 0, {"widget": 1, "conv_widget": 2}),
    # three watched trainings: the landscape before fit and the final one at least (the
    # convnet's first grid alone shows two: its first point and all of it)
    "04-live-training.ipynb": Shows(
        3, 0, {"callback.widget": 2, "more.widget": 2, "conv_cb.widget": 3}
    ),
}

# The kernel's side of a landscape widget (``{w}``: the expression naming it).
_KERNEL = (
    "(lambda w: dict(id=w.model_id, done=int(w.surface.done.sum()), total=int(w.surface.done.size),"
    " computing=w.computing, stop_disabled=w.stop_button.disabled,"
    " bar=(w.progress.value, w.progress.max), progress=w.progress_label.value,"
    " status=w.status.value, drawn=w._draw.throttle.delivered,"
    " fps=1 / w._draw.throttle.min_interval, line_points=len(w.line_mark.x)))({w})"
)


def _text(value: str) -> str:
    """An HTML widget's value as the page shows its text."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", value)).split())


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_runs_all_in_lab_with_live_truthful_widgets(lab, name):
    shows = NOTEBOOKS[name]
    page = lab.page
    page.add_init_script(PAGE_PROBE_JS)
    t0 = time.monotonic()
    lab.run_notebook(name, notebook_code(name), timeout=600)
    run_s = time.monotonic() - t0  # every widget of the notebook lived within this time

    ids = wait_nbviz_widgets_live(page, shows.widgets)
    assert len(ids) == shows.widgets, ids
    if shows.images:
        wait_decoded_images(page, shows.images)
    pictures = heat_pictures(page)
    for expr, min_distinct in shows.landscapes.items():
        k = ast.literal_eval(kernel_value(lab, _KERNEL.format(w=expr)))
        assert k["id"] in ids, (expr, k["id"], ids)
        view = wait_landscape_drawn(page, k["id"])
        check_landscape_view(view)
        # the kernel's widget: finished, idle, and the page shows what it says
        assert k["done"] == k["total"] and not k["computing"] and k["stop_disabled"], (expr, k)
        assert k["bar"] == (k["done"], k["total"]), (expr, k)
        assert view["progress"].startswith(f"{k['done']}/{k['total']} cells"), (expr, view, k)
        assert (view["progress"], view["status"]) == (_text(k["progress"]), _text(k["status"]))
        # at most max_fps live redraws a second (+1 for the first, +1 for a final flush),
        # counted at the kernel's throttle over the whole Run All
        assert k["drawn"] <= k["fps"] * run_s + 2, (expr, k["drawn"], run_s)
        assert k["line_points"] == 0, (expr, k)  # the hidden 1-D view was never drawn
        seen = pictures.get(k["id"], {"distinct": 0, "live_elements": 0})
        assert seen["distinct"] >= min_distinct, (expr, seen)
        assert seen["live_elements"] <= MAX_LIVE_ELEMENTS, (expr, seen)
        figure = page.locator(f".nbviz-live-{k['id']} .bqplot").first
        assert pixel_stats(figure)["colors"] > 50, expr  # a drawn heat map, not an empty box
    # nothing runs any more: every Stop button on the page (optvis too) is disabled
    stops = page.locator("button:has-text('Stop')")
    assert stops.count() >= len(shows.landscapes)
    assert all(stops.nth(i).is_disabled() for i in range(stops.count()))
    errors = lab.console_errors()
    assert not errors, errors
    print(f"{name}: Run All {run_s:.0f} s; heat-map pictures {pictures}")
