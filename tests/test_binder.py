"""Binder files: exact pins consistent with pyproject, and (slow, opt-in) a real install.

The install test builds a fresh venv from ``binder/requirements.txt`` exactly like
repo2docker does (from the repo root, so the final ``.`` installs nbviz as a wheel) and
runs a smoke test from outside the checkout. It downloads ~1.5 GB, so it runs only when
``NBVIZ_BINDER_TEST=1`` or ``CI=true``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
BINDER = REPO / "binder"


def binder_pins() -> tuple[dict[str, str], list[str]]:
    """``{canonical name: version}`` of the ``==`` pins, and the other requirement lines."""
    pins: dict[str, str] = {}
    other: list[str] = []
    for raw in (BINDER / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "==" in line:
            req = Requirement(line)
            (spec,) = req.specifier
            pins[canonicalize_name(req.name)] = spec.version
        else:
            other.append(line)
    return pins, other


def test_runtime_is_python_311():
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"


def test_requirements_pin_everything_exactly_and_install_the_repo():
    lines = [
        ln.strip() for ln in (BINDER / "requirements.txt").read_text().splitlines()
        if ln.strip() and not ln.strip().startswith("#")
    ]  # fmt: skip
    assert lines[-1] == ".", "the last line must be '.' (installs nbviz itself)"
    pins, other = binder_pins()
    assert other == ["."], f"unpinned requirement lines: {other[:-1]}"
    assert len(pins) == len(lines) - 1, "a package is pinned twice"


def test_pins_satisfy_pyproject():
    """Every runtime dependency (and the cpu/lab extras) is pinned inside its range."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = project["dependencies"] + extras["cpu"] + extras["lab"] + ["voila"]
    pins, _ = binder_pins()
    problems = []
    for spec in wanted:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name} is not pinned")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}=={pins[name]} violates pyproject's {req}")
    assert not problems, problems


SMOKE = textwrap.dedent(
    """
    import os, subprocess, sys
    import bqplot, ipyvolume, ipywidgets, tensorflow as tf
    import nbviz
    assert "site-packages" in nbviz.__file__, nbviz.__file__  # the wheel, not the checkout
    from nbviz.demo import load_demo_model, sample_images
    from nbviz.widgets.surface3d import make_surface_view
    model = load_demo_model()  # weights ship as package data
    assert sample_images()
    make_surface_view("ipyvolume").close()
    print("demo model", model.name, model.output_shape, "tf", tf.__version__)
    jupyter = os.path.join(os.path.dirname(sys.executable), "jupyter")
    exts = subprocess.run([jupyter, "labextension", "list"], capture_output=True, text=True)
    print(exts.stdout + exts.stderr)
    """
)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skipif(
    not (os.environ.get("NBVIZ_BINDER_TEST") == "1" or os.environ.get("CI") == "true"),
    reason="downloads ~1.5 GB into a fresh venv; set NBVIZ_BINDER_TEST=1 (CI=true runs it)",
)
def test_binder_requirements_install_and_run(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    def run(*args: str, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(py), *args], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        assert proc.returncode == 0, (
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-4000:]}"
        )
        return proc

    # from the repo root, like repo2docker, so the final "." resolves to this checkout
    run("-m", "pip", "install", "--no-input", "--progress-bar", "off",
        "-r", "binder/requirements.txt", cwd=REPO, timeout=900)  # fmt: skip
    run("-m", "pip", "check", cwd=tmp_path, timeout=120)
    out = run("-c", SMOKE, cwd=tmp_path, timeout=300).stdout  # outside the checkout
    assert "demo model" in out
    for ext in ("ipyvolume", "bqplot", "@jupyter-widgets/jupyterlab-manager"):
        assert ext in out, f"JupyterLab extension {ext} missing in the Binder env:\n{out}"
    # The tutorials run in the Binder environment, as a Binder user would run them.
    env["NBVIZ_FAST"] = "1"
    notebooks = sorted(str(p) for p in (REPO / "notebooks").glob("*.ipynb"))
    assert notebooks
    run("-m", "nbconvert", "--to", "notebook", "--execute", "--output-dir", str(tmp_path / "nb"),
        "--ExecutePreprocessor.timeout=600", "--ExecutePreprocessor.kernel_name=python3",
        *notebooks, cwd=REPO / "notebooks", timeout=1200)  # fmt: skip
    assert len(list((tmp_path / "nb").glob("*.ipynb"))) == len(notebooks)
