"""Real-browser tier: JupyterLab 4 (and Voila) driven by Debian's Chromium through playwright.

Everything under ``tests/browser/`` is marked ``browser`` automatically and skipped with a
clear reason when ``/usr/bin/chromium`` is missing (``apt-get install chromium``; never
``playwright install``: we drive the distribution's browser).

The servers run isolated from the user's Jupyter setup: temporary config, data, runtime,
settings and workspace dirs, and a ``python3`` kernel spec pointing at *this* interpreter
(``sys.executable``), so a clean clone where ``bash dev.sh test`` built ``.venv`` runs its
notebooks in ``.venv`` whatever kernels the machine has elsewhere.

Every test that uses :func:`lab` or :func:`voila_page` leaves a screenshot (also on failure)
and the browser console log under ``test-artifacts/browser/``.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("NBVIZ_CHROMIUM", "/usr/bin/chromium"))
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
BROWSER_DIR = Path(__file__).resolve().parent

# DESIGN.md: flags for headless Chromium in containers/CI. Playwright adds its own fresh
# temporary profile (--user-data-dir) for every launch; --enable-unsafe-swiftshader gives
# WebGL a software rasterizer (no GPU here).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--enable-unsafe-swiftshader",
    "--use-angle=swiftshader",
]

SERVER_START_TIMEOUT = 120.0
KERNEL_TIMEOUT = 180.0


# -- collection ----------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before `-m` deselection sees the items
def pytest_collection_modifyitems(config, items):
    missing = not CHROMIUM.exists()
    for item in items:
        if BROWSER_DIR not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.browser)
        if missing:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"browser tier needs Debian's Chromium at {CHROMIUM} "
                    "(apt-get install chromium, or set NBVIZ_CHROMIUM)"
                )
            )


# -- browser -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's launch options, pointed at Debian's Chromium."""
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "headless": True,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 1000}}


# -- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (localhost only)
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def _http(method: str, url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


@dataclass
class Server:
    """A Jupyter server subprocess on 127.0.0.1 (JupyterLab or Voila)."""

    proc: subprocess.Popen
    port: int
    root: Path
    log_path: Path
    token: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, **query: str) -> str:
        q = dict(query)
        if self.token:
            q["token"] = self.token
        qs = "&".join(f"{k}={v}" if v != "" else k for k, v in q.items())
        return f"{self.base}/{path.lstrip('/')}" + (f"?{qs}" if qs else "")

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def wait_ready(self, probe: str, timeout: float = SERVER_START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _ = _http_get(self.url(probe), timeout=2.0)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"server on port {self.port} did not answer:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            # SIGTERM lets jupyter_server shut its kernels down; the group kill is the
            # fallback for kernels that outlive it (the group is ours: start_new_session).
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture(scope="session")
def jupyter_env(tmp_path_factory) -> dict[str, str]:
    """Environment isolating the servers from the machine's Jupyter config and kernels."""
    return jupyter_environment(tmp_path_factory.mktemp("jupyter-home"))


def jupyter_environment(base: Path) -> dict[str, str]:
    """The isolated environment of :func:`jupyter_env` with its files under ``base`` (also
    used by ``benchmarks/browser_smoothness.py``)."""
    kernel_dir = base / "path" / "kernels" / "python3"
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (nbviz test venv)",
                "language": "python",
                "metadata": {"debugger": False},
            }
        )
    )
    env = dict(os.environ)
    # Widgets' front ends come from sys.prefix/share/jupyter (found automatically);
    # JUPYTER_PATH goes first, so our kernel spec wins over any user/system python3.
    env.update(
        JUPYTER_PATH=str(base / "path"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(base / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "lab-workspaces"),
        IPYTHONDIR=str(base / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        NBVIZ_FAST="1",
    )
    env.pop("JUPYTER_PREFER_ENV_PATH", None)
    # No "get Jupyter news?" toast over the notebook in screenshots.
    news = base / "lab-settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    return env


def _start(cmd: Sequence[str], env: dict[str, str], log_path: Path, cwd: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")  # noqa: SIM115 (kept open for the server's lifetime)
    return subprocess.Popen(
        list(cmd),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


@pytest.fixture(scope="session")
def lab_server(jupyter_env, tmp_path_factory) -> Iterator[Server]:
    """A JupyterLab 4 server on 127.0.0.1 (free port, random token, temporary root)."""
    server = start_lab(tmp_path_factory.mktemp("lab-root"), jupyter_env)
    try:
        server.wait_ready("api/status")
        yield server
    finally:
        server.stop()


def start_lab(root: Path, jupyter_env: dict[str, str]) -> Server:
    """Start JupyterLab serving ``root`` (not yet ready: call ``wait_ready("api/status")``)."""
    port = free_port()
    token = secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ServerApp.open_browser=False",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        # window.jupyterapp lets the tests run commands instead of clicking menus
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--ServerApp.allow_root=True",  # CI containers run as root
    ]  # fmt: skip
    return Server(
        _start(cmd, jupyter_env, ARTIFACTS / "jupyterlab-server.log", root),
        port, root, ARTIFACTS / "jupyterlab-server.log", token,
    )  # fmt: skip


def _voila(jupyter_env, root: Path, log_name: str) -> Iterator[Server]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "voila",
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0",
        str(root),
    ]  # fmt: skip
    server = Server(
        _start(cmd, jupyter_env, ARTIFACTS / log_name, root), port, root, ARTIFACTS / log_name
    )
    try:
        server.wait_ready("")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def voila_server(jupyter_env, tmp_path_factory) -> Iterator[Server]:
    """A Voila server on 127.0.0.1 serving a temporary root (notebooks at /voila/render/...)."""
    yield from _voila(jupyter_env, tmp_path_factory.mktemp("voila-root"), "voila-server.log")


@pytest.fixture(scope="session")
def voila_repo_config_server(jupyter_env, tmp_path_factory) -> Iterator[Server]:
    """The same, started where the repository's ``voila.json`` is (progressive rendering), as
    a user who runs ``voila`` in the repository gets it."""
    root = tmp_path_factory.mktemp("voila-repo-config")
    shutil.copy(REPO / "voila.json", root / "voila.json")
    yield from _voila(jupyter_env, root, "voila-repo-config-server.log")


# -- notebooks in the browser --------------------------------------------------------------


def write_notebook(path: Path, cells: Sequence[str]) -> Path:
    """Write a notebook of code ``cells`` for the ``python3`` kernel (our venv's)."""
    import nbformat

    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(src) for src in cells],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


_NB_STATE_JS = """() => {
  const app = window.jupyterapp;
  if (!app) return {ready: false, why: 'no window.jupyterapp'};
  const w = app.shell.currentWidget;
  if (!w || !w.content || !w.sessionContext) return {ready: false, why: 'no notebook panel'};
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  for (const c of cells) {
    const outs = c.model.outputs;
    for (let i = 0; i < outs.length; i++) {
      const o = outs.get(i).toJSON();
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
    }
  }
  return {
    ready: true,
    kernel: kernel ? kernel.status : null,
    counts: cells.map(c => c.model.executionCount),
    pending: cells.filter(c => c.promptNode && c.promptNode.textContent.includes('*')).length,
    errors,
  };
}"""


@dataclass
class LabSession:
    """A page showing one notebook in JupyterLab, plus what the browser logged."""

    server: Server
    page: object
    console: list[str] = field(default_factory=list)

    def wait_state(self, pred, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        state: dict = {}
        while time.monotonic() < deadline:
            state = self.page.evaluate(_NB_STATE_JS)
            if state.get("ready") and pred(state):
                return state
            self.page.wait_for_timeout(250)
        raise TimeoutError(
            f"timed out waiting for {what}; last state {state}\n"
            f"console:\n{self.console_text()}\nserver log:\n{self.server.log_tail(30)}"
        )

    def console_text(self) -> str:
        return "\n".join(self.console[-80:])

    def console_errors(self) -> list[str]:
        return [m for m in self.console if m.startswith(("[error]", "[pageerror]"))]

    def run_notebook(
        self, name: str, cells: Sequence[str], *, timeout: float = KERNEL_TIMEOUT,
        allow_errors: bool = False,
    ) -> dict:  # fmt: skip
        """Write ``cells`` to ``name`` in the server root, open it, run all cells, wait.

        Returns the final notebook state (kernel status, execution counts, errors).
        Raises with the cell errors unless ``allow_errors``.
        """
        write_notebook(self.server.root / name, cells)
        self.page.goto(self.server.url(f"lab/tree/{name}", reset=""))
        self.page.wait_for_selector(".jp-Notebook", timeout=60_000)
        self.wait_state(lambda s: s["kernel"] == "idle", timeout, "an idle kernel")
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        state = self.wait_state(
            lambda s: s["kernel"] == "idle" and not s["pending"]
            and all(c is not None for c in s["counts"]),
            timeout, "all cells to run",
        )  # fmt: skip
        if state["errors"] and not allow_errors:
            raise AssertionError(f"notebook cells raised: {state['errors']}")
        return state

    def execute(self, code: str, timeout: float = KERNEL_TIMEOUT) -> dict:
        """Run ``code`` in the open notebook's kernel (no new cell), as a live update would.

        Widget messages from it reach the displayed views. Returns ``{status, error}``.
        """
        return self.page.evaluate(
            """async (code) => {
              const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
              const future = kernel.requestExecute({code, stop_on_error: true});
              let error = null;
              future.onIOPub = (msg) => {
                if (msg.header.msg_type === 'error')
                  error = msg.content.ename + ': ' + msg.content.evalue;
              };
              const reply = await future.done;
              return {status: reply.content.status, error};
            }""",
            code,
        )

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _slug(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])[:120]


def _record_console(page, sink: list[str]) -> None:
    page.on("console", lambda m: sink.append(f"[{m.type}] {m.text}"))
    page.on("pageerror", lambda e: sink.append(f"[pageerror] {e}"))


def _save_artifacts(request, page, console: list[str]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    slug = _slug(request.node.nodeid)
    try:
        page.screenshot(path=str(ARTIFACTS / f"{slug}.png"), full_page=True)
    except Exception as exc:  # a crashed page must not hide the test's own failure
        console.append(f"[artifacts] screenshot failed: {exc}")
    (ARTIFACTS / f"{slug}.console.txt").write_text("\n".join(console))


def _shutdown_sessions(server: Server) -> None:
    """Stop every kernel the test opened (2 shared cores: no idle kernels left spinning)."""
    try:
        status, body = _http("GET", server.url("api/sessions"))
        if status == 200:
            for s in json.loads(body):
                _http("DELETE", server.url(f"api/sessions/{s['id']}"))
    except OSError:
        pass


@pytest.fixture
def lab(lab_server, page, request) -> Iterator[LabSession]:
    """A :class:`LabSession` on a fresh page; screenshot + console saved after the test."""
    session = LabSession(lab_server, page)
    _record_console(page, session.console)
    try:
        yield session
    finally:
        _save_artifacts(request, page, session.console)
        _shutdown_sessions(lab_server)


@dataclass
class VoilaPage:
    server: Server
    page: object
    console: list[str] = field(default_factory=list)

    def open(self, name: str, cells: Sequence[str], timeout: float = KERNEL_TIMEOUT) -> None:
        """Write ``cells`` to ``name`` and load it in Voila (it executes while streaming).

        Waits for the page's load event; tests then wait for their own selectors.
        """
        write_notebook(self.server.root / name, cells)
        self.page.goto(self.server.url(f"voila/render/{name}"), timeout=timeout * 1000)
        self.page.wait_for_selector(".jp-OutputArea-output", timeout=timeout * 1000)


@pytest.fixture
def voila_page(voila_server, page, request) -> Iterator[VoilaPage]:
    yield from _voila_page(voila_server, page, request)


@pytest.fixture
def voila_repo_config_page(voila_repo_config_server, page, request) -> Iterator[VoilaPage]:
    """A page of the Voila server that runs with the repository's ``voila.json``."""
    yield from _voila_page(voila_repo_config_server, page, request)


def _voila_page(server: Server, page, request) -> Iterator[VoilaPage]:
    vp = VoilaPage(server, page)
    _record_console(page, vp.console)
    try:
        yield vp
    finally:
        _save_artifacts(request, page, vp.console)
        page.close()  # closing the page ends Voila's kernel for it


# -- what the page does while widgets update ----------------------------------------------

# Installed with page.add_init_script before a notebook opens: long tasks (the main thread
# blocked for > 50 ms), the longest gap of a 50 ms heartbeat, and every new heat-map picture
# (bqplot draws HeatMap into an <image class="heatmap">) with the number of elements in its
# figure then; heatIn[i] is the nbviz widget (its model id, from its view's nbviz-live-<id>
# class) that drew heat[i], '' outside one. Read back as window.__nbvizPerf (also by
# benchmarks/browser_smoothness.py).
PAGE_PROBE_JS = """
(() => {
  const P = window.__nbvizPerf = {tasks: [], heat: [], heatIn: [], maxGap: 0};
  const owner = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = Array.from(e.classList || []).find(c => /^nbviz-live-[0-9a-f]{32}$/.test(c));
      if (c) return c.slice(11);
    }
    return '';
  };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) P.tasks.push([e.startTime, e.duration]);
  }).observe({type: 'longtask', buffered: true});
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (P.heat.length) P.maxGap = Math.max(P.maxGap, now - last);
    last = now;
  }, 50);
  const seen = (el) => {
    const href = el.getAttribute('href') || el.getAttribute('xlink:href') || '';
    const fig = el.closest('.bqplot');
    if (!href) return;
    P.heat.push([performance.now(), href.length, href.slice(-40),
                 fig ? fig.querySelectorAll('*').length : 0]);
    P.heatIn.push(owner(el));
  };
  new MutationObserver((muts) => {
    for (const m of muts) {
      if (m.type === 'attributes' && m.target.classList &&
          m.target.classList.contains('heatmap')) seen(m.target);
      for (const n of m.addedNodes || [])
        if (n.querySelectorAll) n.querySelectorAll('image.heatmap').forEach(seen);
    }
  }).observe(document, {subtree: true, childList: true, attributes: true,
                        attributeFilter: ['href', 'xlink:href']});
})();
"""


# -- pixel checks --------------------------------------------------------------------------


def element_pixels(locator):
    """Screenshot of one element as a float numpy array (H, W, 3)."""
    import numpy as np
    from PIL import Image

    png = locator.screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)


def pixel_stats(locator) -> dict[str, float]:
    """Variance and number of distinct colours of an element's rendered pixels."""
    import numpy as np

    px = element_pixels(locator)
    flat = px.reshape(-1, 3)
    return {
        "std": float(px.std()),
        "colors": int(len(np.unique(flat.astype(np.uint8), axis=0))),
        "height": int(px.shape[0]),
        "width": int(px.shape[1]),
    }
