"""Static pictures of widgets in a real kernel (nbclient): the picture below a widget's view is
refreshed from the kernel thread after a *later* cell, survives ``close()``, and is never sent
from a worker thread (nbclient would drop it)."""

from __future__ import annotations

import base64

import pytest

pytestmark = pytest.mark.notebook

CELLS = [
    "import nbviz\nfrom nbviz import demo\n"
    "w = nbviz.OptVisWidget(demo.load_demo_model(), layer='conv2', channel=3, steps=8)\nw",
    "w.start()\nw.wait(120)",
    "import threading\nfrom nbviz.widgets.static_picture import refresh_picture\n"
    "w.seed = 1; w.start(); w.wait(120)\n"
    "result = []\n"
    "t = threading.Thread(target=lambda: result.append(refresh_picture(w)))\n"
    "t.start(); t.join()\nprint('from a worker thread:', result)",
    "w.close()\nprint('closed:', w.comm is None)",
]


def _execute(cells):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    return nb


def test_picture_is_refreshed_after_later_cells_and_survives_close():
    nb = _execute(CELLS)
    view, picture = nb.cells[0].outputs
    assert "application/vnd.jupyter.widget-view+json" in view["data"]
    model_id = view["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    # Updated by display id from cells 2-4 (the first cell only showed a placeholder).
    png = base64.b64decode(picture["data"]["image/png"])
    assert png.startswith(b"\x89PNG")
    assert f"nbviz-picture-{model_id}" in picture["data"]["text/html"]
    assert f"body:has(.nbviz-live-{model_id})" in picture["data"]["text/html"]
    assert "from a worker thread: [False]" in nb.cells[2].outputs[0]["text"]
    # Closing leaves the last picture in place.
    assert "closed: True" in nb.cells[3].outputs[0]["text"]
    assert not [o for c in nb.cells for o in c.outputs if o.get("output_type") == "error"]
