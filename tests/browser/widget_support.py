"""Helpers shared by the per-widget browser tests (tests/browser/test_widgets_*.py).

Screenshots: every helper call saves an element screenshot under ``test-artifacts/browser/``;
with ``NBVIZ_SCREENSHOTS=<dir>`` (e.g. ``docs/images``) the README screenshots are also written
there under fixed names, shrunk to a palette PNG so that each stays small (< 150 KB).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from .conftest import ARTIFACTS, REPO

MAX_DOC_BYTES = 150_000


def _small_png(png: bytes, max_width: int) -> bytes:
    """Downscale to ``max_width`` and quantize to 256 colours: README-sized PNG bytes."""
    from PIL import Image

    im = Image.open(io.BytesIO(png)).convert("RGB")
    if im.width > max_width:
        im = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
    out = io.BytesIO()
    im.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()


def save_screenshot(locator, name: str, max_width: int = 720) -> Path:
    """Element screenshot ``name``.png into the artifacts (and ``$NBVIZ_SCREENSHOTS``)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    png = locator.screenshot(animations="disabled")
    path = ARTIFACTS / f"{name}.png"
    path.write_bytes(png)
    target = os.environ.get("NBVIZ_SCREENSHOTS")
    if target:
        out_dir = Path(target) if Path(target).is_absolute() else REPO / target
        out_dir.mkdir(parents=True, exist_ok=True)
        small = _small_png(png, max_width)
        assert len(small) < MAX_DOC_BYTES, f"{name}.png is {len(small)} bytes"
        (out_dir / f"{name}.png").write_bytes(small)
    return path


def wait_image_loaded(page, selector: str, timeout_ms: int = 60_000) -> str:
    """Wait until the ``<img>`` at ``selector`` shows a decoded image; return its src."""
    page.wait_for_function(
        """(sel) => { const i = document.querySelector(sel);
             return i && i.complete && i.naturalWidth > 0 && !!i.getAttribute('src'); }""",
        arg=selector,
        timeout=timeout_ms,
    )
    return page.locator(selector).first.get_attribute("src")


def wait_src_change(page, selector: str, old: str, timeout_ms: int = 30_000) -> str:
    """Wait until the image at ``selector`` has a src other than ``old`` and has loaded it."""
    page.wait_for_function(
        """([sel, old]) => { const i = document.querySelector(sel);
             return i && i.getAttribute('src') && i.getAttribute('src') !== old
                    && i.complete && i.naturalWidth > 0; }""",
        arg=[selector, old],
        timeout=timeout_ms,
    )
    return page.locator(selector).first.get_attribute("src")


def kernel_value(lab, expr: str) -> str:
    """``repr(expr)`` evaluated in the notebook's kernel (through a hidden print)."""
    marker = f"__nbviz_probe_{time.monotonic_ns()}"
    res = lab.page.evaluate(
        """async ([code, marker]) => {
          const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
          const future = kernel.requestExecute({code, stop_on_error: true, silent: false,
                                                store_history: false});
          let text = '', error = null;
          future.onIOPub = (msg) => {
            if (msg.header.msg_type === 'stream') text += msg.content.text;
            if (msg.header.msg_type === 'error') error = msg.content.ename + ': ' + msg.content.evalue;
          };
          await future.done;
          return {text, error};
        }""",
        [f"print({marker!r}, repr({expr}))", marker],
    )
    assert res["error"] is None, res["error"]
    for line in res["text"].splitlines():
        if line.startswith(marker):
            return line[len(marker) + 1 :]
    raise AssertionError(f"no value printed for {expr!r}: {res['text']!r}")


def wait_kernel_value(lab, expr: str, expected: str, timeout_s: float = 30.0) -> str:
    """Poll ``kernel_value(expr)`` until it equals ``expected``; return the last value."""
    deadline = time.monotonic() + timeout_s
    value = kernel_value(lab, expr)
    while value != expected and time.monotonic() < deadline:
        lab.page.wait_for_timeout(250)
        value = kernel_value(lab, expr)
    return value


def notebook_code(name: str) -> list[str]:
    """The code cells of ``notebooks/<name>`` (run as they are by a browser test)."""
    import nbformat

    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def wait_decoded_images(page, at_least: int, timeout_ms: int = 120_000) -> None:
    """Wait until ``at_least`` image widgets hold a decoded picture (not an empty box)."""
    page.wait_for_function(
        """(n) => Array.from(document.querySelectorAll('.widget-image'))
                   .filter(i => i.complete && i.naturalWidth > 0).length >= n""",
        arg=at_least,
        timeout=timeout_ms,
    )
    wait_image_loaded(page, ".widget-image")


def wait_nbviz_widgets_live(page, count: int, timeout_ms: int = 120_000) -> list[str]:
    """Wait until views of ``count`` nbviz widgets are on the page, every view drawn
    (non-empty) with its static picture output present but hidden (nbviz hides a widget's
    picture while its live view is shown); return the widgets' model ids."""
    script = """(n) => {
      const views = Array.from(document.querySelectorAll('[class*="nbviz-live-"]'));
      const found = views.map(v => {
        const id = Array.from(v.classList).find(c => c.startsWith('nbviz-live-')).slice(11);
        const pic = document.querySelector('.nbviz-picture-' + id);
        return {id, height: v.getBoundingClientRect().height, picture: !!pic,
                hidden: pic ? getComputedStyle(pic).display === 'none' : null};
      });
      const ok = found.every(f => f.height > 0 && f.picture && f.hidden);
      const ids = Array.from(new Set(found.map(f => f.id)));
      return ok && ids.length >= n ? ids : null;
    }"""
    handle = page.wait_for_function(script, arg=count, timeout=timeout_ms)
    return sorted(handle.json_value())
