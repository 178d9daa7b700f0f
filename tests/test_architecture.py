"""The layering the code promises, checked on its import statements.

* No import loop among Balsam's modules (imports at any level count, except
  those only for type checking).
* Providers and the context never import the domain or the web layer; the
  domain never imports the web layer.
* No web module imports the database models: the domain services decide.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import balsam

SRC = Path(balsam.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str, modules: set[str]) -> Iterator[str]:
    """What a module imports: ``from package import submodule`` names the submodule
    (the package's ``__init__`` runs too, but depends on what it imports itself)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            node.body = []  # skip what only the type checker sees
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1]
                    + ([base] if base else [])
                )
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in modules else base


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py") if "iam_pb" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {
            target
            for target in _imports(tree, package, set(modules))
            if target in modules and target != name
        }
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _packages_of(graph: dict[str, set[str]], name: str) -> set[str]:
    return {m for m in graph if m == name or m.startswith(name + ".")}


def test_there_is_no_import_loop() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_lower_layers_never_import_higher_ones() -> None:
    graph = _graph()
    rules = {
        "balsam.providers": ("balsam.domain", "balsam.web", "balsam.context"),
        "balsam.context": ("balsam.web",),
        "balsam.domain": ("balsam.web", "balsam.wiring", "balsam.app"),
    }
    wrong = [
        f"{module} imports {target}"
        for layer, forbidden in rules.items()
        for module in _packages_of(graph, layer)
        for target in graph[module]
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    ]
    assert wrong == []


def test_no_web_module_imports_the_database_models() -> None:
    graph = _graph()
    wrong = sorted(m for m in _packages_of(graph, "balsam.web") if "balsam.db.models" in graph[m])
    assert wrong == []


#: Libraries only some requests need, loaded on first use: the control plane's
#: memory is measured (bench/bench_data_upload_memory.py), and each costs 10-40 MB
#: for as long as it runs. Alembic: ``balsam up`` migrates in a child process.
LOADED_ON_DEMAND = ("alembic", "mako", "pyarrow", "psycopg", "openpyxl", "duckdb")


def test_the_control_plane_starts_without_the_libraries_of_rare_requests() -> None:
    check = (
        "import sys, balsam.cli.up, balsam.app; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert "balsam" in loaded
    assert loaded.isdisjoint(LOADED_ON_DEMAND), sorted(loaded & set(LOADED_ON_DEMAND))
