"""What the landscape widget's controls say in JupyterLab 4 is true (issue 18 item 4): Stop is
enabled while a grid computes and stops it from the browser, Compute stays enabled (it
restarts), the progress label's count and seconds agree with the kernel's surface and the
status line, there is no ETA before a rate is known, and "range" shows the extent in use."""

from __future__ import annotations

import re

from .widget_support import kernel_value, wait_kernel_value

CELLS = [
    """
import nbviz
from nbviz import demo
from nbviz.landscape import WeightPathRecorder

x, y = demo.parabola_data(2048, seed=0)
mlp = demo.build_parabola_mlp(seed=0)
rec = WeightPathRecorder()
mlp.fit(x, y, epochs=3, batch_size=32, callbacks=[rec], verbose=0)
w = nbviz.LossLandscapeWidget(mlp, x, y, path=rec, directions="pca", resolution=101,
                              view3d=None)
w.add_class("nbviz-test-status")
w
""",
]

ROOT = ".nbviz-test-status"
LABEL = re.compile(r"(\d+)/(\d+) cells, ([\d.]+) s(?:, ETA ([\d.]+) s)?")


def _button(page, name: str):
    return page.locator(ROOT).first.get_by_role("button", name=name)


def test_stop_compute_progress_and_range_tell_the_truth_in_the_browser(lab):
    lab.run_notebook("landscape_status.ipynb", CELLS)
    page = lab.page
    page.locator(ROOT).first.wait_for(timeout=60_000)
    assert _button(page, "Stop").is_disabled() and _button(page, "Compute").is_enabled()
    assert page.locator(f"{ROOT} input[type=number]").first.input_value() == "1"

    _button(page, "Compute").click()
    # Stop is enabled while the 101 x 101 grid computes; Compute stays enabled (restart)
    page.wait_for_function(
        f"""() => {{ const b = Array.from(document.querySelectorAll('{ROOT} button'))
                       .find(b => b.textContent.trim() === 'Stop');
                     return b && !b.disabled; }}""",
        timeout=60_000,
    )
    assert _button(page, "Compute").is_enabled()
    # the first finished cells appear with a count and the time, with no ETA from them alone
    label = page.locator(f"{ROOT} .widget-html").filter(has_text="cells").first
    label.wait_for(timeout=120_000)
    first = LABEL.search(label.inner_text())
    assert first is not None and int(first[2]) == 101 * 101, label.inner_text()
    assert int(first[1]) < 101 * 101
    _button(page, "Stop").click()
    assert wait_kernel_value(lab, "w.computing", "False", 120) == "False"
    page.wait_for_function(
        f"""() => {{ const b = Array.from(document.querySelectorAll('{ROOT} button'))
                       .find(b => b.textContent.trim() === 'Stop');
                     return b && b.disabled; }}""",
        timeout=30_000,
    )
    done = int(kernel_value(lab, "w.surface.n_done"))
    assert 0 < done < 101 * 101
    page.wait_for_function(
        "([sel, n]) => Array.from(document.querySelectorAll(sel))"
        ".some(e => e.textContent.includes(`stopped: kept ${n} of 10201 cells`))",
        arg=[f"{ROOT} .widget-html", done],
        timeout=30_000,
    )
    final = LABEL.search(label.inner_text())
    status = page.locator(f"{ROOT} .widget-html").filter(has_text="stopped: kept").first
    took = re.search(r"cells in ([\d.]+) s", status.inner_text())
    assert final is not None and took is not None, (label.inner_text(), status.inner_text())
    assert int(final[1]) == done and final[4] is None  # one counter; no ETA when stopped
    assert abs(float(final[3]) - float(took[1])) <= 0.06  # one clock
    # "auto" is ticked and the range box shows the extent the PCA grid used, not 1
    extent = float(kernel_value(lab, "float(abs(w.surface.xs).max())"))
    shown = float(page.locator(f"{ROOT} input[type=number]").first.input_value())
    assert extent != 1.0 and abs(shown - extent) <= 1e-3 * extent, (shown, extent)
    assert not [m for m in lab.console if m.startswith("[pageerror]")], lab.console_errors()
