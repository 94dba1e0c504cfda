"""One call per method: ``grad_cam(model, image, target=3)``, arrays out.

``target`` is a class index (or one per image; ``None``: each image's top class), an optvis
:class:`~nbviz.optvis.Objective`, or ``"layer:unit"`` shorthand. The compiled
:class:`~nbviz.attribution.engine.Attributor` behind each call is kept per (model, layer,
target objective, options) while the model lives, so calling again with another image or
class does not retrace.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ..optvis.objectives import Objective
from .engine import IG_STEPS, SMOOTHGRAD_NOISE, SMOOTHGRAD_SAMPLES, Attributor
from .results import AttributionMap, CamMap, IntegratedGradientsMap, LayerAttribution

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def split_target(target: Any) -> tuple[Objective | str | None, Any]:
    """``(objective, classes)``: objectives and shorthand go to the compiled target, class
    indices (or ``None``) to the call."""
    if isinstance(target, (Objective, str)):
        return target, None
    return None, target


def attributor(
    model: Any, layer: str | None = None, target: Any = None, **options: Any
) -> Attributor:
    """The cached :class:`Attributor` for (model, layer, objective, options)."""
    objective, _ = split_target(target)
    key = (
        layer,
        objective if not isinstance(objective, str) else ("str", objective),
        tuple(sorted((k, v if _hashable(v) else id(v)) for k, v in options.items())),
    )
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = Attributor(model, layer, objective, **options)
    return per_model[key]


def _hashable(v: Any) -> bool:
    try:
        hash(v)
    except TypeError:
        return False
    return not isinstance(v, np.ndarray)


def saliency(model: Any, image: Any, target: Any = None, **options: Any) -> AttributionMap:
    """Vanilla gradients of the target with respect to the image (Simonyan et al. 2014)."""
    return attributor(model, None, target, **options).saliency(image, split_target(target)[1])


def smoothgrad(
    model: Any,
    image: Any,
    target: Any = None,
    samples: int = SMOOTHGRAD_SAMPLES,
    noise: float = SMOOTHGRAD_NOISE,
    seed: int = 0,
    **options: Any,
) -> AttributionMap:
    """SmoothGrad (Smilkov et al. 2017): mean gradient over noisy copies of the image."""
    a = attributor(model, None, target, **options)
    return a.smoothgrad(image, split_target(target)[1], samples, noise, seed)


def integrated_gradients(
    model: Any,
    image: Any,
    target: Any = None,
    baseline: Any = "black",
    steps: int = IG_STEPS,
    blur_sigma: float | None = None,
    **options: Any,
) -> IntegratedGradientsMap:
    """Integrated Gradients (Sundararajan et al. 2017) from a black, blurred or given baseline;
    the result reports its completeness error."""
    a = attributor(model, None, target, **options)
    return a.integrated_gradients(image, split_target(target)[1], baseline, steps, blur_sigma)


def grad_cam(
    model: Any, image: Any, target: Any = None, layer: str | None = None, **options: Any
) -> CamMap:
    """Grad-CAM (Selvaraju et al. 2017) on ``layer`` (default: the last spatial layer)."""
    return attributor(model, layer, target, **options).grad_cam(image, split_target(target)[1])


def grad_cam_plus_plus(
    model: Any, image: Any, target: Any = None, layer: str | None = None, **options: Any
) -> CamMap:
    """Grad-CAM++ (Chattopadhay et al. 2018) on ``layer`` (default: the last spatial layer)."""
    a = attributor(model, layer, target, **options)
    return a.grad_cam_plus_plus(image, split_target(target)[1])


def layer_attribution(
    model: Any, image: Any, target: Any = None, layer: str | None = None, **options: Any
) -> LayerAttribution:
    """Activation x gradient per position and filter of ``layer``: channel attribution
    (``.channels``), spatial attribution (``.spatial``) and both (``.values``)."""
    a = attributor(model, layer, target, **options)
    return a.layer_attribution(image, split_target(target)[1])
