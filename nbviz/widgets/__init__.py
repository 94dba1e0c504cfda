"""Jupyter widgets: thin views that wire controls to the nbviz backends.

Each widget runs its TensorFlow work through :class:`nbviz.worker.Worker` and updates
the view through traits only.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "AttributionExplorer": "nbviz.widgets.attribution",
    "FeatureMapExplorer": "nbviz.widgets.feature_maps",
    "OptVisWidget": "nbviz.widgets.optvis",
    "LossLandscapeWidget": "nbviz.widgets.landscape",
    "watch": "nbviz.widgets.landscape",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbviz.widgets' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
