"""Feature visualization by gradient ascent (Lucid's recipe, TF2/Keras 3, compiled).

Modules, shaped like Lucid's ``optvis``:

- :mod:`~nbviz.optvis.objectives` -- what to maximize (channel, neuron, class logit,
  direction, diversity, penalties); they compose with ``+``, ``-``, ``*``. Built on
  :mod:`~nbviz.optvis.objective_core` (the algebra, the unit objectives).
- :mod:`~nbviz.optvis.introspection` -- what optvis may read from a model: layer table,
  pre-activation and per-channel reads, the one tap model.
- :mod:`~nbviz.optvis.param` -- how the image is parameterized (pixel / spectral, colour
  decorrelation, sigmoid).
- :mod:`~nbviz.optvis.transforms` -- random pad / jitter / scale / rotate, fused in-graph.
- :mod:`~nbviz.optvis.render` -- the compiled loop: :class:`Renderer` (``frames`` generator,
  ``run`` with callbacks) and ``render.render`` (one call; also :func:`visualize`).

Example::

    from nbviz import optvis
    result = optvis.visualize(model, "conv3:12", steps=256)
    result.images[0]  # (H, W, 3) float32 in [0, 1]
    r = optvis.Renderer(model, optvis.channel("conv3", [1, 2, 3]) - 1e-4 * optvis.total_variation())
    for frame in r.frames(128, every=8): ...
"""

from . import objectives, param, render, transforms
from .objectives import (
    Objective,
    as_objective,
    channel,
    class_logit,
    direction,
    diversity,
    from_function,
    l1,
    l2,
    neuron,
    renderable_layers,
    total_variation,
)
from .render import Callback, Frame, Renderer, Result
from .render import render as visualize

__all__ = [
    "Callback",
    "Frame",
    "Objective",
    "Renderer",
    "Result",
    "as_objective",
    "channel",
    "class_logit",
    "direction",
    "diversity",
    "from_function",
    "l1",
    "l2",
    "neuron",
    "objectives",
    "param",
    "render",
    "renderable_layers",
    "total_variation",
    "transforms",
    "visualize",
]
