"""Helpers shared by the per-widget browser tests (tests/browser/test_widgets_*.py).

Screenshots: every helper call saves an element screenshot under ``test-artifacts/browser/``;
with ``NBVIZ_SCREENSHOTS=<dir>`` (e.g. ``docs/images``) the README screenshots are also written
there under fixed names, shrunk to a palette PNG so that each stays small (< 150 KB).
"""

from __future__ import annotations

import io
import os
import re
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


_NBVIZ_VIEWS_JS = """() => Array.from(document.querySelectorAll('[class*="nbviz-live-"]'))
  .map(v => {
    const c = Array.from(v.classList).find(c => /^nbviz-live-[0-9a-f]{32}$/.test(c));
    if (!c) return null;
    const id = c.slice(11);
    const pics = document.querySelectorAll('.nbviz-picture-' + id);
    return {id, height: v.getBoundingClientRect().height, pictures: pics.length,
            hidden: pics.length ? getComputedStyle(pics[0]).display === 'none' : null};
  }).filter(f => f)"""


def nbviz_views(page) -> list[dict]:
    """Every nbviz widget view on the page: its model id, height, how many static pictures of
    it the page holds and whether the (first) picture is hidden."""
    return page.evaluate(_NBVIZ_VIEWS_JS)


def wait_nbviz_widgets_live(
    page, count: int, timeout_ms: int = 120_000, *, pictures: bool = True
) -> list[str]:
    """Wait until views of ``count`` nbviz widgets are on the page, every view drawn
    (non-empty) with its static picture output present but hidden (nbviz hides a widget's
    picture while its live view is shown); return the widgets' model ids. ``pictures=False``:
    a picture may be missing (see ``test_widgets_tour_voila.py``), one that is there is hidden."""
    script = f"""(n) => {{
      const found = ({_NBVIZ_VIEWS_JS})();
      const ok = found.every(f => f.height > 0 && (f.pictures > 0 ? f.hidden : !{str(pictures).lower()}));
      const ids = Array.from(new Set(found.map(f => f.id)));
      return ok && ids.length >= n ? ids : null;
    }}"""
    handle = page.wait_for_function(script, arg=count, timeout=timeout_ms)
    return sorted(handle.json_value())


# -- landscape widgets as a user sees them (notebooks run in the browser) ------------------

#: Elements of a landscape's 2-D figure apart from its read-out squares, at most: about
#: 260-300 are axes, colour bar (9 stops), iso-lines (a few per level) and the path; a square
#: per cell of a 41x41 grid would add 1681 x 3, bqplot's 256-stop viridis bar 250, a marker per
#: snapshot of a long path hundreds.
MAX_LIVE_ELEMENTS = 450
#: Read-out tiles of a finished grid, at most (nbviz.widgets.landscape_views.HOVER_PER_AXIS
#: per axis; not imported: that would load TensorFlow into the test process).
MAX_SQUARES = 11 * 11

_LANDSCAPE_VIEW_JS = """(id) => {
  const root = document.querySelector('.nbviz-live-' + id);
  if (!root) return null;
  const stop = Array.from(root.querySelectorAll('button'))
    .find(b => b.textContent.trim() === 'Stop');
  const row = stop ? stop.closest('.widget-hbox') : null;
  const label = row ? row.querySelector('.widget-html') : null;
  const notes = root.querySelectorAll(':scope > .widget-html');
  const status = notes.length ? notes[notes.length - 1] : null;
  const figures = Array.from(root.querySelectorAll('.bqplot'));
  const heat = root.querySelector('image.heatmap');
  const href = heat ? (heat.getAttribute('href') || heat.getAttribute('xlink:href') || '') : '';
  return {
    stop_disabled: stop ? stop.disabled : null,
    progress: label ? label.innerText.trim() : null,
    status: status ? status.innerText.trim() : null,
    figures: figures.length,
    elements: figures.map(f => f.querySelectorAll('*').length),
    squares: figures.map(f => f.querySelectorAll('.heatmapcell').length),
    in_points: figures.map(f => f.querySelectorAll(
      '.object_grp, .object_grp *, .heatmaprow, .heatmaprow *').length),
    heat_bytes: href.startsWith('data:image') ? href.length : 0,
    contour_points: Math.max(0, ...Array.from(root.querySelectorAll('g.curve path.line'))
      .map(p => (p.getAttribute('d') || '').split('L').length)),
  };
}"""


def landscape_view(page, model_id: str) -> dict | None:
    """What the landscape widget ``model_id`` shows on the page: its Stop button's state, the
    progress label's and status line's texts, its bqplot figures (how many, their elements,
    their scatter points and the elements in those), the heat map picture's size and the longest iso-line."""
    return page.evaluate(_LANDSCAPE_VIEW_JS, model_id)


def landscape_ids(page) -> list[str]:
    """Model ids of the nbviz widgets on the page that show a loss landscape (a heat map)."""
    return sorted(
        page.evaluate(
            """() => Array.from(document.querySelectorAll('[class*="nbviz-live-"]'))
                 .filter(v => v.querySelector('image.heatmap'))
                 .map(v => Array.from(v.classList).find(c => /^nbviz-live-[0-9a-f]{32}$/.test(c)))
                 .filter(c => c).map(c => c.slice(11))"""
        )
    )


def wait_landscape_drawn(page, model_id: str, timeout_ms: int = 120_000) -> dict:
    """Wait until the landscape ``model_id`` shows a finished grid: a heat-map picture,
    iso-lines, Stop disabled and the progress label counting every cell; return
    :func:`landscape_view` (then :func:`check_landscape_view` checks the rest)."""
    page.wait_for_function(
        f"""(id) => {{ const v = ({_LANDSCAPE_VIEW_JS})(id);
              const m = v && /^(\\d+)\\/(\\d+) cells/.exec(v.progress || '');
              return v && v.heat_bytes > 0 && v.contour_points > 2 && v.stop_disabled
                     && m && m[1] === m[2]; }}""",
        arg=model_id,
        timeout=timeout_ms,
    )
    return landscape_view(page, model_id)


def check_landscape_view(view: dict) -> None:
    """Assert the truths a user reads off a landscape widget that has finished: nothing
    runs (Stop disabled, no "computing"), the progress label counts the whole grid without an
    ETA, its seconds and the status line's come from one clock, and the page holds the 2-D
    figure only (the hidden line view is not in it) with a bounded number of elements."""
    progress = re.fullmatch(r"(\d+)/(\d+) cells, ([\d.]+) s", view["progress"] or "")
    assert progress, view
    done, total, took = int(progress[1]), int(progress[2]), float(progress[3])
    assert done == total, view
    assert view["stop_disabled"] is True, view
    assert "computing" not in view["status"], view
    seconds = re.search(r"([\d.]+) s\b", view["status"])
    assert seconds and abs(float(seconds[1]) - took) <= 0.051, view  # 1 vs 2 decimals
    assert view["figures"] == 1, view
    # read-out tiles (a GridHeatMap) and the path's joints; the rest bounded as when live
    (elements,), (squares,), (in_points,) = view["elements"], view["squares"], view["in_points"]
    assert squares <= MAX_SQUARES and elements - in_points <= MAX_LIVE_ELEMENTS, view


def heat_pictures(page) -> dict[str, dict]:
    """Per nbviz widget (model id): the heat-map pictures the page probe
    (:data:`~.conftest.PAGE_PROBE_JS`) saw, as ``{"distinct": n, "live_elements": max}``
    (the most elements of its figure at any picture but the last, which may carry the
    read-out squares)."""
    perf = page.evaluate("() => window.__nbvizPerf")
    seen: dict[str, list] = {}
    for (_t, n, tail, elements), owner in zip(perf["heat"], perf["heatIn"], strict=True):
        if tail != "data:,":
            seen.setdefault(owner, []).append((n, tail, elements))
    return {
        owner: {
            "distinct": len({(n, tail) for n, tail, _ in pics}),
            "live_elements": max([e for *_, e in pics[:-1]], default=0),
        }
        for owner, pics in seen.items()
    }
