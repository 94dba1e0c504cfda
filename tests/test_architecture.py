"""The layout is the architecture: imports between nbviz modules run one way (no cycles, also
through imports inside functions), and the headless backends never import widget code."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nbviz"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(nbviz_only: bool = True) -> dict[str, set[str]]:
    """``{module: modules it imports}`` (nbviz's own only by default), relative imports
    resolved, at any depth (imports inside functions too; not those for type checkers only)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found: set[str] = set()
        tree = ast.parse(path.read_text())
        type_only = {  # `if TYPE_CHECKING:` imports are annotations, never run
            id(sub)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")
            for sub in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = found
    if not nbviz_only:
        return graph
    modules = set(graph)
    return {m: {t for t in targets if t in modules and t != m} for m, targets in graph.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_imports_between_nbviz_modules_have_no_cycles():
    graph = _imports()
    # edges from a package __init__ to its own submodules are the package's re-exports
    for m in graph:
        graph[m] = {t for t in graph[m] if not t.startswith(m + ".")}
    assert _cycles(graph) == []


def test_backends_never_import_widgets():
    graph = _imports()
    backends = [m for m in graph if not m.startswith("nbviz.widgets") and m != "nbviz"]
    offenders = {m: sorted(t for t in graph[m] if t.startswith("nbviz.widgets")) for m in backends}
    assert {m: t for m, t in offenders.items() if t} == {}
    ui = ("ipywidgets", "bqplot", "ipyvolume", "IPython.display")
    for m, targets in _imports(nbviz_only=False).items():
        if m in backends:
            assert not [t for t in targets if t.startswith(ui)], m


MAX_FILE_LINES = 600  # a module a newcomer can read in one sitting
MAX_CLASS_LINES = 450  # past this, split the headless session and the views out (STYLE.md)
# Known to be over, with the size they may not grow past (none now). Remove an entry once it
# is under.
KNOWN_OVER: dict[str, int] = {}


def _sizes() -> dict[str, int]:
    """Lines of every nbviz module (``path``) and class (``path:Class``, ast span)."""
    sizes = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(PACKAGE.parent).as_posix()
        sizes[name] = len(text.splitlines())
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                end = node.end_lineno or node.lineno
                sizes[f"{name}:{node.name}"] = end - node.lineno + 1
    return sizes


def test_no_module_or_class_grows_past_what_one_person_can_hold():
    sizes = _sizes()
    over = {
        name: n
        for name, n in sizes.items()
        if n > (MAX_CLASS_LINES if ":" in name else MAX_FILE_LINES)
    }
    unknown = {name: n for name, n in over.items() if name not in KNOWN_OVER}
    assert unknown == {}, "over the size one person can hold: move a responsibility out"
    grown = {name: n for name, n in over.items() if n > KNOWN_OVER[name]}
    assert grown == {}, "a known oversized room grew: split it before adding to it"
    fixed = sorted(set(KNOWN_OVER) - set(over))
    assert fixed == [], "under the limit now: remove it from KNOWN_OVER"
