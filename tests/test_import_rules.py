"""The layering rules of the charter, read from the source tree's import statements.

- ``hsae/interfaces/`` imports nothing of hsae but ``hsae.errors`` (and itself);
- the core (``hsae/``) imports no plugin, and has no import circle (every ``import`` counts,
  also those inside functions: a deferred import hides a circle, it does not remove it);
- plugins (first-party ``plugins/``, and the example third-party package in ``examples/``)
  import hsae only through ``hsae.interfaces``, ``hsae.errors`` and ``hsae.store``.

A failure lists every offending ``file:line`` and what it imports, so whoever broke a rule can
fix it without reading this test.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_API = ("hsae.interfaces", "hsae.errors", "hsae.store")
INTERFACES_MAY_IMPORT = ("hsae.interfaces", "hsae.errors")


@dataclass(frozen=True)
class Edge:
    source: str  # importing module, dotted
    target: str  # imported module (or the package an imported name lives in), dotted
    where: str  # file:line

    def __str__(self) -> str:
        return f"{self.where}: {self.source} imports {self.target}"


def _module_name(path: Path, top: Path, package: str) -> str:
    parts = path.relative_to(top).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((package, *parts))


def _modules(top: Path, package: str) -> dict[str, Path]:
    return {_module_name(p, top, package): p for p in sorted(top.rglob("*.py"))}


def _imports(module: str, path: Path, known: set[str]) -> list[Edge]:
    """Every import in ``path``: ``from a.b import c`` counts as importing ``a.b.c`` when that is
    a module of ``known``, else ``a.b``; relative imports are resolved against ``module``."""
    is_package = path.name == "__init__.py"
    edges = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            edges += [Edge(module, alias.name, where) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                edges.append(Edge(module, full if full in known else base, where))
    return edges


def _tree(top: str, package: str) -> tuple[dict[str, Path], list[Edge]]:
    modules = _modules(ROOT / top, package)
    edges = [e for name, path in modules.items() for e in _imports(name, path, set(modules))]
    return modules, edges


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _report(broken: list[Edge], rule: str) -> str:
    return f"{rule}; offending imports:\n" + "\n".join(f"  {e}" for e in broken)


def test_interfaces_import_only_errors_and_themselves():
    _, edges = _tree("hsae", "hsae")
    broken = [e for e in edges if _within(e.source, ("hsae.interfaces",)) and _within(e.target, ("hsae", "hsae_plugins"))
              and not _within(e.target, INTERFACES_MAY_IMPORT)]
    assert not broken, _report(broken, "hsae/interfaces/ may import only hsae.errors and hsae.interfaces "
                                       "(move what the contract needs into hsae/interfaces/, or pass it in)")


def test_core_imports_no_plugin():
    _, edges = _tree("hsae", "hsae")
    broken = [e for e in edges if _within(e.target, ("hsae_plugins",))]
    assert not broken, _report(broken, "the core names no plugin; ask hsae.registry for (group, name)")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, or with a self-loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_in_the_core():
    modules, edges = _tree("hsae", "hsae")
    inside = [e for e in edges if e.target in modules and e.target != e.source]
    graph: dict[str, set[str]] = {}
    for e in inside:
        graph.setdefault(e.source, set()).add(e.target)
    circles = _cycles(graph)
    lines = []
    for component in circles:
        members = set(component)
        lines.append("circle among " + ", ".join(component) + ":")
        lines += [f"    {e}" for e in inside if e.source in members and e.target in members]
    assert not circles, "import circles in hsae/ (every import counts, deferred ones too):\n" + "\n".join(lines)


def _plugin_trees() -> list[tuple[str, str]]:
    trees = [("plugins", "hsae_plugins")]
    for pyproject in sorted((ROOT / "examples").glob("*/pyproject.toml")):
        for package in sorted(p.parent for p in (pyproject.parent / "src").glob("*/__init__.py")):
            trees.append((str(package.relative_to(ROOT)), package.name))
    return trees


def test_plugins_import_hsae_only_through_its_public_api():
    broken = []
    for top, package in _plugin_trees():
        _, edges = _tree(top, package)
        broken += [e for e in edges if _within(e.target, ("hsae",)) and not _within(e.target, PLUGIN_API)]
    assert not broken, _report(broken, "plugins may import hsae only through " + ", ".join(PLUGIN_API))


def test_the_rules_see_a_broken_import(tmp_path, monkeypatch):
    """The checks above read real statements: a planted bad import is reported with its line."""
    plugin = tmp_path / "plugins" / "bad.py"
    plugin.parent.mkdir()
    plugin.write_text("import torch\n\nfrom hsae.sae.sae import SAE\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    _, edges = _tree("plugins", "hsae_plugins")
    assert [str(e) for e in edges if _within(e.target, ("hsae",))] == ["plugins/bad.py:3: hsae_plugins.bad imports hsae.sae.sae"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
