"""What optvis may read from a model: layers, activations, and one tap model to read them.

The renderer and the objectives never touch a model directly; they ask this module. A
:class:`LayerTable` finds and validates the layers an objective names; the functions below
it say what can be read of a layer *before* its activation (Lucid's pre-ReLU) and *one
channel at a time*; :class:`LayerReader` builds the one tap model
(:func:`nbviz.layers.build_tap_model`) that returns, in a single forward pass from the outer
input, everything the objective reads.

The one decision: Dense/ConvND layers are tapped at their *input*, and the step recomputes
``kernel . x + bias`` from the layer's public attributes (:func:`preactivation_fn`). That
gives the pre-activation value without rebuilding the model, and lets a channel objective
compute one output channel per row instead of all of them. Everything here only reads the
model: its variables are used live, never copied or changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._tf import require_keras, require_tensorflow
from ..errors import LayerError, ModelError, format_choices
from ..featuremaps.preprocess import reshaped_image_input
from ..layers import LayerInfo, build_tap_model, check_model_input, find_layer, iter_layers
from ..taps import Tap


# --------------------------------------------------------------------------------------------
# Resolving layer names against a model
# --------------------------------------------------------------------------------------------
class LayerTable:
    """Looks up and validates the layers objectives name, for one model.

    ``preactivation``: read Dense/Conv layers with a fused non-linear activation *before*
    the activation (Lucid's choice: a ReLU'd unit has no gradient where it is off, a softmax
    output can be raised by lowering other classes). Under mixed precision the linear part is
    recomputed in float32.
    """

    def __init__(self, model: Any, preactivation: bool = True) -> None:
        self.model = model
        self.preactivation = preactivation
        self._cache: dict[str, LayerInfo] = {}

    def info(self, name: str) -> LayerInfo:
        """The layer called ``name`` (:class:`LayerError` listing valid names if absent)."""
        if name not in self._cache:
            self._cache[name] = find_layer(self.model, name)
        return self._cache[name]

    def output_shape(self, name: str) -> tuple:
        """Output shape of ``name`` with a defined channel axis, or a :class:`LayerError`."""
        info = self.info(name)
        shape = info.output_shape
        if shape is None or len(shape) < 2 or shape[-1] is None:
            why = (
                "its output is undefined or a list"
                if shape is None
                else f"its output shape {shape} has no channel/unit axis"
            )
            raise LayerError(
                f"Layer {info.name!r} ({info.kind}) has no channels to optimize: {why}. "
                f"Pick a layer with channels: {format_choices(self.layers_with_channels())}."
            )
        return tuple(shape)

    def layers_with_channels(self) -> list[str]:
        """Names of the layers whose output has a channel/unit axis (valid objective targets)."""
        out = []
        for i in iter_layers(self.model):
            s = i.output_shape
            if s is not None and len(s) >= 2 and s[-1] is not None:
                out.append(i.name)
        return out

    def uses_preactivation(self, name: str) -> bool:
        """True if ``name`` will be read before its fused activation."""
        return self.preactivation and preactivation_supported(self.info(name))

    def is_softmax(self, name: str) -> bool:
        """True if the tensor objectives read from ``name`` is a softmax output."""
        keras = require_keras()
        layer = self.info(name).layer
        if isinstance(layer, keras.layers.Softmax):
            return True
        act = getattr(layer, "activation", None)
        is_softmax_fn = (
            act is keras.activations.softmax or getattr(act, "__name__", "") == "softmax"
        )
        return is_softmax_fn and not self.uses_preactivation(name)

    def layer_before(self, name: str) -> str | None:
        """Name of the layer whose output feeds ``name`` (plain functional graphs only)."""
        layer = self.info(name).layer
        try:
            src = layer.input
        except (AttributeError, ValueError, RuntimeError):
            return None
        for i in iter_layers(self.model):
            try:
                if i.layer.output is src:
                    return i.name
            except (AttributeError, ValueError, RuntimeError):
                continue
        return None

    def check_softmax(self, name: str, what: str) -> None:
        """Refuse softmax outputs with the reason and the layer to use instead."""
        if not self.is_softmax(name):
            return
        before = self.layer_before(name)
        fix = (
            f"Use the pre-softmax layer {before!r} (e.g. class_logit({before!r}, k) or "
            f"'{before}:k')."
            if before
            else "Use the layer before the softmax (the logits)."
        )
        raise LayerError(
            f"Layer {self.info(name).name!r} outputs softmax probabilities, which make a poor "
            f"{what}: a probability rises just as well by pushing the other classes down, so "
            f"the image shows what the class is *not*. {fix}"
        )


# Activations that act on each value alone: a layer's output channel k then depends on its
# pre-activation channel k only, so single channels can be computed on their own.
ELEMENTWISE_ACTIVATIONS = frozenset(
    "linear relu relu6 leaky_relu elu selu celu gelu sigmoid hard_sigmoid tanh softplus "
    "softsign silu swish hard_silu hard_swish mish exponential".split()
)


def linear_part_supported(info: LayerInfo) -> bool:
    """True for Dense/Conv1-3D layers (nested ones too) whose ``activation(kernel . x + bias)``
    nbviz can recompute from public attributes (plain float kernels, channels last)."""
    keras = require_keras()
    layer = info.layer
    kinds = (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    if not isinstance(layer, kinds):
        return False
    if getattr(layer, "quantization_mode", None) is not None:
        return False
    if getattr(layer, "padding", "valid") == "causal":
        return False
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def activation_name(layer: Any) -> str | None:
    """The name of a layer's activation function (``None`` if it has none)."""
    act = getattr(layer, "activation", None)
    return None if act is None else getattr(act, "__name__", type(act).__name__)


def preactivation_supported(info: LayerInfo) -> bool:
    """Dense/Conv1-3D layers (nested ones too) with a fused non-linear activation."""
    return linear_part_supported(info) and activation_name(info.layer) not in (None, "linear")


def unit_slicing_supported(info: LayerInfo, preactivation: bool) -> bool:
    """True if single output channels of the layer can be computed without the others."""
    if not linear_part_supported(info) or getattr(info.layer, "groups", 1) != 1:
        return False
    return preactivation or activation_name(info.layer) in ELEMENTWISE_ACTIVATIONS


def renderable_layers(model: Any) -> dict[str, int]:
    """Layers whose units can be visualized, mapped to their number of channels/units.

    In model order, nested layers as ``"outer/inner"``; softmax outputs are left out (see
    :meth:`LayerTable.check_softmax`). What a layer picker should offer.
    """
    check_image_model(model)
    table = LayerTable(model)
    return {
        n: int(table.output_shape(n)[-1])
        for n in table.layers_with_channels()
        if not table.is_softmax(n)
    }


def check_image_model(model: Any) -> tuple:
    """The model's input shape if it takes images ``(B, H, W, C)``, else a :class:`ModelError`."""
    shape = check_model_input(model)
    reshaped = reshaped_image_input(model) if len(shape) != 4 else None
    if reshaped is not None:
        layer, image = reshaped
        raise ModelError(
            f"Model {model.name!r} takes {shape} and its first layer {layer!r} reshapes that "
            f"into {image} images; feature visualization optimizes the model's input itself, "
            f"so it needs the image input. Fix: rebuild it on the image, reusing the trained "
            f"layers: keras.Sequential([keras.Input({image})] + model.layers[1:]) "
            "(feature maps work on the model as it is)."
        )
    if len(shape) != 4 or shape[-1] is None:
        raise ModelError(
            f"Feature visualization needs a model whose input is an image batch "
            f"(batch, height, width, channels); {model.name!r} takes {shape}. Fix: pass an image "
            "model (a convnet), or wrap the image part of yours in a keras.Model with an input "
            "like keras.Input((64, 64, 3))."
        )
    return tuple(shape)


def check_float_input(model: Any) -> None:
    """Refuse models with integer image inputs: no gradient flows back through the cast."""
    dtype = str(model.inputs[0].dtype)
    if "float" in dtype:
        return
    shape = tuple(model.inputs[0].shape[1:])
    raise ModelError(
        f"Model {model.name!r} takes {dtype} images, and no gradient flows through an integer "
        "input, so the image cannot be optimized. Fix: give the same layers a float input, "
        f"e.g. float_model = keras.models.clone_model(model, input_tensors=keras.Input({shape}), "
        "clone_function=lambda layer: layer) (it shares every weight), and visualize that."
    )


# --------------------------------------------------------------------------------------------
# Reading the layers: one tap model, finished in the step
# --------------------------------------------------------------------------------------------
def preactivation_fn(layer: Any, units: Any = None) -> Callable[[Any], Any]:
    """``f(layer_input) -> kernel . x + bias`` (the output before the activation) of a Dense
    or ConvND layer; with ``units`` (``(B,)`` int32), only output channel ``units[b]`` for
    row ``b`` (shape without the channel axis).

    Uses the layer's public attributes (kernel, bias, strides, ...) and ``keras.ops``,
    reading the model's variables live (no copies, so later training is seen).
    """
    keras = require_keras()
    tf = require_tensorflow()
    ops = keras.ops

    def pick(t: Any) -> Any:  # float32 also under mixed precision: objectives, sums stay exact
        t = ops.cast(ops.convert_to_tensor(t), "float32")
        return t if units is None else tf.gather(t, units, axis=-1)

    def finish(y: Any) -> Any:
        if layer.use_bias:
            y = y + pick(layer.bias)
        if units is None:
            return y
        rows = tf.range(tf.shape(y)[0])  # row b keeps its own channel b of the B computed
        return tf.gather(y, rows, axis=y.shape.rank - 1, batch_dims=1)

    if isinstance(layer, keras.layers.Dense):
        return lambda x: finish(ops.matmul(ops.cast(x, "float32"), pick(layer.kernel)))

    def conv(x: Any) -> Any:
        y = ops.conv(
            ops.cast(x, "float32"),
            pick(layer.kernel),
            strides=layer.strides,
            padding=layer.padding,
            data_format=layer.data_format,
            dilation_rate=layer.dilation_rate,
        )
        return finish(y)

    return conv


class LayerTap:
    """One layer the objective reads: what the extractor returns for it and how to finish it.

    ``mode`` is ``"output"`` (the extractor returns the layer's output) or ``"linear"`` (it
    returns the layer's *input*; the step recomputes ``kernel . x + bias`` and, unless reading
    pre-activation, the activation). Linear taps can compute single channels on their own, so
    a channel objective on a conv layer pays for one output channel per row, not all of them.
    """

    def __init__(self, name: str, info: Any, mode: str, activation: bool, sliceable: bool):
        self.name = name
        self.full_name = info.name
        self.layer = info.layer
        self.mode = mode
        self.activation = activation
        self.sliceable = sliceable

    def _activate(self, y: Any) -> Any:
        return self.layer.activation(y) if self.activation else y

    def full(self, x: Any) -> Any:
        if self.mode == "output":
            return require_tensorflow().cast(x, "float32")  # float16 under mixed precision
        return self._activate(preactivation_fn(self.layer)(x))

    def units(self, x: Any, index: Any) -> Any:
        if not self.sliceable:
            return None
        return self._activate(preactivation_fn(self.layer, index)(x))


def build_taps(model: Any, table: LayerTable, names: Sequence[str]) -> tuple[Any, list[LayerTap]]:
    """One extractor model for all needed layers, from the outer input, in one pass.

    Layers read before their activation (or one channel at a time) are tapped at their
    *input*, so the extractor stops before them; nested layers work the same way.
    """
    names = sorted(names)
    if not names:
        return None, []
    taps = []
    for n in names:
        info = table.info(n)
        pre = table.uses_preactivation(n)
        sliceable = unit_slicing_supported(info, pre)
        if pre or sliceable:
            taps.append(LayerTap(n, info, "linear", activation=not pre, sliceable=sliceable))
        else:
            taps.append(LayerTap(n, info, "output", False, False))
    wanted: list[Tap | str] = [
        (t.full_name, "input" if t.mode == "linear" else "output") for t in taps
    ]
    return build_tap_model(model, wanted, name="nbviz_optvis_taps"), taps


class LayerReader:
    """The tap model for the layers an objective reads, and how to finish each activation.

    ``read(x)`` runs the tap model once on model input ``x`` (graph code) and returns two
    functions for a :class:`~nbviz.optvis.objective_core.Context`: ``full(name)`` (the layer's
    activation) and ``units(name, index)`` (one channel per row, or ``None`` when the layer
    cannot be sliced). ``extractor`` is ``None`` when no layer is read.
    """

    def __init__(self, model: Any, table: LayerTable, names: Sequence[str]) -> None:
        self.extractor, self.taps = build_taps(model, table, names)

    def read(self, x: Any) -> tuple[Callable[[str], Any], Callable[[str, Any], Any]]:
        """``(full, units)`` readers of the tapped layers for model input ``x``."""
        if self.extractor is None:
            return (lambda name: None), (lambda name, index: None)
        outs = self.extractor(x, training=False)
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        inputs = {t.name: o for t, o in zip(self.taps, outs, strict=True)}
        taps = {t.name: t for t in self.taps}
        return (
            lambda name: taps[name].full(inputs[name]),
            lambda name, index: taps[name].units(inputs[name], index),
        )
