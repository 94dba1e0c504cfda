"""nbviz: see inside Keras/TensorFlow networks, live, in a Jupyter notebook.

Backends (no widget imports, usable headless):

- :mod:`nbviz.featuremaps` -- activation maps of any layer, cached per layer and image.
- :mod:`nbviz.optvis` -- feature visualization by gradient ascent (objectives / param /
  transforms / render).
- :mod:`nbviz.landscape` -- loss landscapes (directions / grid / path / storage).
- :mod:`nbviz.attribution` -- which pixels and filters drive a prediction (Grad-CAM,
  saliency, SmoothGrad, Integrated Gradients, activation x gradient).
- :mod:`nbviz.demo` -- the bundled demo convnet, its procedural data, the seed article's MLP.

Widgets live in :mod:`nbviz.widgets` and are re-exported here lazily, so ``import nbviz``
does not import TensorFlow or ipywidgets until they are used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ._tf import quiet_tensorflow_import

quiet_tensorflow_import()  # TensorFlow's C++ start-up lines stay out of notebook cells

#: The package version: the one place it is set (the wheel's metadata reads it from here).
__version__ = "0.1.0"

_LAZY = {
    "AttributionExplorer": "nbviz.widgets",
    "FeatureMapExplorer": "nbviz.widgets",
    "OptVisWidget": "nbviz.widgets",
    "LossLandscapeWidget": "nbviz.widgets",
    "watch": "nbviz.widgets",
    "load_demo_model": "nbviz.demo",
    "load_demo_data": "nbviz.demo",
    "sample_images": "nbviz.demo",
    "sample_image": "nbviz.demo",
    "make_grating": "nbviz.demo",
    "parabola_data": "nbviz.demo",
    "build_parabola_mlp": "nbviz.demo",
    "load_application": "nbviz.demo",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbviz' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
