"""Live sharpness in JupyterLab 4: ``nbviz.watch(..., sharpness=k)`` draws the estimates made
during ``fit`` below the landscape, with the threshold line of the model's optimizer (Adam:
the preconditioned sharpness against (2 + 2 beta1) / ((1 - beta1) lr))."""

from __future__ import annotations

from .widget_support import kernel_value, save_screenshot

CELLS = [
    """
import nbviz
from nbviz import demo

x, y = demo.parabola_data(256, seed=0)
mlp = demo.build_parabola_mlp(seed=0)
cb = nbviz.watch(mlp, x, y, resolution=7, recompute_s=2.0, view3d=None, sharpness=4)
cb.widget.sharpness_view.add_class("nbviz-test-sharp")
""",
    """
mlp.fit(x, y, epochs=3, batch_size=32, callbacks=[cb], verbose=0)
assert cb.widget.wait(300)
""",
]

CURVE = ".nbviz-test-sharp g.curve path.line"


def test_live_sharpness_draws_estimates_made_during_fit(lab):
    lab.run_notebook("sharpness_widget.ipynb", CELLS, timeout=900)
    page = lab.page
    root = page.locator(".nbviz-test-sharp").first
    root.wait_for(timeout=60_000)
    n = int(kernel_value(lab, "len(cb.sharpness.history)"))
    last = int(kernel_value(lab, "int(cb.sharpness.steps[-1])"))
    assert n >= 3 and last <= 24  # estimates every 4 of the 24 training batches
    assert kernel_value(lab, "cb.sharpness.history[0].step < 24") == "True"  # during fit
    # the estimates curve has one vertex per estimate; the dashed threshold line is drawn too
    page.wait_for_function(
        """([sel, n]) => { const ps = Array.from(document.querySelectorAll(sel));
                           return ps.length >= 2 && ps.some(p =>
                             (p.getAttribute('d') || '').split('L').length >= n); }""",
        arg=[CURVE, n],
        timeout=60_000,
    )
    assert "preconditioned sharpness" in root.inner_text()
    save_screenshot(root, "sharpness")
    assert not [m for m in lab.console if m.startswith("[pageerror]")], lab.console_errors()
