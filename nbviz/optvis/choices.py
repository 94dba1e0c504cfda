"""What a front end may choose for a model's optimization visualization, checked in one place.

An interactive view offers a layer, a channel of it, an objective kind and a gallery of rows;
:class:`Choices` knows which values are valid for the model (layers with a channel axis, no
softmax outputs, no whole nested models), picks sensible defaults, and freezes a set of chosen
values into the ``RunConfig`` of one run. It is headless: the widget
(:class:`~nbviz.widgets.OptVisWidget`) only shows its errors and options.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._tf import require_keras
from ..errors import ChannelError, ImageError, LayerError, format_choices
from .introspection import LayerTable, renderable_layers
from .objective_core import Objective
from .session import MODES, RunConfig

__all__ = ["Choices", "check_gallery_size"]


class Choices:
    """The layers, channels and objective kinds of ``model`` that can be rendered."""

    def __init__(self, model: Any) -> None:
        self.table = LayerTable(model)
        keras = require_keras()
        #: ``(name, output shape)`` in model order (inner layers instead of nested models).
        self.layers: list[tuple[str, tuple]] = [
            (name, tuple(self.table.output_shape(name)))
            for name in renderable_layers(model)
            if not isinstance(self.table.info(name).layer, keras.Model)
        ]
        if not self.layers:
            raise LayerError(
                f"Model {model.name!r} has no layer with a channel axis to visualize. "
                "Fix: pass a convolutional model."
            )

    def channel_count(self, layer: str) -> int:
        """Number of channels (conv filters, Dense neurons, classes) of ``layer``."""
        return int(self.table.output_shape(layer)[-1])

    def default_layer(self) -> str:
        """A convolutional layer about two thirds deep: past the edge detectors, before
        channels that need whole objects."""
        spatial = [n for n, s in self.layers if len(s) == 4]
        convs = [n for n in spatial if "Conv" in self.table.info(n).kind]
        layers = convs or spatial or [self.layers[0][0]]
        return layers[round((len(layers) - 1) * 2 / 3)]

    def kinds(self, layer: str, gallery: bool) -> list[str]:
        """The objective kinds ``layer`` offers (``"diversity"`` needs gallery mode)."""
        if len(self.table.output_shape(layer)) == 2:
            return ["class"]
        return ["channel", "neuron"] + (["diversity"] if gallery else [])

    def check_layer(self, name: str) -> str:
        """The full name of ``name`` if it can be rendered, else a :class:`LayerError`."""
        full = self.table.info(name).name
        valid = [n for n, _ in self.layers]
        if full not in valid:
            raise LayerError(
                f"Layer {full!r} cannot be visualized here (no channel axis, or a softmax "
                f"output). Pick one of: {format_choices(valid)}."
            )
        return full

    def check_channel(self, layer: str, value: Any) -> int:
        """``value`` as a channel index of ``layer``, else a :class:`ChannelError`."""
        value, n = int(value), self.channel_count(layer)
        if not 0 <= value < n:
            raise ChannelError(
                f"Channel {value} is out of range for layer {layer!r}, which has {n} "
                f"channels. Fix: pick a channel in 0..{n - 1}."
            )
        return value

    def check_kind(self, layer: str, kind: str, gallery: bool) -> str:
        """``kind`` if ``layer`` offers it (in this gallery mode), else a ``ValueError``."""
        options = self.kinds(layer, gallery)
        if kind not in options:
            if kind == "diversity" and not gallery:
                why = "it needs gallery mode (several rows). Fix: turn on gallery mode"
            else:
                why = f"layer {layer!r} offers {options}. Fix: pick one of them"
            raise ValueError(f"Objective kind {kind!r} is not available: {why}.")
        return kind

    def tiles(self, layer: str, gallery: bool, gallery_size: int, fixed: Any) -> int:
        """How many gallery tiles a run of these settings shows (0 outside gallery mode)."""
        if not gallery:
            return 0
        if fixed is not None:
            return fixed.rows or gallery_size
        return min(gallery_size, self.channel_count(layer))

    def config(self, values: dict[str, Any], fixed: Objective | None = None) -> RunConfig:
        """Freeze the chosen ``values`` (the widget's traits by name) into one run's config.

        ``fixed``: a custom objective used as is (layer, channel and kind are then ignored).
        """
        steps, learning_rate, size = values["steps"], values["learning_rate"], values["size"]
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}. Fix: pass e.g. steps=256.")
        if not learning_rate > 0:
            raise ValueError(
                f"learning_rate must be > 0, got {learning_rate}. Fix: pass e.g. 0.05."
            )
        if size < 8:
            raise ImageError(f"size must be at least 8 pixels, got {size}. Fix: pass e.g. 64.")
        gallery, gallery_size = bool(values["gallery"]), int(values["gallery_size"])
        if fixed is not None:
            batch = fixed.rows or (max(1, gallery_size) if gallery else 1)
            layer, kind, channels = "<custom>", "custom", tuple(range(batch))
        else:
            layer, kind, mode = values["layer"], values["kind"], MODES[values["kind"]]
            if mode.needs_gallery and not gallery:
                raise ValueError(
                    f"The {kind} objective needs several rows. Fix: turn on gallery mode or "
                    "pick another objective kind."
                )
            n = self.channel_count(layer)
            rows = max(1, min(gallery_size, n)) if gallery else 1
            channels = mode.row_channels(values["channel"], n, rows)
        return RunConfig(
            layer=layer,
            kind=kind,
            channels=channels,
            batch=len(channels),
            fft=values["parameterization"] == "spectral",
            decorrelate=bool(values["decorrelate"]),
            transforms=values["transforms"],
            size=int(size),
            learning_rate=float(learning_rate),
            seed=int(values["seed"]),
            steps=int(steps),
        )


def check_gallery_size(value: Any) -> int:
    """``gallery_size`` as an int >= 1, else a ValueError naming the fix."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"gallery_size is the number of channels shown in gallery mode and must be an int "
            f">= 1, got {value!r}. Fix: pass e.g. gallery_size=8, or gallery=False for one."
        )
    return int(value)
