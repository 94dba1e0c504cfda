"""Reach any layer's input or output from the *outer* model's input, in one forward pass.

A fine-tuning model wraps a pretrained base: ``Rescaling -> base -> pooling -> Dense``. The
base's layers live in the base's own graph, so ``keras.Model(model.input, inner.output)``
raises "graph disconnected", and feeding the base directly loses the outer preprocessing and
the head. :func:`build_tap_model` instead replays the outer graph on a new input with the
*same layer objects* (``keras.models.clone_model(..., clone_function=lambda l: l,
call_function=...)`` for Functional models, a layer-by-layer rebuild for Sequential ones). Where
the replay reaches a nested model whose layers are wanted, it calls a multi-output version of
that model instead, built the same way, recursively; every other layer is simply called. The
result is one ``keras.Model`` from the outer input to all wanted tensors plus nothing else:
one forward pass, every weight shared (nothing copied, nothing re-created), any depth.

Names follow :mod:`nbviz.layers`: ``"outer_layer"`` or ``"base/inner"`` (``"a/b/c"`` for two
levels). A tap is ``(name, "output")`` or ``(name, "input")``; the input of a Dense/Conv layer
is what optvis needs to recompute its pre-activation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from ._tf import require_keras
from .errors import LayerError, ModelError, format_choices

TapKind = Literal["output", "input"]
Tap = tuple[str, TapKind]


def tap_model(model: Any, taps: Sequence[Tap], name: str = "nbviz_taps") -> Any:
    """A ``keras.Model`` from ``model``'s input to the tensors named by ``taps`` (a list out).

    ``taps`` are ``(full layer name, "output" | "input")`` pairs with names as
    :func:`nbviz.layers.find_layer` returns them (use :func:`nbviz.layers.build_tap_model`
    to resolve short names). The new model shares every layer (and so every weight) with
    ``model``; calling it runs the network once, and only as far as the taps need. Call it
    with ``training=False``.
    """
    keras = require_keras()
    wanted: dict[Tap, None] = {}
    for n, kind in taps:
        if kind not in ("output", "input"):
            raise ValueError(f"A tap is (layer name, 'output' | 'input'); got kind {kind!r}.")
        wanted[(n, kind)] = None
    spec = model.inputs[0]
    inp = keras.Input(batch_shape=tuple(spec.shape), dtype=spec.dtype, name="nbviz_input")
    captured, _ = _replay(model, inp, wanted, need_output=False)
    return keras.Model(inp, [captured[t] for t in taps], name=name)


def _replay(model: Any, x: Any, wanted: dict[Tap, None], need_output: bool) -> tuple[dict, Any]:
    """Call ``model``'s layers on the symbolic ``x``; return ``({tap: tensor}, model output)``.

    ``wanted`` names taps relative to ``model``. Only what the taps (and, with
    ``need_output``, the model's output) depend on is computed: feature maps of an early
    layer of the base do not run the rest of the network.
    """
    keras = require_keras()
    direct: dict[str, list[TapKind]] = {}
    nested: dict[str, dict[Tap, None]] = {}
    for n, kind in wanted:
        if "/" in n:
            head, rest = n.split("/", 1)
            nested.setdefault(head, {})[(rest, kind)] = None
        else:
            direct.setdefault(n, []).append(kind)
    # model.layers is in execution (topological) order: a nested model must also return its
    # output when a wanted layer comes after it.
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    last = max(order[n] for n in [*direct, *nested])
    captured: dict[Tap, Any] = {}
    calls: dict[str, int] = {}

    def call(layer: Any, *args: Any, **kw: Any) -> Any:
        calls[layer.name] = calls.get(layer.name, 0) + 1
        if calls[layer.name] > 1 and (layer.name in direct or layer.name in nested):
            raise _called_twice(model, layer.name)
        out = None
        if layer.name in nested:
            if len(args) != 1 or isinstance(args[0], (list, tuple, dict)):
                raise ModelError(
                    f"Nested model {layer.name!r} inside {model.name!r} takes several inputs; "
                    "nbviz reads layers of nested models that take one input. Fix: wrap the "
                    "single-input branch you want in its own keras.Model and pass that."
                )
            needed = need_output or order[layer.name] < last
            inner, out = _replay(layer, args[0], nested[layer.name], needed)
            captured.update({(f"{layer.name}/{n}", k): t for (n, k), t in inner.items()})
        if out is None:  # a plain layer, or a nested one whose output nothing wanted needs
            out = layer(*args, **kw)
        for kind in direct.get(layer.name, ()):
            captured[(layer.name, kind)] = args[0] if kind == "input" else out
        return out

    if isinstance(model, keras.Sequential):
        outputs = x
        for i, layer in enumerate(model.layers):
            if i > last and not need_output:
                break
            if not isinstance(layer, keras.layers.InputLayer):
                outputs = call(layer, outputs)
        return _check_all(model, wanted, captured), outputs

    _check_functional(model)
    clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    keys = list(_check_all(model, wanted, captured))
    extra = list(clone.outputs) if need_output else []
    part = keras.Model(
        clone.inputs, [captured[k] for k in keys] + extra, name=f"nbviz_{model.name}_taps"
    )
    res = part(x)
    res = list(res) if isinstance(res, (list, tuple)) else [res]
    outputs = None
    if need_output:
        outputs = res[len(keys)] if len(extra) == 1 else res[len(keys) :]
    return dict(zip(keys, res[: len(keys)], strict=True)), outputs


def _check_all(model: Any, wanted: dict[Tap, None], captured: dict[Tap, Any]) -> dict:
    missing = [n for n, kind in wanted if (n, kind) not in captured]
    if missing:
        raise LayerError(
            f"Layers {format_choices(missing)} of {model.name!r} are not on the path from its "
            "input to its outputs (the model never calls them), so they have no activations. "
            "Fix: pick a layer the model uses."
        )
    return captured


def _check_functional(model: Any) -> None:
    """Refuse subclassed models with a message that says what nbviz needs."""
    if is_subclassed_model(model):
        raise subclassed_model_error(model)


def is_subclassed_model(model: Any) -> bool:
    """True for a ``keras.Model`` subclass whose ``call`` is user Python code (no layer graph)."""
    keras = require_keras()
    if isinstance(model, keras.Sequential):
        return False
    try:
        return not model.inputs  # a Functional model always has symbolic inputs
    except (AttributeError, ValueError):
        return True


def subclassed_model_error(model: Any) -> ModelError:
    """The error for reading layers of a subclassed model: what nbviz needs and how to get it."""
    cls = type(model).__name__
    return ModelError(
        f"Model {getattr(model, 'name', cls)!r} is a subclassed keras.Model ({cls}): its call() "
        "is Python code, so nbviz cannot see which layers it calls or reach their activations "
        "(feature maps and optimization visualization read layer outputs). Loss landscapes "
        "work on it as it is. Fix: build the same network with the Functional API (keras.Input "
        "and layer calls, or keras.Sequential) and copy the weights with "
        "functional.set_weights(model.get_weights()), or pass a Functional sub-model that "
        "your model calls (e.g. its convolutional base)."
    )


def _called_twice(model: Any, layer: str) -> ModelError:
    return ModelError(
        f"Layer {layer!r} is called more than once in {model.name!r} (e.g. a shared base applied "
        "to two inputs), so its activations are ambiguous. Fix: build a keras.Model around the "
        "one call you want (keras.Model(model.input, that_branch_output)) and pass that."
    )
