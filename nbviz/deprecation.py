"""Old names kept working while users move to the new ones.

nbviz uses one word per concept across widgets and backends ("channel", Lucid's word, for what
was also called filter or unit). Renamed keywords, attributes and traits stay usable for a
while: each use emits a :class:`DeprecationWarning` that names the new spelling, and then does
exactly what the new name does. Everything here is headless (no widget imports).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["renamed_attribute", "renamed_keywords", "warn_renamed"]

F = TypeVar("F", bound=Callable[..., Any])


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new`` (both as the user writes them)."""
    warnings.warn(
        f"{old} is deprecated; use {new} instead (same meaning). Fix: rename it in your code.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_keywords(**renames: str) -> Callable[[F], F]:
    """Accept each old keyword (``old="new"``) with a warning, passed on as the new one.

    Giving both the old and the new keyword is a :class:`TypeError`.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"{fn.__qualname__}() got both {old}= and {new}=. "
                            f"Fix: pass only {new}= ({old}= is its deprecated name)."
                        )
                    warn_renamed(f"{old}=", f"{new}=")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def renamed_attribute(old: str, new: str) -> property:
    """A property ``old`` that reads and writes attribute (or trait) ``new``, with a warning."""

    def get(self: Any) -> Any:
        warn_renamed(f"{type(self).__name__}.{old}", f".{new}")
        return getattr(self, new)

    def set_(self: Any, value: Any) -> None:
        warn_renamed(f"{type(self).__name__}.{old}", f".{new}")
        setattr(self, new, value)

    return property(get, set_, doc=f"Deprecated name of ``{new}``.")
