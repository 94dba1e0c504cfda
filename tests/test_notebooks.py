"""Notebook tier: every notebook under notebooks/ executes without errors (NBVIZ_FAST=1).

The executed copies (with static pictures of their widgets) go to
``$NBVIZ_ARTIFACTS/notebooks`` (default ``test-artifacts/notebooks``), where the docs build
(``bash dev.sh docs``) reuses them instead of executing the notebooks again.
"""

from __future__ import annotations

import importlib.util
import os
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
