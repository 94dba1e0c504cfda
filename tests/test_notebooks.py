"""Notebook tier: every notebook under notebooks/ executes without errors (NBVIZ_FAST=1).

The executed copies (with static pictures of their widgets) go to
``$NBVIZ_ARTIFACTS/notebooks`` (default ``test-artifacts/notebooks``), where the docs build
(``bash dev.sh docs``) reuses them instead of executing the notebooks again.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.notebook


def _runner():
    spec = importlib.util.spec_from_file_location(
        "run_notebooks", ROOT / "scripts" / "run_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path):
    import nbformat

    nb = _runner().execute_notebook(path)  # raises CellExecutionError on an error
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, errors
    # No red stderr boxes: TensorFlow's C++ start-up lines are kept off stderr by nbviz.
    stderr = [
        "".join(out.get("text", ""))
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stderr"
    ]
    assert not stderr, stderr
    out_dir = Path(os.environ.get("NBVIZ_ARTIFACTS", "test-artifacts")) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    _assert_every_nbviz_widget_keeps_its_picture(nb)
    if path.name == "00-tour.ipynb":
        _assert_tour_image_matches_measured_tuning(nb)


def _nbviz_widget_ids(nb) -> set[str]:
    """Model ids of the nbviz widgets in the saved widget state (they carry ``nbviz-live-``)."""
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    return {
        model_id
        for model_id, model in state.items()
        if f"nbviz-live-{model_id}" in model["state"].get("_dom_classes", [])
    }


def _assert_every_nbviz_widget_keeps_its_picture(nb):
    """Run All ends with every nbviz widget open (its view in the saved state) and a PNG of it
    right below its view, which ``nbconvert --to html`` shows."""
    from nbconvert import HTMLExporter

    runner = _runner()
    pairs = {
        view["data"][runner.WIDGET_MIME]["model_id"]: picture
        for view, picture in runner.widget_pictures(nb)
    }
    shown = _nbviz_widget_ids(nb)
    assert shown <= set(pairs), "an nbviz widget was closed (its view is gone)"
    missing = sorted(m for m in shown if pairs[m] is None or "image/png" not in pairs[m]["data"])
    assert not missing, f"nbviz widgets without a static picture: {missing}"
    html, _ = HTMLExporter().from_notebook_node(nb)
    for model_id in shown:
        png = pairs[model_id]["data"]["image/png"]
        assert base64.b64decode(png).startswith(b"\x89PNG")
        assert png in html, f"the HTML lacks the picture of widget {model_id}"


def _assert_tour_image_matches_measured_tuning(nb):
    """The tour's optimized image shows stripes within 15 degrees of the channel's measured
    preferred orientation (the tour prints both; the claim is computed, not asserted)."""
    text = "".join(
        "".join(out.get("text", ""))
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )
    match = re.search(r"\((\d+) degrees apart\)", text)
    assert match, text
    assert int(match.group(1)) <= 15, text
