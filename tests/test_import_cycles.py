"""No import cycle among the modules of `core` and `bridge`.

A cycle makes what a module sees at import time depend on which module of the cycle was
imported first. Only imports that run when a module is imported count: those at module
level (also inside a module-level `if`/`try`/`with`), but not those inside a function, the
lazy way to import trio, and not those under `if TYPE_CHECKING:`, which never run.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator

from tests.source_tree import is_type_checking, module_name, python_files

PACKAGES = ("core", "bridge")


def _sources() -> dict[str, pathlib.Path]:
    return {module_name(path): path for path in python_files(*PACKAGES)}


def _import_time_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run when the module is imported (no function or class bodies
    that run later; class bodies run at import, so they are walked)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        yield node
        if isinstance(node, ast.If):
            if not is_type_checking(node.test):
                yield from _import_time_statements(node.body)
            yield from _import_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _import_time_statements(block)
            for handler in node.handlers:
                yield from _import_time_statements(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from _import_time_statements(node.body)


def _imports(module: str, path: pathlib.Path, known: set[str]) -> set[str]:
    """The modules of `known` that `module` imports when it is imported."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _import_time_statements(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                if not is_package:
                    anchor.pop()
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from package import module` imports the module; otherwise the name
                # comes from `base` itself.
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
    return found & known - {module}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _graph() -> dict[str, set[str]]:
    sources = _sources()
    known = set(sources)
    return {module: _imports(module, path, known) for module, path in sources.items()}


def test_no_import_cycle_among_core_and_bridge_modules() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "modules that import each other (module-level imports):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_cycle_finder_sees_a_cycle_and_the_import_reader_sees_imports() -> None:
    # Guards against a test that passes because it sees nothing.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    graph = _graph()
    assert "bridge._drive_common" in graph["bridge._trio"]
    assert "bridge._trio" not in graph["bridge._drive"]  # imported inside `drive` only
    assert "core.result" in graph["core.driver"]
