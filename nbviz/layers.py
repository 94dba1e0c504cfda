"""Model introspection shared by all backends: find layers (also inside nested models),
list image-like layers, and build feature-extractor models that work on nested models.

Layer names inside a nested model are written ``"outer/inner"`` (e.g. ``"vgg16/block3_conv1"``
for a VGG16 base inside a Sequential transfer-learning model). A plain inner name also works
when it is unique.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ._tf import require_keras
from .errors import LayerError, ModelError, closest_names, format_choices
from .scaling import PREPROCESSING_LAYERS
from .taps import Tap, is_subclassed_model, subclassed_model_error, tap_model


@dataclass(frozen=True)
class LayerInfo:
    """A layer of a model, with its full (possibly nested) name and output shape."""

    name: str  # full path, "outer/inner" for nested layers
    layer: Any
    output_shape: tuple | None
    kind: str  # class name

    @property
    def channels(self) -> int | None:
        s = self.output_shape
        return int(s[-1]) if s and s[-1] is not None else None

    @property
    def is_spatial(self) -> bool:
        """True if the output is an image-like map (batch, H, W, C)."""
        s = self.output_shape
        return s is not None and len(s) == 4


def shape_label(shape: tuple) -> str:
    """``"56x56x64"`` for a shape without its batch axis; undefined sizes read ``"?"``."""
    return "x".join("?" if d is None else str(d) for d in shape)


def is_preprocessing(info: LayerInfo) -> bool:
    """True for layers that only prepare the input (rescaling, normalization, augmentation,
    resizing): valid feature-map layers, but not where a picker should start."""
    return info.kind in PREPROCESSING_LAYERS


def _is_model(layer: Any) -> bool:
    keras = require_keras()
    return isinstance(layer, keras.Model)


def _output_shape(layer: Any) -> tuple | None:
    try:
        out = layer.output
    except (AttributeError, ValueError, RuntimeError):
        return None
    if isinstance(out, (list, tuple)):
        return None
    try:
        return tuple(out.shape)
    except AttributeError:
        return None


def iter_layers(model: Any, prefix: str = "") -> Iterator[LayerInfo]:
    """Yield :class:`LayerInfo` for every layer, descending into nested models."""
    keras = require_keras()
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        full = f"{prefix}{layer.name}"
        yield LayerInfo(full, layer, _output_shape(layer), type(layer).__name__)
        if _is_model(layer):
            yield from iter_layers(layer, prefix=f"{full}/")


def check_model_input(model: Any) -> tuple:
    """Return the model's single input shape, or raise :class:`ModelError` with the fix."""
    if is_subclassed_model(model):
        raise subclassed_model_error(model)
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ModelError(
            f"Model {getattr(model, 'name', model)!r} has no defined input (it was never built "
            "or called). Fix: give it an Input, e.g. keras.Sequential([keras.Input((64, 64, 3)), "
            "...]), or call model.build((None, 64, 64, 3)) before using nbviz."
        )
    if len(inputs) != 1:
        raise ModelError(
            f"Model {model.name!r} has {len(inputs)} inputs; nbviz's image tools need a model "
            "with one image input. Fix: wrap the branch you want in a single-input keras.Model."
        )
    shape = tuple(inputs[0].shape)
    if len(shape) == 4:
        check_channels_last(model, shape)
    return shape


def check_channels_last(model: Any, shape: tuple) -> None:
    """Raise :class:`ModelError` for a channels-first image model (nbviz reads channels last).

    ``shape`` is the model's rank-4 input shape; ``model`` may be ``None`` (shape check only).

    Without this, a (3, 32, 32) input is read as a 3x32 image with 32 channels and the user
    gets a puzzling channel-count error much later.
    """
    first = (
        []
        if model is None
        else [
            i.name
            for i in iter_layers(model)
            if getattr(i.layer, "data_format", None) == "channels_first"
        ]
    )
    looks_chw = shape[1] in (1, 3, 4) and shape[2] == shape[3] and (shape[3] or 0) > 4
    if not first and not looks_chw:
        return
    why = (
        f"its layers {format_choices(first, limit=5)} use data_format='channels_first'"
        if first
        else f"its input {shape[1:]} looks like (channels, height, width)"
    )
    c, h, w = shape[1:]
    raise ModelError(
        f"Model {getattr(model, 'name', 'with input ' + str(shape))!r} is channels-first ({why}); nbviz needs "
        f"channels-last images (height, width, channels). Fix: build the same architecture "
        f"with keras.Input(({h}, {w}, {c})) and data_format='channels_last' (the Keras default) "
        "and copy the weights with new_model.set_weights(model.get_weights()) (convolution "
        "kernels have the same shape in both layouts)."
    )


def find_layer(model: Any, name: str) -> LayerInfo:
    """Find a layer by name (``"outer/inner"`` or a unique inner name); clear error if absent."""
    if not isinstance(name, str):
        raise LayerError(f"Layer names are strings, got {type(name).__name__} {name!r}.")
    infos = list(iter_layers(model))
    exact = [i for i in infos if i.name == name]
    if exact:
        return exact[0]
    tail = [i for i in infos if i.name.rsplit("/", 1)[-1] == name]
    if len(tail) == 1:
        return tail[0]
    names = [i.name for i in infos]
    if len(tail) > 1:
        raise LayerError(
            f"Layer name {name!r} is ambiguous in model {model.name!r}; use the full path: "
            f"{format_choices([i.name for i in tail])}."
        )
    hint = closest_names(name, names)
    raise LayerError(
        f"No layer named {name!r} in model {model.name!r}."
        + (f" Did you mean {format_choices(hint)}?" if hint else "")
        + f" Valid layers: {format_choices(names)}."
    )


def spatial_layers(model: Any) -> list[LayerInfo]:
    """Layers whose output is an image-like map (batch, H, W, C), nested ones included."""
    return [i for i in iter_layers(model) if i.is_spatial and not _is_model(i.layer)]


def require_spatial(model: Any, name: str) -> LayerInfo:
    """Find ``name`` and check its output is (batch, H, W, C); explain why not otherwise."""
    info = find_layer(model, name)
    if not info.is_spatial or _is_model(info.layer):
        valid = [i.name for i in spatial_layers(model)]
        shape = info.output_shape
        why = (
            f"its output shape is {shape}, not an image-like (batch, height, width, channels) map"
            if shape is not None
            else "its output shape is undefined (the layer was never called or has several outputs)"
        )
        raise LayerError(
            f"Layer {info.name!r} ({info.kind}) cannot be shown as feature maps: {why}. "
            f"Pick one of the spatial layers: {format_choices(valid)}."
        )
    return info


def build_tap_model(model: Any, taps: Sequence[Tap | str], name: str = "nbviz_taps") -> Any:
    """A ``keras.Model`` from the model's input to the tensors named by ``taps`` (a list out).

    ``taps`` holds layer names (their output) or ``(name, "output" | "input")`` pairs; names
    may be short when unique (see :func:`find_layer`). Nested models at any depth work; the
    returned model shares every layer with ``model`` and runs it once, from the outer input.
    Call it with ``training=False``.
    """
    check_model_input(model)
    resolved: list[Tap] = []
    for tap in taps:
        pair: Tap = (tap, "output") if isinstance(tap, str) else tap
        n, kind = pair
        resolved.append((find_layer(model, n).name, kind))
    return tap_model(model, resolved, name=name)


def build_extractor(model: Any, names: list[str]) -> Any:
    """A ``keras.Model`` from the model's input to the outputs of ``names`` (a list out).

    Works for layers of nested models at any depth inside Sequential or Functional outer
    models (where a naive ``keras.Model(model.inputs, inner_layer.output)`` raises "graph
    disconnected"): one forward pass from the *outer* input, so the outer preprocessing runs
    first, and every layer is shared with ``model`` (no copies). Call it with
    ``training=False``. See :func:`build_tap_model` for layer inputs too.
    """
    return build_tap_model(model, list(names), name="nbviz_extractor")
