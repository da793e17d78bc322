"""The package's shape: the layering rules, no import cycle among gankit's modules, the loop a loop.

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
                # `from gankit import viz` imports the module gankit.run.pictures; `from gankit.x import f` imports gankit.x
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
    assert "gankit.run.rundir" in graph["gankit.run.report"]  # a top-level import
    assert "gankit.run.report" in graph["gankit.run.training_views"]  # an import inside a function counts too
    assert "gankit.training.loop" in graph["gankit.training.launch"]


def test_no_import_cycle_in_gankit():
    assert _cycles(_import_graph()) == []


def test_the_run_directory_has_one_owner():
    """report, compare, the loop and its views reach the run's files through gankit.run.rundir, and
    none of them imports another's module for it."""
    graph = _import_graph()
    readers = ("gankit.run.report", "gankit.run.compare", "gankit.run.training_views", "gankit.training.loop",
               "gankit.training.launch")
    for reader in readers:
        assert "gankit.run.rundir" in graph[reader], reader
    assert "gankit.run.report" not in graph["gankit.run.compare"] and "gankit.run.compare" not in graph["gankit.run.report"]
    assert not graph["gankit.run.rundir"] & set(readers)


# The layering rules. A module may import modules of a lower layer, and modules of its own package
# (inside a package the cycle test above is the rule); never a module of a higher layer, nor of
# another package on its own layer. Top to bottom: what a user runs, the Python API, then training
# and its views, down to the small leaves everything shares.
LAYERS: list[tuple[str, ...]] = [
    ("gankit.__main__",),                         # python -m gankit
    ("gankit.cli",),                              # the command line
    ("gankit.api", "gankit.serve"),               # the Python API (gankit.train / load / evaluate); the explorer page
    ("gankit.bench", "gankit.sampling"),          # timing a step; drawing from a trained run
    ("gankit.training",),                         # the loop and everything one step needs
    ("gankit.run", "gankit.metrics"),             # a run's files and views; extractors and scores
    ("gankit.nets", "gankit.preset_choice", "gankit.export"),  # networks; which preset data gets; exports
    ("gankit.presets",),                          # named recipes
    ("gankit.config",),                           # the Config, validated once
    ("gankit.augment", "gankit.data"),            # augmentation ops; datasets and the picture cache
    ("gankit.errors", "gankit.images", "gankit.atomic"),  # leaves: errors, pixel conversions, atomic writes
]


def _unit(module: str) -> str:
    """The layer entry a module belongs to: its package (gankit.training.step -> gankit.training)
    or, at the top level, the module itself."""
    for layer in LAYERS:
        for unit in layer:
            if module == unit or module.startswith(unit + "."):
                return unit
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in tests/test_structure.py")


def _layer(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _breaches(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, targets in sorted(graph.items()):
        if module == "gankit":  # the package's lazy exports, resolved only when used
            continue
        here = _unit(module)
        for target in sorted(targets):
            there = _unit(target)
            if there != here and _layer(there) <= _layer(here):
                found.append(f"{module} imports {target} ({there} is not below {here})")
    return found


def test_every_module_has_a_layer():
    for module in _import_graph():
        if module != "gankit":
            _unit(module)


def test_the_layering_test_finds_a_breach():
    graph = {"gankit.run.report": {"gankit.training.loop"}, "gankit.training.loop": {"gankit.run.rundir"},
             "gankit.run.rundir": set(), "gankit.metrics.scores": {"gankit.run.rundir"}}
    assert _breaches(graph) == [
        "gankit.metrics.scores imports gankit.run.rundir (gankit.run is not below gankit.metrics)",
        "gankit.run.report imports gankit.training.loop (gankit.training is not below gankit.run)"]


def test_no_package_imports_one_above_it():
    assert _breaches(_import_graph()) == []


def test_the_top_level_holds_what_a_user_touches_and_the_leaves():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top == ["__init__", "__main__", "api", "atomic", "bench", "cli", "config", "errors", "export", "images",
                   "preset_choice", "presets", "sampling"]


def test_the_loop_leaves_the_arithmetic_to_the_step():
    """loop.py decides when and on which batches; how D and G learn is the step's (step.py, losses.py):
    the loop computes no loss, takes no gradient and steps no optimiser."""
    tree = ast.parse((PACKAGE / "training" / "loop.py").read_text(encoding="utf-8"))
    called = {node.func.attr for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
    assert not called & {"backward", "zero_grad", "grad", "d_loss", "generator_loss"}
    assert "gankit.training.losses" not in _import_graph()["gankit.training.loop"]
