"""The status line every nbviz widget shows under its views: one look for progress notes and
one for errors (the error's type, its message with the fix), written the same everywhere."""

from __future__ import annotations

import html

from ..errors import NbvizError


def status_html(text: str) -> str:
    """A progress or result note (``text`` is HTML: escape user-given names first)."""
    return f"<span style='font-family: monospace'>{text}</span>"


def error_html(exc: BaseException) -> str:
    """An error: nbviz errors by their type (their message names the fix), others as unexpected."""
    kind = type(exc).__name__ if isinstance(exc, NbvizError) else f"unexpected {type(exc).__name__}"
    return (
        f"<span style='color: #b00020'>&#9888; {html.escape(kind)}: {html.escape(str(exc))}</span>"
    )
