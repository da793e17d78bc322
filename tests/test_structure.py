"""The package's shape: no import cycle among gankit's modules, and the loop stays readable.

Every import counts, at the top of a module or inside a function: an import deferred into a function
still ties the two modules together, and a cycle of them is what made the loop, the report and
compare hard to change one without the others. Imports of the package itself (`import gankit` for
its version) do not count: gankit/__init__.py runs before any submodule anyway, and its lazy exports
are resolved only when used.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gankit

PACKAGE = Path(gankit.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base]).strip(".")
                # `from gankit import viz` imports the module gankit.viz; `from gankit.x import f` imports gankit.x
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != "gankit" and t != name)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected group of modules (Tarjan's algorithm), as a path."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_is_read():
    graph = _import_graph()
    assert "gankit.rundir" in graph["gankit.report"]  # a top-level import
    assert "gankit.report" in graph["gankit.views"]  # an import inside a function counts too
    assert "gankit.loop" in graph["gankit.launch"]


def test_no_import_cycle_in_gankit():
    assert _cycles(_import_graph()) == []


def test_the_run_directory_has_one_owner():
    """report, compare, the loop and its views reach the run's files through gankit.rundir, and
    none of them imports another's module for it."""
    graph = _import_graph()
    for reader in ("gankit.report", "gankit.compare", "gankit.loop", "gankit.views", "gankit.launch"):
        assert "gankit.rundir" in graph[reader], reader
    assert "gankit.loop" not in graph["gankit.report"] | graph["gankit.compare"]
    assert "gankit.report" not in graph["gankit.compare"] and "gankit.compare" not in graph["gankit.report"]
    assert not graph["gankit.rundir"] & {"gankit.loop", "gankit.report", "gankit.compare", "gankit.launch"}


def test_the_training_loop_reads_in_one_sitting():
    lines = len((PACKAGE / "loop.py").read_text(encoding="utf-8").splitlines())
    assert lines <= 380, f"gankit/loop.py has {lines} lines: give the new concern a module of its own"
