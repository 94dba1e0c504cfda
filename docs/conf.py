"""Sphinx configuration of the nbviz documentation site (``bash dev.sh docs``).

Why Sphinx: nbviz's docstrings are written in reStructuredText with Sphinx roles
(``:class:`Renderer```, ``:func:`~nbviz.landscape.evaluate_grid```; about 190 of them) and
numpydoc ``Parameters`` sections, which autodoc + napoleon render as cross-links, and a
warnings-as-errors build checks every one of them (``nitpicky``). myst-nb renders the
notebooks and the Markdown pages, and needs no pandoc. The notebooks are executed before the
build by ``scripts/run_notebooks.py`` (fast mode), not by myst-nb.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import api_pages  # noqa: E402

import nbviz  # noqa: E402

project = "nbviz"
author = "nbviz developers"
release = version = nbviz.__version__
copyright = "nbviz developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "api_pages.py"]
root_doc = "index"

# -- API reference -------------------------------------------------------------------------
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = False
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
# Cross-references between nbviz names must resolve; names of other libraries (numpy, keras,
# TensorFlow, ipywidgets, typing) are not documented here and are left as plain text.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!nbviz\b).*"), (r"py:.*", r".*\._.*")]  # + private names
# Internal types that appear in public dataclass fields (GridRun.evaluator) but are not API.
nitpick_ignore = [("py:class", "nbviz.landscape.evaluator.GridEvaluator")]

# -- notebooks -----------------------------------------------------------------------------
nb_execution_mode = "off"  # executed beforehand in fast mode (scripts/run_notebooks.py)
nb_ipywidgets_js = {}  # no widget JavaScript from the internet: widgets are static pictures
nb_output_stderr = "remove"  # TensorFlow's log lines
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3

# -- HTML ----------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"nbviz {release}"
html_static_path: list[str] = []


def setup(app):  # noqa: ANN001, ANN201 (Sphinx's hook)
    api_pages.write_api_pages(DOCS / "api")
    app.connect("autodoc-process-docstring", api_pages.check_docstring)
    app.connect("autodoc-skip-member", api_pages.skip_member)
