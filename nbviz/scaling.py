"""Which pixel values a model expects, read from its own preprocessing layers.

The keras.io fine-tuning recipe puts ``Rescaling(1 / 127.5, offset=-1)`` in front of the base,
and ``keras.applications`` such as EfficientNet, ConvNeXt or MobileNetV3 carry a ``Rescaling``
or ``Normalization`` layer inside: those models take pixels in ``[0, 255]``. Feeding them
``[0, 1]`` gives a nearly black image and wrong pictures with no error. :func:`input_scaling`
finds the first layer that changes values on the path from the input (skipping augmentation,
resizing and cropping layers, which run in inference mode, and descending into nested models)
and derives the range from it:

* ``Rescaling(scale, offset)``: a scale of at most 1/50 maps 8-bit pixels to a few units, so
  the model takes ``[0, 255]``; a larger scale (e.g. ``Rescaling(2, offset=-1)``) takes ``[0, 1]``.
* ``Normalization(mean, variance)``: a mean above 2 or a standard deviation above 2 means raw
  ``[0, 255]`` pixels; otherwise ``[0, 1]``.
* an integer input (``keras.Input(dtype="uint8")``): ``[0, 255]`` integers.

An explicit ``input_range=`` (feature maps) or ``value_range=`` (optvis), or a ``preprocess=``
hook, always wins over the detection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._tf import require_keras

#: Layers that leave pixel values alone (in inference mode) and may come before the scaling.
_TRANSPARENT = (
    "InputLayer RandomFlip RandomRotation RandomZoom RandomTranslation RandomCrop RandomContrast "
    "RandomBrightness RandomHeight RandomWidth Resizing CenterCrop Dropout GaussianNoise "
    "SpatialDropout2D Activation Identity"
).split()


#: Layers that prepare the input: transparent ones plus those that set the value range.
PREPROCESSING_LAYERS = frozenset([*_TRANSPARENT, "Rescaling", "Normalization"]) - {
    "Activation",
    "Dropout",
    "SpatialDropout2D",
    "Identity",
}


@dataclass(frozen=True)
class InputScaling:
    """The value range a model's image input expects, and why nbviz thinks so."""

    low: float
    high: float
    source: str  # e.g. "layer 'rescaling' (Rescaling scale=0.00784, offset=-1)"
    integer_dtype: str | None = None  # the input's dtype when it takes integers

    @property
    def range(self) -> tuple[float, float]:
        return (self.low, self.high)

    def describe(self) -> str:
        kind = f"{self.integer_dtype} " if self.integer_dtype else ""
        return f"{kind}pixels in [{self.low:g}, {self.high:g}] (from {self.source})"


UNIT = (0.0, 1.0)
BYTE = (0.0, 255.0)


def input_scaling(model: Any) -> InputScaling | None:
    """The input range ``model`` expects, or ``None`` when nothing in it says.

    See the module docstring for the rules. Never raises on odd models: anything it cannot
    read gives ``None`` (the caller's default then applies).
    """
    keras = require_keras()
    try:
        dtype = str(model.inputs[0].dtype)
    except (AttributeError, ValueError, IndexError, TypeError):
        return None
    integer = dtype if ("int" in dtype or dtype == "bool") else None
    layer = _first_value_layer(model, keras)
    found: tuple[tuple[float, float], str] | None = None
    if isinstance(layer, keras.layers.Rescaling):
        scale = float(np.max(np.abs(np.asarray(layer.scale, dtype=np.float64))))
        offset = np.asarray(layer.offset, dtype=np.float64)
        rng = BYTE if scale <= 1 / 50 else UNIT
        found = (
            rng,
            f"layer {layer.name!r} (Rescaling scale={scale:.3g}, "
            f"offset={np.round(offset, 3).tolist()})",
        )
    elif isinstance(layer, keras.layers.Normalization):
        stats = _normalization_stats(layer)
        if stats is not None:
            mean, std = stats
            rng = BYTE if (mean > 2 or std > 2) else UNIT
            found = (
                rng,
                f"layer {layer.name!r} (Normalization mean up to {mean:.3g}, std up to {std:.3g})",
            )
    if found is None and integer:
        found = (BYTE, f"the model's {dtype} input")
    if found is None:
        return None
    (lo, hi), source = found
    return InputScaling(lo, hi, source, integer)


def _first_value_layer(model: Any, keras: Any) -> Any:
    """The first layer on the input path that changes values (nested models descended)."""
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            return _first_value_layer(layer, keras)
        if type(layer).__name__ in _TRANSPARENT:
            continue
        return layer
    return None


def _normalization_stats(layer: Any) -> tuple[float, float] | None:
    """``(max |mean|, max std)`` of an adapted or configured ``Normalization`` layer."""
    try:
        mean = np.asarray(layer.mean, dtype=np.float64)
        var = np.asarray(layer.variance, dtype=np.float64)
    except (AttributeError, TypeError, ValueError):
        return None
    if mean.size == 0 or not np.all(np.isfinite(mean)):
        return None
    if getattr(layer, "invert", False):
        return None  # an output de-normalizer, not input scaling
    return float(np.max(np.abs(mean))), float(np.sqrt(np.max(var)))


def resolve_input_range(
    explicit: tuple[float, float] | None, preprocess: Any, scaling: InputScaling | None
) -> tuple[float, float]:
    """The range user pixels are scaled to before the model (or ``preprocess``) sees them.

    An explicit range wins; then ``(0, 255)`` when a ``preprocess`` hook is given (Keras
    applications' ``preprocess_input`` take 0..255); then the model's own scaling; else
    ``(0, 1)``.
    """
    if explicit is not None:
        lo, hi = (float(v) for v in explicit)
        if not hi > lo:
            raise ValueError(f"input_range must be (low, high) with high > low; got {explicit}.")
        return (lo, hi)
    if preprocess is not None:
        return BYTE
    return scaling.range if scaling is not None else UNIT
