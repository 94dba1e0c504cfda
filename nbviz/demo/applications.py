"""Keras application models (VGG16, ResNet50V2, ...) with ImageNet weights, as Keras loads them.

``load_application("VGG16")`` looks for the file Keras itself downloads (e.g.
``~/.keras/models/vgg16_weights_tf_dim_ordering_tf_kernels.h5``) and loads it from there; when
it is missing, Keras downloads it into that cache (Binder and laptops have a network). Only
when that download fails (offline machines) does
:class:`~nbviz.errors.WeightsUnavailableError` say which file, where to put it and how to get
it; ``download=False`` never touches the network. ``weights=None`` builds the architecture with
random weights and ``weights="<path>"`` loads any weights file of the same architecture.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from .._tf import require_keras
from ..errors import ModelError, WeightsUnavailableError, closest_names, format_choices


@dataclass(frozen=True)
class Application:
    """How Keras names one application: constructor, preprocess module, weight files."""

    module: str  # keras.applications.<module> holds preprocess_input
    weights_stem: str  # "<stem>_weights_tf_dim_ordering_tf_kernels[_notop].h5"
    default_size: int = 224


#: The ``keras.applications`` models :func:`load_application` knows, by name.
APPLICATIONS: dict[str, Application] = {
    "VGG16": Application("vgg16", "vgg16"),
    "VGG19": Application("vgg19", "vgg19"),
    "ResNet50": Application("resnet", "resnet50"),
    "ResNet101": Application("resnet", "resnet101"),
    "ResNet152": Application("resnet", "resnet152"),
    "ResNet50V2": Application("resnet_v2", "resnet50v2"),
    "ResNet101V2": Application("resnet_v2", "resnet101v2"),
    "ResNet152V2": Application("resnet_v2", "resnet152v2"),
    "MobileNetV2": Application("mobilenet_v2", "mobilenet_v2"),
    "Xception": Application("xception", "xception", 299),
    "InceptionV3": Application("inception_v3", "inception_v3", 299),
    "DenseNet121": Application("densenet", "densenet121"),
    "DenseNet169": Application("densenet", "densenet169"),
    "DenseNet201": Application("densenet", "densenet201"),
}

_MOBILENET_V2_SIZES = (96, 128, 160, 192, 224)


def _lookup(name: str) -> Application:
    if name in APPLICATIONS:
        return APPLICATIONS[name]
    by_lower = {k.lower(): k for k in APPLICATIONS}
    if name.lower() in by_lower:
        return APPLICATIONS[by_lower[name.lower()]]
    hint = closest_names(name, list(APPLICATIONS))
    raise ModelError(
        f"Unknown application {name!r}."
        + (f" Did you mean {', '.join(map(repr, hint))}?" if hint else "")
        + f" Valid names: {format_choices(list(APPLICATIONS))}."
    )


def _canonical(name: str) -> str:
    app = _lookup(name)
    return next(k for k, v in APPLICATIONS.items() if v is app)


def keras_cache_dirs() -> list[Path]:
    """Folders where Keras keeps downloaded weights, in the order Keras uses them.

    ``$KERAS_HOME/models`` when KERAS_HOME is set (read now, not at import), else
    ``~/.keras/models``; then ``/tmp/.keras/models``, Keras' fallback when the first is not
    writable.
    """
    home = os.environ.get("KERAS_HOME")
    base = Path(home).expanduser() if home else Path("~/.keras").expanduser()
    dirs = [base / "models"]
    fallback = Path("/tmp/.keras/models")
    if fallback not in dirs:
        dirs.append(fallback)
    return dirs


def imagenet_weights_filename(
    name: str, include_top: bool = True, input_shape: tuple | None = None, alpha: float = 1.0
) -> str:
    """The file name Keras downloads ImageNet weights of application ``name`` to."""
    name = _canonical(name)
    app = APPLICATIONS[name]
    if name == "MobileNetV2":
        rows = app.default_size
        if input_shape is not None and input_shape[0] == input_shape[1]:
            if input_shape[0] in _MOBILENET_V2_SIZES:
                rows = int(input_shape[0])
        suffix = "" if include_top else "_no_top"
        return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{rows}{suffix}.h5"
    suffix = "" if include_top else "_notop"
    return f"{app.weights_stem}_weights_tf_dim_ordering_tf_kernels{suffix}.h5"


def find_imagenet_weights(
    name: str, include_top: bool = True, input_shape: tuple | None = None, alpha: float = 1.0
) -> Path | None:
    """Path of the cached ImageNet weights file, or None when it is not on this machine."""
    filename = imagenet_weights_filename(name, include_top, input_shape, alpha)
    for folder in keras_cache_dirs():
        candidate = folder / filename
        if candidate.is_file():
            return candidate
    return None


def application_preprocess(name: str) -> Callable[..., Any]:
    """``keras.applications.<module>.preprocess_input`` matching application ``name``.

    It takes images in [0, 255] (RGB) and returns what the network expects.
    """
    keras = require_keras()
    app = _lookup(name)
    preprocess: Callable[..., Any] = getattr(keras.applications, app.module).preprocess_input
    return preprocess


def _download(constructor: Any, name: str, filename: str, include_top: bool, **kwargs: Any) -> Any:
    """Let Keras download the weights into its cache; a failed download names the file."""
    try:
        return constructor(weights="imagenet", include_top=include_top, **kwargs)
    except Exception as exc:  # Keras raises a bare Exception("URL fetch failure ...")
        if (
            find_imagenet_weights(
                name, include_top, kwargs.get("input_shape"), kwargs.get("alpha", 1.0)
            )
            is not None
        ):
            raise  # the file is there: the failure is not about getting it
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _missing_weights_error(
            name, filename, include_top, tried=True, reason=reason
        ) from exc


def _missing_weights_error(
    name: str, filename: str, include_top: bool, tried: bool, reason: str = ""
) -> WeightsUnavailableError:
    where = keras_cache_dirs()[0]
    top = "" if include_top else ", include_top=False"
    why = (
        f"Keras could not download it ({reason})"
        if tried
        else "download=False keeps nbviz from downloading it"
    )
    return WeightsUnavailableError(
        f"ImageNet weights for {name} are not on this machine: {where / filename} is missing "
        f"and {why}. To fix it, on a machine with internet run\n"
        f"    import keras; keras.applications.{name}(weights='imagenet'{top})\n"
        f"then copy ~/.keras/models/{filename} to {where}/ here (KERAS_HOME moves that folder), "
        f"or pass weights='/path/to/{filename}'. Use weights=None to build {name} with random "
        "weights instead."
    )


def load_application(
    name: str = "VGG16",
    weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple | None = None,
    include_top: bool = True,
    *,
    download: bool = True,
    **kwargs: Any,
) -> Any:
    """Build keras.applications.<name>, with ImageNet weights found the way Keras finds them.

    ``weights``: "imagenet" loads the weights from the local Keras cache (see
    :func:`keras_cache_dirs`) when the file is there; otherwise Keras downloads it into the
    cache (with ``download=True``, the default), and only where that fails
    :class:`WeightsUnavailableError` names the file and where to copy it. ``download=False``
    never touches the network (cache only). None gives random weights; a path loads that file.
    Other keyword arguments (``pooling``, ``classes``, ``alpha``, ...) go to the Keras
    constructor. Use :func:`application_preprocess` for the matching ``preprocess_input``.
    """
    keras = require_keras()
    canonical = _canonical(name)
    app = APPLICATIONS[canonical]
    constructor = getattr(keras.applications, canonical)
    if input_shape is not None:
        input_shape = tuple(int(v) for v in input_shape)

    if isinstance(weights, str) and weights == "imagenet":
        classes = kwargs.get("classes", 1000)
        if include_top and classes != 1000:
            raise ModelError(
                f"ImageNet weights with include_top=True have 1000 classes, got classes={classes}. "
                "Use include_top=False and add your own head, or weights=None."
            )
        default = (app.default_size, app.default_size, 3)
        if include_top and input_shape not in (None, default) and canonical != "MobileNetV2":
            raise ModelError(
                f"{canonical} with ImageNet weights and include_top=True takes input_shape "
                f"{default}, got {input_shape}. Use include_top=False for other sizes."
            )
        filename = imagenet_weights_filename(
            canonical, include_top, input_shape, kwargs.get("alpha", 1.0)
        )
        path = find_imagenet_weights(canonical, include_top, input_shape, kwargs.get("alpha", 1.0))
        if path is None and download:
            return _download(
                constructor, canonical, filename, include_top, input_shape=input_shape, **kwargs
            )
        if path is None:
            raise _missing_weights_error(canonical, filename, include_top, tried=False)
        weights = str(path)
    elif weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(
                f"Weights file {path} does not exist. Pass an existing .h5 / .weights.h5 file of "
                f"the same {canonical} architecture, weights='imagenet' (local Keras cache) or "
                "weights=None for random weights."
            )
        weights = str(path)
    return constructor(weights=weights, input_shape=input_shape, include_top=include_top, **kwargs)


def application_module(name: str) -> Any:
    """The ``keras.applications.<module>`` of application ``name`` (decode_predictions...)."""
    require_keras()
    return import_module(f"keras.applications.{_lookup(name).module}")


IMAGENET_CLASS_INDEX = "imagenet_class_index.json"


def imagenet_class_names() -> list[str] | None:
    """The 1000 ImageNet class names, from the Keras cache's ``imagenet_class_index.json``.

    Keras downloads that file the first time ``decode_predictions`` runs with a network.
    Returns ``None`` when it is not in the cache (nbviz then shows class numbers; see
    :func:`missing_class_names_reason`).
    """
    import json

    for folder in keras_cache_dirs():
        path = folder / IMAGENET_CLASS_INDEX
        if path.is_file():
            index = json.loads(path.read_text())
            return [index[str(i)][1] for i in range(len(index))]
    return None


def missing_class_names_reason() -> str:
    """Why ImageNet predictions show class numbers instead of names, and the fix."""
    where = keras_cache_dirs()[0] / IMAGENET_CLASS_INDEX
    return (
        f"ImageNet class names are shown when {where} exists; Keras downloads it the first time "
        "keras.applications.imagenet_utils.decode_predictions runs on a machine with internet "
        "(copy it here from ~/.keras/models/ otherwise)."
    )
