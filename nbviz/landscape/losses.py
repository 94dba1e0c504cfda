"""Per-example loss and metric functions for grid evaluation.

A grid point's loss is the mean over the data of a per-example loss, accumulated over
batches; per-example values also give the standard error of a subset estimate. Losses come
from the model's compiled loss or a given one (name, ``keras.losses.Loss`` or a function);
metrics are names (``"accuracy"`` is resolved from the output shape) or functions
``(y_true, y_pred) -> per-example values``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._tf import require_keras
from ..errors import ModelError

ACCURACY_NAMES = ("accuracy", "acc")


@dataclass(frozen=True)
class ExampleFn:
    """A named function ``(y_true, y_pred) -> values``; values are per example, or a scalar
    batch mean for functions that reduce themselves."""

    name: str
    fn: Callable[[Any, Any], Any]


def _name_of(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    return str(getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__)


def _as_example_fn(obj: Any, what: str) -> ExampleFn:
    keras = require_keras()
    if isinstance(obj, keras.losses.Loss):
        # Loss.call is the unreduced loss: one value per example.
        return ExampleFn(_name_of(obj), obj.call)
    if isinstance(obj, keras.metrics.Metric):
        raise ModelError(
            f"{what} {obj.name!r} is a stateful keras.metrics.Metric; grid evaluation needs a "
            "stateless function. Fix: pass its name (e.g. 'accuracy', 'mae') or a function "
            "(y_true, y_pred) -> per-example values, e.g. keras.metrics.sparse_categorical_accuracy."
        )
    if isinstance(obj, str):
        try:
            resolved = keras.losses.get(obj)
        except (ValueError, TypeError):
            resolved = getattr(keras.metrics, obj, None)
            if resolved is None or isinstance(resolved, type) or not callable(resolved):
                raise ModelError(
                    f"Unknown {what} {obj!r}. Fix: use a Keras loss name ('mse', 'mae', "
                    "'sparse_categorical_crossentropy', ...), 'accuracy', or pass a function "
                    "(y_true, y_pred) -> per-example values."
                ) from None
        if isinstance(resolved, keras.losses.Loss):
            return _as_example_fn(resolved, what)
        return ExampleFn(obj, resolved)
    if callable(obj):
        return ExampleFn(_name_of(obj), obj)
    raise ModelError(f"{what} must be a name, a keras.losses.Loss or a function, got {obj!r}.")


def resolve_loss(model: Any, loss: Any = None) -> ExampleFn:
    """The given loss, else the model's compiled loss; :class:`ModelError` when there is none."""
    if loss is None:
        loss = getattr(model, "loss", None)
        if isinstance(loss, (list, tuple)) and len(loss) == 1:
            loss = loss[0]
        if isinstance(loss, dict) and len(loss) == 1:
            loss = next(iter(loss.values()))
        if loss is None:
            raise ModelError(
                f"Model {getattr(model, 'name', model)!r} has no loss (it was not compiled, or "
                "compiled without one). Fix: pass loss=..., e.g. loss='mse' or "
                "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), or "
                "model.compile(loss=...) first."
            )
        if isinstance(loss, (list, tuple, dict)):
            raise ModelError(
                f"Model {model.name!r} has one loss per output ({loss!r}). Fix: pass loss= a "
                "function (y_true, y_pred) that takes the model's output structure and returns "
                "per-example values."
            )
    return _as_example_fn(loss, "loss")


def accuracy_fn(y_rank: int, y_last: int | None, out_rank: int, out_last: int | None) -> ExampleFn:
    """The accuracy that fits these shapes: binary (1 output), categorical (one-hot y) or sparse."""
    keras = require_keras()
    if out_last == 1:
        return ExampleFn("accuracy", keras.metrics.binary_accuracy)
    if y_rank == out_rank and y_last == out_last:
        return ExampleFn("accuracy", keras.metrics.categorical_accuracy)
    return ExampleFn("accuracy", keras.metrics.sparse_categorical_accuracy)


def resolve_metrics(metrics: Sequence[Any], y_shape: tuple, out_shape: tuple) -> list[ExampleFn]:
    """Metric functions; ``"accuracy"`` picks binary / categorical / sparse from the shapes."""
    if isinstance(metrics, (str, bytes)) or callable(metrics):
        metrics = [metrics]
    out = []
    for m in metrics:
        if isinstance(m, str) and m in ACCURACY_NAMES:
            out.append(
                accuracy_fn(
                    len(y_shape),
                    y_shape[-1] if len(y_shape) > 1 else None,
                    len(out_shape),
                    out_shape[-1],
                )
            )
        else:
            out.append(_as_example_fn(m, "metric"))
    names = [m.name for m in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ModelError(f"Metric names must be unique, got {names}. Fix: drop the duplicates.")
    return out
