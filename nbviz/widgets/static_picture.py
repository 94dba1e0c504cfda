"""Static pictures of live widgets, so that a saved notebook keeps what its widgets showed.

A widget view is drawn by the front end from kernel state: nbconvert, nbviewer, GitHub and a
notebook reopened without saved widget state show nothing in its place. So an nbviz widget
displays *two* outputs: its live view and, right below it, a static picture of what it shows
(PNG, with an HTML ``<figure>`` of the same image), drawn with the widget's own headless
export. The picture carries a CSS rule that hides it while the live view of the same widget
is on the page (``body:has(.nbviz-live-<id>)``), so live Jupyter and Voila show the widget
only; where the view is missing (static HTML, a closed widget, a lost kernel) the picture
shows.

The one decision that shaped it: the picture is refreshed on the *kernel* thread, by an
IPython ``post_run_cell`` hook (after every cell, only for widgets whose view changed, by
a cheap key) and before ``close()``. Updates sent from a worker thread after their cell
has returned are dropped by nbclient, so a worker never sends them.
"""

from __future__ import annotations

import base64
import logging
import threading
import weakref
from collections.abc import Hashable
from typing import Any

__all__ = ["StaticPicture", "close_picture", "refresh_all", "refresh_picture"]

_log = logging.getLogger("nbviz.widgets")
_shown: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_hooked_shells: weakref.WeakSet[Any] = weakref.WeakSet()
PLACEHOLDER = "[interactive nbviz widget: run the notebook in Jupyter to see it]"
CAPTION = "static picture of the widget's view; live in Jupyter"


class StaticPicture:
    """Mixin for the nbviz widgets: show a static picture beside the live view.

    A subclass provides :meth:`_picture_key` (a cheap value that changes whenever the view
    does; ``None`` while there is nothing to draw) and :meth:`_picture_png` (PNG bytes of
    the current view, drawn headless) and calls :func:`close_picture` before it closes.
    (A plain mixin, not an ABC: ``abc.ABCMeta`` conflicts with the widgets' metaclass.)
    """

    model_id: str

    def _picture_key(self) -> Hashable | None:
        raise NotImplementedError

    def _picture_png(self) -> bytes:
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        """Display the live view and, below it, the static picture (updated by display id)."""
        from IPython.display import display

        self.add_class(f"nbviz-live-{self.model_id}")  # type: ignore[attr-defined]
        display(self._repr_mimebundle_(), raw=True)  # type: ignore[attr-defined]
        state = _state(self)
        bundle = state.get("bundle") or _bundle(self.model_id, None)
        display(bundle, raw=True, display_id=_display_id(self))
        _shown[self.model_id] = self
        _hook_into_ipython()


def _state(widget: Any) -> dict[str, Any]:
    state = widget.__dict__.get("_nbviz_picture")
    if state is None:
        state = widget.__dict__["_nbviz_picture"] = {}
    return state


def _is_shown(widget: Any) -> bool:
    return _shown.get(getattr(widget, "model_id", None) or "") is widget


def _display_id(widget: Any) -> str:
    return f"nbviz-picture-{widget.model_id}"


def _bundle(model_id: str, png: bytes | None) -> dict[str, str]:
    """The picture output: PNG and an HTML figure of it, hidden while the live view shows."""
    rule = f"body:has(.nbviz-live-{model_id}) .nbviz-picture-{model_id} {{display: none}}"
    hide = f"<style>{rule}</style>"
    if png is None:
        return {
            "text/html": f'{hide}<p class="nbviz-picture-{model_id}"><em>{PLACEHOLDER}</em></p>',
            "text/plain": PLACEHOLDER,
        }
    data = base64.b64encode(png).decode("ascii")
    figure = (
        f'{hide}<figure class="nbviz-picture nbviz-picture-{model_id}" style="margin: 0">'
        f'<img alt="{CAPTION}" src="data:image/png;base64,{data}"/>'
        f"<figcaption><em>[{CAPTION}]</em></figcaption></figure>"
    )
    return {"text/html": figure, "image/png": data, "text/plain": f"[{CAPTION}]"}


def refresh_picture(widget: Any) -> bool:
    """Redraw ``widget``'s static picture if its view changed since the last one; True if a
    new picture was sent. Only on the kernel's main thread, and only for displayed widgets.
    Never raises: a view that cannot be drawn keeps its previous picture."""
    if threading.current_thread() is not threading.main_thread():
        return False
    if not _is_shown(widget):
        return False
    state = _state(widget)
    try:
        key = widget._picture_key()
        if key is None or key == state.get("key"):
            return False
        png = widget._picture_png()
    except Exception:  # a picture must never break the user's cell
        _log.debug("no static picture of %s", type(widget).__name__, exc_info=True)
        return False
    from IPython.display import update_display

    state["key"], state["bundle"] = key, _bundle(widget.model_id, png)
    update_display(state["bundle"], raw=True, display_id=_display_id(widget))
    return True


def close_picture(widget: Any) -> None:
    """Take ``widget``'s last picture and stop refreshing it (call before closing it): the
    picture stays in the notebook where the closed view leaves nothing."""
    refresh_picture(widget)
    if _is_shown(widget):
        del _shown[widget.model_id]


def refresh_all(*_: Any) -> int:
    """Refresh the picture of every displayed, open nbviz widget (the ``post_run_cell``
    hook); returns how many were redrawn."""
    return sum(refresh_picture(w) for w in list(_shown.values()))


def _hook_into_ipython() -> None:
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or shell in _hooked_shells:
        return
    shell.events.register("post_run_cell", refresh_all)
    _hooked_shells.add(shell)


def figure_png(figure: Any, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib ``Figure`` (tight, at ``dpi``)."""
    import io

    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def enlarged_png(png: bytes, min_size: int = 256) -> bytes:
    """``png`` enlarged by a whole factor (nearest neighbour) to at least ``min_size`` pixels
    on its long side, so that a 64-pixel image can be seen; unchanged if already that big."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png))
    scale = min_size // max(image.size)
    if scale <= 1:
        return png
    buf = io.BytesIO()
    image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST).save(
        buf, "png"
    )
    return buf.getvalue()
