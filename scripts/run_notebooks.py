"""Execute the notebooks in their fast mode (``NBVIZ_FAST=1``) and keep static pictures of
their widgets, for the notebook test tier and the documentation site alike.

A live widget is a view of kernel state: a static page cannot show it. While a notebook runs,
every nbviz widget it displays is tracked in the kernel; just before the widget is closed, and
once more after the last cell for those still open, the widget draws its current view with its
own headless export (``FeatureMapExplorer.figure()``, ``OptVisWidget.export_png()``,
``LossLandscapeWidget.export_png()``, ``AttributionExplorer``'s heatmap). Each widget output of
the executed notebook then carries that PNG next to a line saying it is a static picture; other widget outputs say that they are
live only in Jupyter. Nothing in the notebooks is changed.

The executed copy records the SHA-256 of the notebook it came from and of this script
(``metadata.nbviz_docs``), so the docs build can reuse the copies that the notebook tier wrote
(``test-artifacts/notebooks``) when they match, and execute only the others.

Usage: python scripts/run_notebooks.py OUT_DIR [--reuse DIR] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PICTURE_NOTE = "[static picture of this widget's view at the end of the run; live in Jupyter]"
LIVE_ONLY_NOTE = "[interactive widget: run the notebook in Jupyter to use it]"

# Runs in the kernel before the first cell; defines the picture-taking hooks.
_SETUP = r"""
def _nbviz_docs_setup():
    import base64, io, json, sys
    from IPython import get_ipython
    from PIL import Image
    from nbviz.widgets import (
        AttributionExplorer, FeatureMapExplorer, LossLandscapeWidget, OptVisWidget,
    )

    shown, objects, pictures = {}, [], {}  # id -> model_id, widgets shown, model_id -> PNG

    def picture(w):
        if isinstance(w, FeatureMapExplorer):
            w.wait(120)
            buf = io.BytesIO()
            w.figure().savefig(buf, format="png", dpi=80, bbox_inches="tight")
            return buf.getvalue()
        if isinstance(w, LossLandscapeWidget):
            w.wait(300)
            return w.export_png(dpi=80)
        if isinstance(w, AttributionExplorer):
            w.wait(300)
            if not w.heat_image.value:
                raise ValueError("no heatmap drawn")
            return bytes(w.heat_image.value)  # the heatmap over the image, as shown
        w.wait(300)
        image = Image.open(io.BytesIO(w.export_png()))
        scale = max(1, 256 // max(image.size))  # the demo model's 64 px, enlarged to be seen
        buf = io.BytesIO()
        image.resize((image.width * scale, image.height * scale), Image.NEAREST).save(buf, "png")
        return buf.getvalue()

    def snap(w):
        key = shown.get(id(w))
        if key is None or getattr(w, "_closed", False):
            return
        try:
            pictures[key] = base64.b64encode(picture(w)).decode("ascii")
        except Exception as exc:  # nothing drawn yet: the output says "live only"
            pictures.pop(key, None)
            print(f"[docs] no picture of {type(w).__name__}: {exc}", file=sys.stderr)

    def track(w):
        if id(w) not in shown:
            shown[id(w)] = w.model_id
            objects.append(w)
        return None  # no PNG at display time: the picture is taken at close / the end

    formatter = get_ipython().display_formatter.formatters["image/png"]
    for cls in (FeatureMapExplorer, OptVisWidget, LossLandscapeWidget, AttributionExplorer):
        formatter.for_type(cls, track)
        original = cls.close

        def close(self, _original=original):
            snap(self)
            _original(self)

        cls.close = close

    def collect():
        for w in objects:
            snap(w)
        return json.dumps(pictures)

    return collect

_nbviz_docs_collect = _nbviz_docs_setup()
del _nbviz_docs_setup
"""
_COLLECT = "print(_nbviz_docs_collect())"


def source_hash(path: Path) -> str:
    """SHA-256 of a file: an executed copy is reused only for the same notebook and runner."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _silent(client: Any, code: str) -> str:
    """Run ``code`` in the client's kernel outside the notebook (no history, no output cell);
    return its stdout."""
    chunks: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["header"]["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            chunks.append(msg["content"]["text"])

    reply = await client.kc.execute_interactive(
        code, store_history=False, output_hook=hook, timeout=client.timeout
    )
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"docs hook failed in the kernel: {reply['content']}")
    return "".join(chunks)


def _attach_pictures(nb: Any, pictures: dict[str, str]) -> int:
    """Replace each widget output by its picture (or a note); return how many got pictures."""
    count = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            view = data.pop(WIDGET_MIME, None)
            if view is None:
                continue
            png = pictures.get(view.get("model_id", ""))
            if png is not None:
                data["image/png"] = png
                data["text/plain"] = PICTURE_NOTE
                data["text/html"] = (  # the picture with its caption (HTML renderers prefer it)
                    f'<figure class="nbviz-widget-picture"><img alt="widget" '
                    f'src="data:image/png;base64,{png}"/><figcaption><em>{PICTURE_NOTE}'
                    "</em></figcaption></figure>"
                )
                count += 1
            else:
                data["text/plain"] = LIVE_ONLY_NOTE
    nb.metadata.pop("widgets", None)  # widget state needs a live kernel or online JavaScript
    return count


def _run_coroutine(make: Any) -> Any:
    """``asyncio.run(make())``, on a thread of its own when this thread already runs an event
    loop (in the full test suite the browser tier's playwright session keeps one running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(make())
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="nbviz-notebook-runner")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def execute_notebook(path: Path, timeout: int = 600) -> Any:
    """Execute ``path`` with ``NBVIZ_FAST=1`` in a fresh kernel; return the executed notebook
    with static widget pictures. Raises ``nbclient.exceptions.CellExecutionError`` on an error."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )

    async def run() -> dict[str, str]:
        async with client.async_setup_kernel():
            await _silent(client, _SETUP)
            for index, cell in enumerate(nb.cells):
                await client.async_execute_cell(cell, index)
            return json.loads(await _silent(client, _COLLECT))

    t0 = time.perf_counter()
    saved = {k: os.environ.get(k) for k in ("NBVIZ_FAST", "TF_CPP_MIN_LOG_LEVEL")}
    os.environ["NBVIZ_FAST"] = "1"  # the kernel inherits the environment
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        pictures = _run_coroutine(run)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    pictured = _attach_pictures(nb, pictures)
    nb.metadata["nbviz_docs"] = {
        "source_sha256": source_hash(path),
        "runner_sha256": source_hash(Path(__file__)),
        "fast": True,
        "seconds": round(time.perf_counter() - t0, 1),
        "widget_pictures": pictured,
    }
    return nb


def reusable(executed: Path, source: Path) -> bool:
    """True when ``executed`` is this version of this script's fast-mode run of exactly
    ``source``."""
    import nbformat

    if not executed.is_file():
        return False
    meta = nbformat.read(executed, as_version=4).metadata.get("nbviz_docs", {})
    return meta.get("source_sha256") == source_hash(source) and meta.get(
        "runner_sha256"
    ) == source_hash(Path(__file__))


def main(argv: list[str] | None = None) -> int:
    import nbformat

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the executed notebooks")
    parser.add_argument("--reuse", type=Path, help="folder of executed copies to reuse")
    parser.add_argument("notebooks", nargs="*", type=Path, default=NOTEBOOKS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.notebooks:
        target = args.out / path.name
        if args.reuse is not None and reusable(args.reuse / path.name, path):
            target.write_bytes((args.reuse / path.name).read_bytes())
            print(f"[docs] {path.name}: reused the notebook tier's executed copy", flush=True)
            continue
        if reusable(target, path):
            print(f"[docs] {path.name}: executed copy is up to date", flush=True)
            continue
        nb = execute_notebook(path.resolve())
        nbformat.write(nb, target)
        meta = nb.metadata["nbviz_docs"]
        print(
            f"[docs] {path.name}: executed in {meta['seconds']} s (NBVIZ_FAST=1), "
            f"{meta['widget_pictures']} widget pictures",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
