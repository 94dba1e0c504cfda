"""Execute the notebooks in their fast mode (``NBVIZ_FAST=1``), for the notebook test tier
and the documentation site alike.

A live widget is a view of kernel state: a static page cannot show it. nbviz itself puts a
static picture of each of its widgets right below the widget's view in the notebook (see
:mod:`nbviz.widgets.static_picture`), refreshed after every cell, so an executed notebook
already carries a picture of every nbviz widget's final view. This script only executes;
:func:`for_docs` then drops the widget views (the site loads no widget JavaScript) and keeps
the pictures; other widgets' outputs say that they are live only in Jupyter. Nothing in the
notebooks is changed.

The executed copy records the SHA-256 of the notebook it came from and of this script
(``metadata.nbviz_docs``), so the docs build can reuse the copies that the notebook tier wrote
(``test-artifacts/notebooks``) when they match, and execute only the others.

Usage: python scripts/run_notebooks.py OUT_DIR [--reuse DIR] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PICTURE_CLASS = "nbviz-picture-"  # the class of nbviz's static picture outputs
LIVE_ONLY_NOTE = "[interactive widget: run the notebook in Jupyter to use it]"


def source_hash(path: Path) -> str:
    """SHA-256 of a file: an executed copy is reused only for the same notebook and runner."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def widget_pictures(nb: Any) -> list[tuple[dict, dict | None]]:
    """Each widget view output of ``nb`` with the nbviz picture output right after it (or
    ``None``: not an nbviz widget)."""
    found = []
    for cell in nb.cells:
        outputs = cell.get("outputs", [])
        for i, out in enumerate(outputs):
            if WIDGET_MIME not in out.get("data", {}):
                continue
            nxt = outputs[i + 1] if i + 1 < len(outputs) else None
            html = "".join(nxt.get("data", {}).get("text/html", "")) if nxt else ""
            found.append((out, nxt if PICTURE_CLASS in html else None))
    return found


def for_docs(nb: Any) -> Any:
    """``nb`` for the static site: widget views dropped where nbviz's picture follows them,
    other widgets replaced by a note, no widget state (it needs a kernel or online JavaScript)."""
    pictured = {id(view) for view, picture in widget_pictures(nb) if picture is not None}
    for cell in nb.cells:
        if "outputs" not in cell:  # markdown
            continue
        kept = []
        for out in cell["outputs"]:
            data = out.get("data", {})
            if WIDGET_MIME in data:
                if id(out) in pictured:
                    continue
                data.pop(WIDGET_MIME)
                data["text/plain"] = LIVE_ONLY_NOTE
            kept.append(out)
        cell["outputs"] = kept
    nb.metadata.pop("widgets", None)
    return nb


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
    (widget views, nbviz's pictures of them, and the widget state as nbclient saves it).
    Raises ``nbclient.exceptions.CellExecutionError`` on an error."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )

    async def run() -> None:
        async with client.async_setup_kernel():
            for index, cell in enumerate(nb.cells):
                await client.async_execute_cell(cell, index)
            client.set_widgets_metadata()

    t0 = time.perf_counter()
    saved = {k: os.environ.get(k) for k in ("NBVIZ_FAST", "TF_CPP_MIN_LOG_LEVEL")}
    os.environ["NBVIZ_FAST"] = "1"  # the kernel inherits the environment
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        _run_coroutine(run)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    pictured = sum(
        "image/png" in picture.get("data", {})
        for _, picture in widget_pictures(nb)
        if picture is not None
    )
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
            copy = nbformat.read(args.reuse / path.name, as_version=4)
            nbformat.write(for_docs(copy), target)
            print(f"[docs] {path.name}: reused the notebook tier's executed copy", flush=True)
            continue
        if reusable(target, path):
            print(f"[docs] {path.name}: executed copy is up to date", flush=True)
            continue
        nb = execute_notebook(path.resolve())
        nbformat.write(for_docs(nb), target)
        meta = nb.metadata["nbviz_docs"]
        print(
            f"[docs] {path.name}: executed in {meta['seconds']} s (NBVIZ_FAST=1), "
            f"{meta['widget_pictures']} widget pictures",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
