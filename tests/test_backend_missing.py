"""Without TensorFlow, using a backend raises BackendMissingError that says what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys

    class HideTensorFlow:  # as if neither tensorflow nor tensorflow-cpu were installed
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError("No module named 'tensorflow'")
            return None

    sys.meta_path.insert(0, HideTensorFlow())
    import nbviz
    from nbviz.errors import BackendMissingError

    assert nbviz.__version__
    for call in (lambda: __import__("nbviz.landscape"), lambda: nbviz.load_demo_model()):
        try:
            call()
        except BackendMissingError as exc:
            assert "nbviz[cpu]" in str(exc) and "nbviz[gpu]" in str(exc), exc
            assert isinstance(exc, ImportError)
        else:
            raise SystemExit("no BackendMissingError")
    print("ok")
    """
)


def test_missing_tensorflow_names_the_extras_to_install():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("ok")
