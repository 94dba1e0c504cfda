"""What an attribution explains: a class logit, or any optvis objective.

A :class:`Target` names the layer tensors it needs (*taps*: a layer's output, or its input
when the value is recomputed from it) and turns them into one score per batch row, in graph
code. Class scores are read **before** any softmax, as Grad-CAM defines them: when the model
ends in a softmax Dense layer its logits are recomputed from the layer's input
(``kernel . x + bias``, :func:`nbviz.optvis.introspection.preactivation_fn`); a separate
``Softmax``/``Activation`` layer after the logits is skipped. The class index is a tensor
argument of the compiled functions, so switching classes never retraces; an objective's own
``tf.Variable`` indices (``set_index``) do the same for objectives.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._tf import require_keras, require_tensorflow
from ..errors import ChannelError, LayerError, ModelError, format_choices
from ..layers import LayerInfo, iter_layers
from ..optvis.introspection import LayerTable, linear_part_supported, preactivation_fn
from ..optvis.objectives import Context, Diversity, Objective, as_objective
from ..taps import Tap

DEMO_MODEL_NAME = "nbviz_demo_convnet"  # nbviz.demo.build_demo_convnet's model name

# Layers between the logits and the model output that do not change which class wins.
_PASS_THROUGH = (
    "Softmax",
    "Activation",
    "Dropout",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "SpatialDropout1D",
    "Identity",
)


class Target:
    """Base class: the taps a score needs, and the ``(B,)`` score from the tapped tensors."""

    taps: tuple[Tap, ...] = ()
    uses_class: bool = False  # True when the class index argument selects the score

    def scores(self, tapped: dict[Tap, Any], image: Any, classes: Any) -> Any:
        """``(B,)`` float32 scores (graph code). ``image``: the batch in ``[0, 1]``;
        ``classes``: ``(B,)`` int32 (read by class targets only)."""
        raise NotImplementedError

    def describe(self, classes: Sequence[int] | None = None) -> str:
        """A readable name for result objects and views."""
        raise NotImplementedError


class ClassLogits(Target):
    """The pre-softmax score of class ``classes[b]`` for row ``b``.

    ``layer``: the logits layer; default: found by walking back from the model output over
    softmax / activation / dropout layers to the Dense (or other) layer that produces the
    class scores.
    """

    uses_class = True

    def __init__(
        self, model: Any, layer: str | None = None, class_names: Sequence[str] | None = None
    ) -> None:
        table = LayerTable(model)
        info = table.info(layer) if layer is not None else find_logits_layer(model, table)
        shape = info.output_shape
        if shape is None or len(shape) != 2 or shape[-1] is None:
            raise ModelError(
                f"Layer {info.name!r} outputs {shape}, not class scores (batch, classes); "
                "class attribution needs a classifier. Fix: pass logits_layer='<your Dense "
                "layer>', or explain an optvis objective instead, e.g. "
                "target=optvis.channel('conv3', 5)."
            )
        self.info = info
        self.num_classes = int(shape[-1])
        self.preactivation = linear_part_supported(info) and _activation(info.layer) != "linear"
        self.taps = ((info.name, "input" if self.preactivation else "output"),)
        if class_names is None:
            class_names = known_class_names(model, self.num_classes)
        self.class_names = list(class_names) if class_names is not None else None
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ModelError(
                f"class_names has {len(self.class_names)} names but {info.name!r} has "
                f"{self.num_classes} classes. Fix: pass one name per class, in order."
            )

    def logits(self, tapped: dict[Tap, Any]) -> Any:
        """``(B, classes)`` float32 logits from the tapped tensor (graph code)."""
        tf = require_tensorflow()
        t = tapped[self.taps[0]]
        if self.preactivation:
            t = preactivation_fn(self.info.layer)(t)
        return tf.cast(t, tf.float32)

    def scores(self, tapped: dict[Tap, Any], image: Any, classes: Any) -> Any:
        tf = require_tensorflow()
        return tf.gather(self.logits(tapped), classes, axis=1, batch_dims=1)

    def check_classes(self, classes: Any) -> list[int]:
        """Validate class indices (one, or one per image): a :class:`ChannelError` names the range."""
        arr = np.asarray(classes)
        if (
            arr.size == 0
            or arr.ndim > 1
            or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_))
        ):
            raise ChannelError(
                f"A class is an integer index (or a list with one per image), got {classes!r}. "
                f"Valid classes are 0..{self.num_classes - 1}."
            )
        values = [int(v) for v in arr.reshape(-1)]
        bad = [v for v in values if not 0 <= v < self.num_classes]
        if bad:
            names = f" ({format_choices(self.class_names, limit=10)})" if self.class_names else ""
            raise ChannelError(
                f"Class {bad[0]} is out of range: layer {self.info.name!r} has "
                f"{self.num_classes} classes{names}. Fix: pass a class index in "
                f"0..{self.num_classes - 1}."
            )
        return values

    def describe(self, classes: Sequence[int] | None = None) -> str:
        if not classes:
            return f"class logit of {self.info.name!r}"
        parts = [f"{c} ({self.class_names[c]})" if self.class_names else str(c) for c in classes]
        return f"class {', '.join(parts)} (logit of {self.info.name!r})"


class ObjectiveTarget(Target):
    """An optvis :class:`~nbviz.optvis.Objective` (``channel("conv3", 5)``, sums,
    ``class_logit``...) read as in optvis: Dense/Conv layers before their fused activation."""

    def __init__(self, model: Any, objective: Objective | str) -> None:
        objective = as_objective(objective)
        table = LayerTable(model)
        objective.check(table)
        if objective.rows is not None:
            raise ChannelError(
                f"{objective!r} asks for {objective.rows} batch rows (one unit per row); an "
                "attribution explains one score. Fix: give each unit objective a single index, "
                "e.g. channel('conv3', 5), and attribute the units one at a time."
            )
        if any(isinstance(o, Diversity) for o in objective.leaves()):
            raise ChannelError(
                "diversity() compares the rows of a batch and means nothing for one image's "
                "attribution. Fix: leave it out of the target."
            )
        self.objective = objective
        self._pre = {n: table.uses_preactivation(n) for n in sorted(objective.layers)}
        self._infos = {n: table.info(n) for n in self._pre}
        self.taps = tuple((n, "input" if pre else "output") for n, pre in self._pre.items())

    def scores(self, tapped: dict[Tap, Any], image: Any, classes: Any) -> Any:
        tf = require_tensorflow()
        finished: dict[str, Any] = {}
        for name, kind in self.taps:
            t = tapped[(name, kind)]
            if kind == "input":
                t = preactivation_fn(self._infos[name].layer)(t)
            finished[name] = t
        ctx = RunTimeBatchContext(image, finished.__getitem__)
        return tf.cast(self.objective.value(ctx), tf.float32)

    def describe(self, classes: Sequence[int] | None = None) -> str:
        return repr(self.objective)


class RunTimeBatchContext(Context):
    """An optvis :class:`Context` whose batch size is a tensor known only when the compiled
    function runs (attribution batches vary: one image, then chunks of noisy samples)."""

    def __init__(self, image: Any, full: Any) -> None:
        tf = require_tensorflow()
        super().__init__(types.SimpleNamespace(shape=(1,)), full)
        self.image = image
        self.batch = tf.shape(image)[0]


def find_logits_layer(model: Any, table: LayerTable | None = None) -> LayerInfo:
    """The layer whose output (or pre-activation) holds the class scores.

    Walks back from the model's output over softmax / activation / dropout layers. A
    :class:`ModelError` says what to pass when the output is not a classifier's.
    """
    table = table or LayerTable(model)
    outer = [i for i in iter_layers(model) if "/" not in i.name]
    if not outer:
        raise ModelError(f"Model {model.name!r} has no layers. Fix: pass a built classifier.")
    out = model.outputs[0] if getattr(model, "outputs", None) else None
    info = next((i for i in outer if _output_of(i.layer) is out), outer[-1])
    seen = set()
    while type(info.layer).__name__ in _PASS_THROUGH and info.name not in seen:
        seen.add(info.name)
        before = table.layer_before(info.name)
        if before is None:
            break
        info = table.info(before)
    if type(info.layer).__name__ in ("Softmax", "Activation"):
        raise ModelError(
            f"Cannot find the layer before {info.name!r} that holds the class logits. Fix: pass "
            "logits_layer='<name of the Dense layer before the softmax>'."
        )
    return info


def known_class_names(model: Any, num_classes: int) -> list[str] | None:
    """Class names nbviz knows for ``model``: the bundled demo convnet's, ImageNet's for 1000
    classes when Keras has cached its class index; else ``None`` (class numbers)."""
    from ..demo import CLASS_NAMES
    from ..demo.applications import imagenet_class_names

    if getattr(model, "name", None) == DEMO_MODEL_NAME and num_classes == len(CLASS_NAMES):
        return list(CLASS_NAMES)
    if num_classes == 1000:
        return imagenet_class_names()
    return None


def _output_of(layer: Any) -> Any:
    try:
        return layer.output
    except (AttributeError, ValueError, RuntimeError):
        return None


def _activation(layer: Any) -> str:
    act = getattr(layer, "activation", None)
    return "linear" if act is None else getattr(act, "__name__", type(act).__name__)


def resolve_target(
    model: Any,
    target: Any,
    logits_layer: str | None = None,
    class_names: Sequence[str] | None = None,
) -> Target:
    """A :class:`Target` from ``target``: ``None`` or class indices mean class logits; an
    :class:`~nbviz.optvis.Objective` or ``"layer:unit"`` shorthand an objective."""
    require_keras()
    if isinstance(target, Target):
        return target
    if target is None or isinstance(target, (int, np.integer, list, tuple, np.ndarray)):
        return ClassLogits(model, logits_layer, class_names)
    if isinstance(target, (Objective, str)):
        return ObjectiveTarget(model, target)
    raise LayerError(
        f"A target is a class index, a list of them, an optvis Objective or a 'layer:unit' "
        f"string; got {type(target).__name__} {target!r}. Fix: e.g. target=3 or "
        "target=optvis.channel('conv3', 5)."
    )
