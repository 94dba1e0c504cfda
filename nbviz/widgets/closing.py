"""Closing a widget together with everything it holds."""

from __future__ import annotations

from typing import Any

from ipywidgets import Widget


def close_widget_tree(root: Any) -> None:
    """Close ``root`` and every widget reachable through its traits (lists/dicts too).

    ``Widget.close()`` closes one model only; a figure's meshes, materials, camera, scales
    and layouts would otherwise stay alive in the kernel and the front end.
    """
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, Widget) and id(obj) not in seen:
            seen.add(id(obj))
            # Only traits that hold a value: reading an unset one would build its default
            # (e.g. a Layout) just to close it, or import at interpreter shutdown.
            stack.extend(getattr(obj, n) for n in obj.trait_names() if obj.trait_has_value(n))
            obj.close()
