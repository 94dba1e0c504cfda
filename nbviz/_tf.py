"""Import TensorFlow lazily, with a clear error when it is missing.

nbviz declares TensorFlow through extras (``nbviz[cpu]`` or ``nbviz[gpu]``) because
``tensorflow`` and ``tensorflow-cpu`` are different distributions and requiring one pulls
it in beside the other.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from .errors import BackendMissingError

_HINT = (
    "nbviz needs TensorFlow as the Keras backend, and none is installed. Install one of:\n"
    "    pip install 'nbviz[cpu]'   # tensorflow-cpu\n"
    "    pip install 'nbviz[gpu]'   # tensorflow[and-cuda]"
)


def require_tensorflow() -> ModuleType:
    """Return the ``tensorflow`` module or raise :class:`BackendMissingError` with a fix.

    The first import is quiet: see :func:`_import_quietly`.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        return tf
    try:
        return _import_quietly()
    except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
        raise BackendMissingError(_HINT) from exc


# One-time C++ start-up lines: TF 2.21 logs them through absl before absl is initialized, so
# they reach stderr whatever TF_CPP_MIN_LOG_LEVEL says (a red box in every notebook).
_STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+\.(cc|h):\d+\]"
    r"|To enable the following instructions:|  StreamExecutor \[\d+\]: )"
)


@contextlib.contextmanager
def _startup_lines_kept_off_stderr() -> Iterator[None]:
    """Point fd 2 at a temporary file; afterwards write back all but TF's start-up lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
    kept = [line for line in text.splitlines() if line and not _STARTUP_NOISE.match(line)]
    if kept:
        sys.stderr.write("\n".join(kept) + "\n")


def _warm_up(tf: ModuleType) -> None:
    """One tiny op and one tiny XLA function: their one-time start-up lines come out now."""
    # A ReLU makes XLA start its MLIR bridge too (one more one-time line).
    tf.function(lambda v: tf.nn.relu(v + 1.0), jit_compile=True)(tf.constant([1.0]))


def _quiet_wanted() -> bool:
    return os.environ.get("NBVIZ_TF_LOGS") != "1"


def _import_quietly() -> ModuleType:
    """Import TensorFlow with its one-time C++ start-up log lines kept off stderr.

    TensorFlow writes them to file descriptor 2 from C++ (not through ``sys.stderr``), at import
    and at the first operation and XLA compilation. While it imports, and while one tiny op and
    one tiny XLA function run, fd 2 points at a temporary file; afterwards every line that is
    not one of those start-up lines is written back to stderr, so real warnings still show.
    Later log lines are untouched; ``NBVIZ_TF_LOGS=1`` turns this off. It never changes
    TensorFlow's behaviour (``TF_ENABLE_ONEDNN_OPTS`` is left alone: it changes speed and
    numerics).
    """
    if not _quiet_wanted():
        import tensorflow as tf

        return tf
    with _startup_lines_kept_off_stderr():
        import tensorflow as tf

        _warm_up(tf)
    return tf


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Makes the first ``import tensorflow`` in the process quiet, whoever imports it.

    ``import nbviz`` does not import TensorFlow (it stays fast), but a notebook's next line is
    often ``import keras``, which does; this finder, installed by ``import nbviz`` and removed
    at its first use, wraps that import in :func:`_startup_lines_kept_off_stderr`.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            with _startup_lines_kept_off_stderr():
                run(module)
                _warm_up(module)

        loader: Any = spec.loader  # this spec's loader instance only
        loader.exec_module = exec_module
        return spec


def quiet_tensorflow_import() -> None:
    """Install :class:`_QuietTensorFlowImport` unless TensorFlow is already imported."""
    if "tensorflow" in sys.modules or not _quiet_wanted():
        return
    if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


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
