"""scripts/save_widget_state.py turns on JupyterLab's "save widget state" for an environment
(used by ``bash dev.sh lab`` and binder/postBuild) without dropping other overrides."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "save_widget_state.py"
PLUGIN = "@jupyter-widgets/jupyterlab-manager:plugin"


def _overrides(prefix: Path) -> dict:
    return json.loads((prefix / "share/jupyter/lab/settings/overrides.json").read_text())


def test_it_enables_save_state_and_keeps_other_overrides(tmp_path):
    settings = tmp_path / "share/jupyter/lab/settings"
    settings.mkdir(parents=True)
    theme = {"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}
    (settings / "overrides.json").write_text(json.dumps(theme))
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], check=True, capture_output=True)
    assert _overrides(tmp_path) == {**theme, PLUGIN: {"saveState": True}}


def test_an_explicit_choice_in_the_overrides_is_kept(tmp_path):
    settings = tmp_path / "share/jupyter/lab/settings"
    settings.mkdir(parents=True)
    (settings / "overrides.json").write_text(json.dumps({PLUGIN: {"saveState": False}}))
    subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], check=True, capture_output=True)
    assert _overrides(tmp_path) == {PLUGIN: {"saveState": False}}


def test_the_setting_exists_in_the_installed_widget_manager():
    """The key is the one jupyterlab_widgets declares (a renamed setting would do nothing)."""
    schema = Path(sys.prefix, "share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager",
                  "schemas/@jupyter-widgets/jupyterlab-manager/plugin.json")  # fmt: skip
    assert "saveState" in json.loads(schema.read_text())["properties"]


def test_binder_and_dev_lab_run_it():
    assert "scripts/save_widget_state.py" in (ROOT / "binder" / "postBuild").read_text()
    assert "scripts/save_widget_state.py" in (ROOT / "dev.sh").read_text()
