"""Make JupyterLab save widget state in notebooks (for ``bash dev.sh lab`` and Binder).

JupyterLab 4 keeps the state of widgets out of a saved notebook unless its Jupyter Widgets
setting "Save Jupyter widget state in notebooks" (``saveState``) is on; reopened without it,
every widget output reads "Error displaying widget: model not found" until the cells run
again. This turns the setting on for one Python environment through JupyterLab's
``overrides.json`` (``<prefix>/share/jupyter/lab/settings/``), keeping whatever else the file
sets; a user's own setting still wins. nbviz also puts a static picture below each of its
widgets, which shows wherever the widget view cannot be drawn.

Usage: python scripts/save_widget_state.py [PREFIX]   (default: this Python's sys.prefix)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PLUGIN = "@jupyter-widgets/jupyterlab-manager:plugin"


def enable(prefix: Path) -> Path:
    """Set ``saveState`` in ``prefix``'s JupyterLab overrides (unless already set there);
    return the file's path."""
    path = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.setdefault(PLUGIN, {}).setdefault("saveState", True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


if __name__ == "__main__":
    target = enable(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(sys.prefix))
    print(f"[nbviz] JupyterLab saves widget state in notebooks ({target})")
