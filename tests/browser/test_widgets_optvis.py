"""OptVisWidget in JupyterLab 4: Start/Stop in the browser start and stop the frames."""

from __future__ import annotations

import time

from .conftest import pixel_stats
from .widget_support import (
    kernel_value,
    save_screenshot,
    wait_image_loaded,
    wait_kernel_value,
    wait_src_change,
)

CELLS = [
    """
import nbviz
from nbviz import demo

model = demo.load_demo_model()
# far more steps than the test waits for: only the Stop button ends this run
w = nbviz.OptVisWidget(model, layer="conv4", channel=4, steps=100_000, frame_every=2)
w.add_class("nbviz-test-ov")
w.image.add_class("nbviz-test-frame")
w.loss_figure.add_class("nbviz-test-loss")
w
""",
]

FRAME = ".nbviz-test-ov .nbviz-test-frame"


def _src(page) -> str:
    return page.locator(FRAME).first.get_attribute("src") or ""


def _distinct_srcs(page, count: int, timeout_s: float = 180.0) -> set[str]:
    """Waits until the frame showed ``count`` different pictures (a count, not a time window:
    on a busy machine frames come slower but must still come)."""
    seen = {_src(page)}
    deadline = time.monotonic() + timeout_s
    while len(seen) < count:
        assert time.monotonic() < deadline, f"only {len(seen)} distinct frames in {timeout_s} s"
        page.wait_for_timeout(100)
        seen.add(_src(page))
    return seen


def _settled_src(page, quiet_s: float = 2.0, timeout_s: float = 120.0) -> str:
    """The frame once it has not changed for ``quiet_s`` (the last frame after Stop landed)."""
    deadline = time.monotonic() + timeout_s
    src, since = _src(page), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "the frame keeps changing after Stop"
        page.wait_for_timeout(100)
        now = _src(page)
        if now != src:
            src, since = now, time.monotonic()
    return src


def test_optvis_start_and_stop_from_the_browser(lab):
    lab.run_notebook("optvis_widget.ipynb", CELLS)
    page = lab.page
    root = page.locator(".nbviz-test-ov").first
    root.wait_for(timeout=60_000)
    assert kernel_value(lab, "w.running") == "False"

    root.get_by_role("button", name="Start").click()
    # frames stream in: a real image, replaced again and again while it runs
    src0 = wait_image_loaded(page, FRAME, timeout_ms=90_000)
    src1 = wait_src_change(page, FRAME, src0, timeout_ms=60_000)
    wait_src_change(page, FRAME, src1, timeout_ms=30_000)
    assert kernel_value(lab, "w.running") == "True"
    _distinct_srcs(page, 3)  # frames keep coming while it runs
    assert pixel_stats(page.locator(FRAME))["colors"] > 50  # a picture, not a flat box
    step_running = int(kernel_value(lab, "w.step"))
    assert step_running > 0

    # the live loss curve is drawn
    page.wait_for_function(
        """() => { const p = document.querySelector('.nbviz-test-loss g.curve path.line');
                   return p && (p.getAttribute('d') || '').split('L').length > 5; }""",
        timeout=30_000,
    )

    root.get_by_role("button", name="Stop").click()
    # the kernel-side thread ends, and with it the frames
    assert wait_kernel_value(lab, "w.running", "False", timeout_s=30) == "False"
    assert wait_kernel_value(lab, "w._worker.running", "False", timeout_s=30) == "False"
    assert (
        kernel_value(
            lab,
            "[t.name for t in __import__('threading').enumerate() "
            "if t.name.startswith('nbviz-optvis')]",
        )
        == "[]"
    )
    stopped = _settled_src(page)  # the last (final PNG) frame landed, nothing comes after it
    step_stopped = int(kernel_value(lab, "w.step"))
    assert _settled_src(page) == stopped
    assert int(kernel_value(lab, "w.step")) == step_stopped
    assert step_stopped < 100_000 and kernel_value(lab, "w.error") == "None"
    save_screenshot(root, "optvis")

    # Start again continues the stopped run from where it was
    root.get_by_role("button", name="Start").click()
    wait_src_change(page, FRAME, stopped, timeout_ms=60_000)
    root.get_by_role("button", name="Stop").click()
    assert wait_kernel_value(lab, "w.running", "False", timeout_s=30) == "False"
    assert int(kernel_value(lab, "w.step")) > step_stopped
    assert not [m for m in lab.console if m.startswith("[pageerror]")], lab.console_errors()
