"""One tap model for everything an attribution reads, from one forward pass.

A *tap* is ``(layer name, "output" | "input")``: a layer's output, or its input when the
target recomputes the layer's pre-activation from it (a softmax Dense layer's logits). The
tap model maps the model input to all taps at once, sharing the model's weights, so the
layer's activations and the target come from the same pass and the gradient of the target
reaches the layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import layers as layers_mod
from .._tf import require_keras
from ..errors import ModelError
from ..layers import find_layer

Tap = tuple[str, str]


def build_taps(model: Any, taps: Sequence[Tap]) -> Any:
    """A ``keras.Model`` from the model input to the tensors of ``taps`` (a list out)."""
    build_tap_model = getattr(layers_mod, "build_tap_model", None)
    if build_tap_model is not None:
        return build_tap_model(model, list(taps))
    keras = require_keras()
    infos = [find_layer(model, name) for name, _ in taps]
    if all(kind == "output" for _, kind in taps):
        return layers_mod.build_extractor(model, [i.name for i in infos])
    if any("/" in i.name for i in infos):
        raise ModelError(
            "Reading a layer's input inside a nested model needs nbviz.layers.build_tap_model. "
            "Fix: pass the nested model itself."
        )
    tensors = [i.layer.input if kind == "input" else i.layer.output
               for i, (_, kind) in zip(infos, taps, strict=True)]
    return keras.Model(model.inputs[0], tensors, name="nbviz_attribution_taps")
