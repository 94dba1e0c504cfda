"""Attribution: which pixels and which filters drive a prediction (headless, arrays out).

- :mod:`~nbviz.attribution.api` -- one call per method: :func:`saliency`,
  :func:`smoothgrad`, :func:`integrated_gradients`, :func:`grad_cam`,
  :func:`grad_cam_plus_plus`, :func:`layer_attribution` (channel and spatial x channel).
- :mod:`~nbviz.attribution.engine` -- :class:`Attributor`, compiled once per (model, layer,
  target): generators ``iter_smoothgrad`` / ``iter_integrated_gradients`` with progress
  and a stop event, batches sized from a memory budget.
- :mod:`~nbviz.attribution.targets` -- class logits (read before any softmax) or any optvis
  objective; :mod:`~nbviz.attribution.results` -- the result value objects;
  :mod:`~nbviz.attribution.icons` -- cached optvis images of single filters.

Example::

    from nbviz import attribution
    cam = attribution.grad_cam(model, image, target=3)       # class 3, last conv layer
    cam.heatmap()                                            # (H, W) in [0, 1]
    ig = attribution.integrated_gradients(model, image)      # top class, black baseline
    ig.completeness_error                                    # (N,) relative gap
    attribution.saliency(model, image, optvis.channel("conv3", 5))
"""

from .api import (
    attributor,
    grad_cam,
    grad_cam_plus_plus,
    integrated_gradients,
    layer_attribution,
    saliency,
    smoothgrad,
)
from .baselines import make_baselines
from .engine import IG_STEPS, SMOOTHGRAD_NOISE, SMOOTHGRAD_SAMPLES, Attributor, Progress
from .icons import ICON_STEPS, ChannelIcons, IconFrame
from .results import AttributionMap, CamMap, IntegratedGradientsMap, LayerAttribution
from .targets import ClassLogits, ObjectiveTarget, Target, find_logits_layer

__all__ = [
    "ICON_STEPS",
    "IG_STEPS",
    "SMOOTHGRAD_NOISE",
    "SMOOTHGRAD_SAMPLES",
    "AttributionMap",
    "Attributor",
    "CamMap",
    "ChannelIcons",
    "ClassLogits",
    "IconFrame",
    "IntegratedGradientsMap",
    "LayerAttribution",
    "ObjectiveTarget",
    "Progress",
    "Target",
    "attributor",
    "find_logits_layer",
    "grad_cam",
    "grad_cam_plus_plus",
    "integrated_gradients",
    "layer_attribution",
    "make_baselines",
    "saliency",
    "smoothgrad",
]
