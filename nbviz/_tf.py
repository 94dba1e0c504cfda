"""Import TensorFlow lazily, with a clear error when it is missing.

nbviz declares TensorFlow through extras (``nbviz[cpu]`` or ``nbviz[gpu]``) because
``tensorflow`` and ``tensorflow-cpu`` are different distributions and requiring one pulls
it in beside the other.
"""

from __future__ import annotations

import os
from types import ModuleType

from .errors import BackendMissingError

_HINT = (
    "nbviz needs TensorFlow as the Keras backend, and none is installed. Install one of:\n"
    "    pip install 'nbviz[cpu]'   # tensorflow-cpu\n"
    "    pip install 'nbviz[gpu]'   # tensorflow[and-cuda]"
)


def require_tensorflow() -> ModuleType:
    """Return the ``tensorflow`` module or raise :class:`BackendMissingError` with a fix."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
        raise BackendMissingError(_HINT) from exc
    return tf


def require_keras() -> ModuleType:
    """Return ``keras`` running on the TensorFlow backend."""
    require_tensorflow()
    import keras

    if keras.backend.backend() != "tensorflow":
        raise BackendMissingError(
            f"nbviz runs on Keras' TensorFlow backend, but KERAS_BACKEND is "
            f"{keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow before importing keras."
        )
    return keras
