"""Write the API reference pages (docs/api/*.rst, generated, git-ignored) from the packages'
``__all__``, so every public name is documented exactly once, at the path users import it
from, and a name added to an ``__all__`` appears without editing the docs. Also the
docstring check that makes the build fail on a public name without a docstring.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path
from typing import Any

from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

logger = logging.getLogger(__name__)

# (module, title, intro); each is documented from its __all__ (or its public names).
PAGES = [
    (
        "nbviz",
        "nbviz",
        "The top-level package: the widgets and the demo helpers, re-exported "
        "lazily (``import nbviz`` does not import TensorFlow).",
    ),
    ("nbviz.featuremaps", "nbviz.featuremaps", "Feature-map backend (no widgets)."),
    ("nbviz.optvis", "nbviz.optvis", "Optimization-visualization backend (no widgets)."),
    ("nbviz.landscape", "nbviz.landscape", "Loss-landscape backend (no widgets)."),
    (
        "nbviz.landscape.distributed",
        "nbviz.landscape.distributed",
        "Loss grids on a Dask client or any ``concurrent.futures.Executor``.",
    ),
    ("nbviz.demo", "nbviz.demo", "The demo model, its data, sample images, the parabola MLP."),
    ("nbviz.widgets", "nbviz.widgets", "The Jupyter widgets."),
    (
        "nbviz.errors",
        "nbviz.errors",
        "Error types: each message says what is wrong and how to fix it.",
    ),
]
PAGE_NAMES = {modname for modname, _, _ in PAGES}


def _add_new_subpackages() -> None:
    """A subpackage added to nbviz later gets its page without editing this list."""
    import nbviz

    for m in pkgutil.iter_modules(nbviz.__path__):
        name = f"nbviz.{m.name}"
        if m.ispkg and not m.name.startswith("_") and name not in PAGE_NAMES:
            PAGES.insert(-1, (name, name, ""))
            PAGE_NAMES.add(name)


# Types that public signatures use but no __all__ exports; documented with their module.
SUPPORT_TYPES = {
    "nbviz.layers": ["LayerInfo", "build_tap_model", "build_extractor", "find_layer"],
    "nbviz.landscape.planes": ["Plane", "PlaneRequest", "PlanePlanner", "GridSpec", "ResumeGrid"],
    "nbviz.landscape.shown": ["ShownLandscape"],
    "nbviz.landscape.topeigen": ["TopEigen", "top_eigen", "mixed_start"],
    "nbviz.worker": ["Worker", "JobContext", "Throttle"],
    "nbviz.landscape.weights": ["TensorInfo"],
    "nbviz.landscape.watch": ["LandscapeWatcher", "PathFrame", "SurfaceFrame"],
    "nbviz.demo.splits": ["SPLITS", "Split"],
    "nbviz.demo.tuning": [
        "orientation_tuning",
        "OrientationTuning",
        "dominant_orientation",
        "Orientation",
        "angle_difference",
    ],
    "nbviz.widgets.static_picture": [
        "StaticPicture",
        "refresh_picture",
        "close_picture",
        "refresh_all",
    ],
    "nbviz.optvis.introspection": [
        "LayerTable",
        "LayerReader",
        "preactivation_fn",
        "check_image_model",
        "check_float_input",
    ],
    "nbviz.optvis.objective_core": [
        "Context",
        "Sum",
        "Scaled",
        "UnitObjective",
        "Channel",
        "Neuron",
        "ClassLogit",
    ],
}


def public_names(module: Any) -> list[str]:
    """``__all__``, or the names defined in the module that do not start with ``_``."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and getattr(v, "__module__", None) == module.__name__
        and (inspect.isclass(v) or inspect.isfunction(v))
    ]


def _directive(qualified: str, obj: Any) -> str:
    if inspect.isclass(obj):
        return f".. autoclass:: {qualified}\n   :members:\n   :undoc-members:\n"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismethod(obj):
        return f".. autofunction:: {qualified}\n"
    return f".. autodata:: {qualified}\n"


def _page(modname: str, title: str, intro: str, documented: dict[int, str]) -> str:
    module = importlib.import_module(modname)
    lines = [
        title,
        "=" * len(title),
        "",
        f".. automodule:: {modname}",
        "   :no-members:",
        "",
        intro,
        "",
    ]
    submodules = []
    for name in public_names(module):
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            submodules.append(obj)
            continue
        target = documented.get(id(obj)) if not isinstance(obj, (str, int, float)) else None
        if target is not None and target != f"{modname}.{name}":
            lines += [f"* ``{name}``: :py:obj:`{target}`", ""]
            continue
        documented[id(obj)] = f"{modname}.{name}"
        lines.append(_directive(f"{modname}.{name}", obj))
    # Exported modules (optvis.objectives, ...): their docstring and the public names the
    # package does not re-export.
    for sub in submodules:
        lines += _module_section(sub.__name__, documented, public_names(sub))
    # The other modules' design notes, so :mod: references to them resolve.
    exported = {sub.__name__ for sub in submodules}
    for sub in _inner_modules(module):
        if sub not in exported and sub not in PAGE_NAMES:
            lines += _module_section(sub, documented, SUPPORT_TYPES.get(sub, []))
    return "\n".join(lines) + "\n"


def _module_section(modname: str, documented: dict[int, str], names: list[str]) -> list[str]:
    sub = importlib.import_module(modname)
    lines = [
        f"``{modname}``",
        "-" * (len(modname) + 4),
        "",
        f".. automodule:: {modname}",
        "   :no-members:",
        "",
    ]
    for name in names:
        obj = getattr(sub, name)
        if id(obj) in documented:
            continue
        documented[id(obj)] = f"{modname}.{name}"
        lines.append(_directive(f"{modname}.{name}", obj))
    return lines


def _inner_modules(module: Any) -> list[str]:
    """The public modules directly inside a package (none for a plain module)."""
    if not hasattr(module, "__path__"):
        return []
    return [
        f"{module.__name__}.{m.name}"
        for m in pkgutil.iter_modules(module.__path__)
        if not m.name.startswith("_")
    ]


def write_api_pages(out: Path) -> None:
    """Write one page per public module, documenting each object once: the first page that
    exports it documents it; later pages (the lazy top-level re-exports) link to it."""
    out.mkdir(parents=True, exist_ok=True)
    _add_new_subpackages()
    documented: dict[int, str] = {}
    # Subpackages first, so the top-level page links to their entries.
    order = PAGES[1:] + PAGES[:1]
    pages = {}
    for modname, title, intro in order:
        pages[modname] = _page(modname, title, intro, documented)
    toc = [
        "API reference",
        "=============",
        "",
        "Generated from the docstrings of every name that ``nbviz`` and its subpackages "
        "export (their ``__all__``).",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
    ]
    for modname, _, _ in PAGES:
        _write_if_changed(out / f"{modname}.rst", pages[modname])
        toc.append(f"   {modname}")
    _write_if_changed(out / "index.rst", "\n".join(toc) + "\n")


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def check_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Fail the build (a warning; the build runs with -W) on a public class, function or
    method without a docstring."""
    if what == "data":
        # A re-exported constant: its ``#:`` comment is in the module that defines it;
        # without one autodoc shows its type's docstring (dict, str...).
        own = inspect.getdoc(type(obj)) or ""
        if not any(line.strip() for line in lines) or "\n".join(lines).strip() == own.strip():
            lines[:] = _attribute_comment(name, obj)
    elif what not in ("class", "function", "method", "exception", "module"):
        return
    short = name.rsplit(".", 1)[-1]
    if short.startswith("_"):
        return
    if not any(line.strip() for line in lines):
        logger.warning(
            f"nbviz API: {what} {name} has no docstring", type="nbviz", subtype="docstring"
        )


def _attribute_comment(name: str, obj: Any) -> list[str]:
    """The ``#:`` comment of the module-level constant ``obj``, found in whichever nbviz
    module defines it under the same short name."""
    short = name.rsplit(".", 1)[-1]
    for modname, module in sorted(sys.modules.items()):
        if not modname.startswith("nbviz") or getattr(module, short, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
        except Exception:
            continue
        if ("", short) in docs:
            return list(docs[("", short)])
    return []


def skip_member(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> bool | None:
    """Leave out methods that only implement a third-party interface (Keras' ``Callback.on_*``
    hooks, ``set_model``) without a docstring of their own: they are not nbviz API."""
    if what != "class" or skip or getattr(obj, "__doc__", "x"):
        return None
    return True if name.startswith(("on_", "set_model", "set_params")) else None
