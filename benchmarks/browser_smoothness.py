"""Does the page stay smooth while a landscape fills in live? JupyterLab 4 in Chromium.

Runs two scenarios built from the notebooks in a real JupyterLab (Debian's Chromium through
playwright, as the browser test tier does) and watches the page's main thread with a
``PerformanceObserver('longtask')`` and a 50 ms heartbeat:

* ``grid`` (notebook 03): the parabola MLP's PCA plane at 41x41, ``autostart=True``;
* ``grid-2d``: the same without the 3-D view (``view3d=None``);
* ``grid-ipyvolume``, ``watch-ipyvolume``: with the WebGL 3-D view (``view3d="ipyvolume"``);
* ``watch`` (notebook 04): ``nbviz.watch`` on the parabola MLP during ``fit`` (25x25
  recomputes every 2 s; fewer epochs than the notebook unless ``--full``).

A first cell shows a small box of ipywidgets and a bqplot figure, so JupyterLab's one-time
loading of the widget libraries (once per page, whatever the widget) is not counted as the cost
of live updates. For each scenario it prints the fraction of the wall time the main thread was blocked by long tasks
(from the first heat-map picture to 1 s after the last), the longest task, the heartbeat's longest gap,
how many heat-map pictures the page drew (and how many a second), the delay from the kernel
finishing (``widget.wait()`` returning) to the last picture on screen, and the console errors.
Goal (issue 18): blocked < 10 %, no task > 200 ms, last picture within 1 s.

``--before REF`` runs the same scenarios first against ``nbviz/`` as committed at ``REF``
(e.g. ``main``; put on the kernel's ``PYTHONPATH``), then against this working tree, and prints
both. The machine may be shared: the load average is printed.

    python benchmarks/browser_smoothness.py --before main
    python benchmarks/browser_smoothness.py --before main --repeat 3 --only grid grid-2d watch
    python benchmarks/browser_smoothness.py --only grid
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import load_average  # noqa: E402


def _browser_tier():
    """The browser test tier's server and page helpers (tests/browser/conftest.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "nbviz_browser_tier", REPO / "tests" / "browser" / "conftest.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_tier = _browser_tier()
CHROMIUM, CHROMIUM_ARGS, LabSession = _tier.CHROMIUM, _tier.CHROMIUM_ARGS, _tier.LabSession
jupyter_environment, start_lab = _tier.jupyter_environment, _tier.start_lab
PAGE_PROBE = _tier.PAGE_PROBE_JS

# The first widget a page shows makes JupyterLab load the widget libraries' code (0.5-0.7 s of
# script evaluation here, once per page): a small box of the same kinds of widgets, shown first
# as a notebook's earlier cells would, keeps that one-time cost out of the live-update window.
SETUP = """
import time
import bqplot
import ipywidgets
import numpy as np
import nbviz
from nbviz import demo
from nbviz.landscape import WeightPathRecorder
_s = bqplot.LinearScale()
ipywidgets.VBox([
    ipywidgets.HBox([ipywidgets.IntSlider(), ipywidgets.Dropdown(options=["a"]),
                     ipywidgets.Button(), ipywidgets.Checkbox(), ipywidgets.FloatText()]),
    ipywidgets.Image(), ipywidgets.IntProgress(), ipywidgets.HTML("warm-up"),
    bqplot.Figure(marks=[bqplot.Lines(x=np.arange(3), y=np.arange(3),
                                      scales={"x": _s, "y": bqplot.LinearScale()})]),
])
"""


def _grid_cells(options: str) -> list[str]:
    """Notebook 03's 41x41 PCA grid of a trained parabola MLP, with extra widget ``options``."""
    return [
        SETUP,
        f"""
x, y = demo.parabola_data(2048, seed=0)
mlp = demo.build_parabola_mlp(seed=0)
path = WeightPathRecorder()
mlp.fit(x, y, epochs=25, batch_size=32, callbacks=[path], verbose=0)
widget = nbviz.LossLandscapeWidget(mlp, x, y, path=path, directions="pca", resolution=41,
                                   autostart=True{options})
widget
""",
        """
assert widget.wait(600) and widget.error is None, widget.error
print("KERNEL_DONE", time.time() * 1000)
""",
    ]


def _watch_cells(options: str) -> list[str]:
    """Notebook 04's ``nbviz.watch`` during ``fit`` (``EPOCHS`` filled in later)."""
    return [
        SETUP,
        f"""
x, y = demo.parabola_data(4096, seed=0)
mlp = demo.build_parabola_mlp(seed=0)
callback = nbviz.watch(mlp, x, y, resolution=25, recompute_s=2.0{options})
""",
        """
mlp.fit(x, y, epochs=EPOCHS, batch_size=32, callbacks=[callback], verbose=0)
assert callback.widget.wait(600) and callback.widget.error is None, callback.widget.error
print("KERNEL_DONE", time.time() * 1000)
""",
    ]


SCENARIOS = {
    "grid": _grid_cells(""),
    # the same without the 3-D view: what the 2-D plots cost alone (WebGL without a GPU runs
    # in software in the browser's GPU process, and the page waits for it at every repaint)
    "grid-2d": _grid_cells(", view3d=None"),
    # the 3-D view in WebGL (ipyvolume) instead of the default kernel-rendered picture: its
    # front end compiles new shaders at every update, in software without a GPU
    "grid-ipyvolume": _grid_cells(", view3d='ipyvolume'"),
    "watch": _watch_cells(""),
    "watch-ipyvolume": _watch_cells(", view3d='ipyvolume'"),
}

_OUTPUTS_JS = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  let text = '';
  for (const c of nb.widgets) {
    if (c.model.type !== 'code') continue;
    const outs = c.model.outputs;
    for (let i = 0; i < outs.length; i++) {
      const o = outs.get(i).toJSON();
      if (o.output_type === 'stream') text += o.text;
    }
  }
  return text;
}"""


#: How long after the last heat-map picture the page is still watched.
AFTER_LAST_MS = 1000.0


def _quiet(page, seconds: float, cap_s: float = 120.0) -> None:
    """Wait until the page drew no new heat-map picture for ``seconds`` (at most ``cap_s``)."""
    deadline = time.monotonic() + cap_s
    count, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = page.evaluate("() => window.__nbvizPerf.heat.length")
        if n != count:
            count, since = n, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        page.wait_for_timeout(200)


def measure(session: LabSession, name: str, cells: list[str]) -> dict:
    """Run one scenario's cells in a fresh notebook and summarize what the page did."""
    page = session.page
    session.console.clear()
    page.add_init_script(PAGE_PROBE)
    session.run_notebook(f"smooth_{name}.ipynb", cells, timeout=900)
    text = page.evaluate(_OUTPUTS_JS)
    done_ms = float(text.split("KERNEL_DONE", 1)[1].split()[0])
    _quiet(page, 3.0)
    perf = page.evaluate("() => ({...window.__nbvizPerf, origin: performance.timeOrigin})")
    heat = perf["heat"]
    if not heat:
        return {"error": "no heat map was drawn"}
    # from the first picture to 1 s after the last: what the final redraw sets off (the hover
    # read-out, the static picture) counts too
    t0, t1 = heat[0][0], heat[-1][0] + AFTER_LAST_MS
    wall = max(t1 - t0, 1.0)
    blocked = sum(
        max(0.0, min(s + d, t1) - max(s, t0)) for s, d in perf["tasks"] if s + d > t0 and s < t1
    )
    longest = max((d for s, d in perf["tasks"] if s + d > t0 and s < t1), default=0.0)
    last_on_screen = perf["origin"] + heat[-1][0]
    errors = [m for m in session.console if m.startswith(("[error]", "[pageerror]"))]
    return {
        "wall_s": wall / 1000,
        "blocked": blocked / wall,
        "longest_ms": longest,
        "max_heartbeat_gap_ms": perf["maxGap"],
        "pictures": len(heat),
        "distinct": len({(n, tail) for _, n, tail, _ in heat}),
        "max_elements": max(h[3] for h in heat),
        "pictures_per_s": len(heat) / (wall / 1000),
        "last_after_kernel_s": (last_on_screen - done_ms) / 1000,
        "console_errors": len(errors),
        "first_error": errors[0][:160] if errors else "",
    }


def run_variant(
    label: str, pythonpath: Path, scenarios: dict[str, list[str]], repeat: int = 1
) -> dict:
    """Start JupyterLab whose kernels import nbviz from ``pythonpath``; run every scenario
    ``repeat`` times (each in a fresh page and kernel) and print each run and the median."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        env = jupyter_environment(Path(tmp) / "home")
        env["PYTHONPATH"] = str(pythonpath)
        env.pop("NBVIZ_FAST", None)
        root = Path(tmp) / "root"
        root.mkdir()
        server = start_lab(root, env)
        results = {}
        try:
            server.wait_ready("api/status")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                for name, cells in [(n, c) for n, c in scenarios.items() for _ in range(repeat)]:
                    context = browser.new_context(viewport={"width": 1280, "height": 1000})
                    page = context.new_page()
                    session = LabSession(server, page)
                    page.on(
                        "console", lambda m, s=session: s.console.append(f"[{m.type}] {m.text}")
                    )
                    page.on("pageerror", lambda e, s=session: s.console.append(f"[pageerror] {e}"))
                    results.setdefault(name, []).append(measure(session, name, cells))
                    print(f"{label:>6} {name:>15}: {_row(results[name][-1])}", flush=True)
                    context.close()
                    for sess in json.loads(_get(server.url("api/sessions"))):
                        _delete(server.url(f"api/sessions/{sess['id']}"))
                browser.close()
        finally:
            server.stop()
    medians = {name: _median(runs) for name, runs in results.items()}
    if repeat > 1:
        for name, row in medians.items():
            print(f"{label:>6} {name:>15}: median of {repeat}: {_row(row)}", flush=True)
    return medians


def _median(runs: list[dict]) -> dict:
    """Each number's median over ``runs`` (a failed run: its error)."""
    import statistics

    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    return {
        k: statistics.median(r[k] for r in ok) if isinstance(v, int | float) else v
        for k, v in ok[0].items()
    }


def _get(url: str) -> bytes:
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 (localhost only)
        return r.read()


def _delete(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10)  # noqa: S310


def _row(r: dict) -> str:
    if "error" in r:
        return r["error"]
    return (
        f"blocked {r['blocked']:5.1%} of {r['wall_s']:5.1f} s, longest task "
        f"{r['longest_ms']:6.0f} ms, heartbeat gap {r['max_heartbeat_gap_ms']:6.0f} ms, "
        f"{r['max_elements']:g} elements, {r['pictures']:3g} pictures ({r['pictures_per_s']:4.1f}/s, {r['distinct']} distinct), "
        f"last on screen {r['last_after_kernel_s']:+5.2f} s after the kernel, "
        f"{r['console_errors']:g} console errors {r['first_error']}"
    )


def _checkout(ref: str, into: Path) -> Path:
    """``nbviz/`` as committed at ``ref``, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", ref, "nbviz"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", metavar="REF", help="also run nbviz as committed at REF")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="run these scenarios")
    parser.add_argument("--epochs", type=int, default=10, help="watch scenario's epochs")
    parser.add_argument("--full", action="store_true", help="notebook 04's 40 epochs")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario (medians)")
    args = parser.parse_args()
    epochs = 40 if args.full else args.epochs
    scenarios = {
        k: [c.replace("EPOCHS", str(epochs)) for c in v]
        for k, v in SCENARIOS.items()
        if args.only is None or k in args.only
    }
    print(load_average(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            run_variant("before", _checkout(args.before, Path(tmp)), scenarios, args.repeat)
        run_variant("after", REPO, scenarios, args.repeat)
    print(load_average())


if __name__ == "__main__":
    main()
