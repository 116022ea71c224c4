"""The layers of the repository, as `docs/architecture.md` draws them: which folder may
import which. Every import counts, at module level or inside a function (a lazy import is
still a dependency); only imports under `if TYPE_CHECKING:` are left out, because they never
run."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.source_tree import ROOT, is_type_checking, module_name, python_files

MODEL = "core.model"
"""`core/*.py`: results, completions, errors, the kernel and `block`."""

ALLOWED: dict[str, set[str]] = {
    MODEL: {MODEL},
    "core": {MODEL},
    "core.io": {MODEL},
    "core.ops": {MODEL, "core.io"},
    "core.files": {MODEL, "core.io"},
    "core.storage": {MODEL, "core.io"},
    "core.sim": {MODEL, "core.io", "core.ops", "core.files", "core.storage"},
    "bridge": {"core", MODEL, "core.io", "core.ops", "core.files", "core.storage"},
    "examples": {
        "core",
        MODEL,
        "core.io",
        "core.ops",
        "core.files",
        "core.storage",
        "core.sim",
        "bridge",
    },
}
"""What each layer may import besides itself (third-party packages are not layers)."""

SUBPACKAGES = ("io", "ops", "files", "storage", "sim")
FOLDERS = ("core", "bridge", "examples")


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to, or None for anything outside the repo."""
    parts = module.split(".")
    if parts[0] == "core":
        if len(parts) == 1:
            return "core"
        return f"core.{parts[1]}" if parts[1] in SUBPACKAGES else MODEL
    if parts[0] in ("bridge", "examples"):
        return parts[0]
    return None


def imported_modules(tree: ast.Module) -> list[tuple[int, str]]:
    """Every module an import statement names, with its line; `if TYPE_CHECKING:` skipped."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def violations(path: Path) -> list[str]:
    source_layer = layer_of(module_name(path))
    assert source_layer is not None
    found = []
    for line, imported in imported_modules(ast.parse(path.read_text(), str(path))):
        # `from core.io import UnixIO` names core.io.UnixIO: the layer is that of core.io.
        target = layer_of(imported)
        if target is None or target == source_layer:
            continue
        if target not in ALLOWED[source_layer]:
            found.append(f"{path.relative_to(ROOT)}:{line} ({source_layer}) imports {imported}")
    return found


def test_every_module_imports_only_the_layers_below_it() -> None:
    files = python_files(*FOLDERS)
    assert len(files) > 50  # the walk found the repository
    problems = [problem for path in files for problem in violations(path)]
    assert problems == []


@pytest.mark.parametrize(
    ("source", "imported", "allowed"),
    [
        ("core/ops/read.py", "core.storage.pager", False),
        ("core/storage/pager.py", "core.files.call", False),
        ("core/completion.py", "core.io.backend", False),
        ("core/io/unix.py", "bridge.drive", False),
        ("bridge/aiofile.py", "examples.service", False),
        ("core/sim/chain.py", "core.storage.database", True),
        ("examples/quickstart.py", "bridge.drive", True),
    ],
)
def test_the_check_tells_allowed_from_forbidden(source: str, imported: str, allowed: bool) -> None:
    # The same check on a one-line module placed where `source` is: it must catch a
    # forbidden import and let an allowed one pass.
    target = ROOT / source
    module = ast.parse(f"import {imported}\n")
    found = imported_modules(module)
    assert found == [(1, imported)]
    source_layer = layer_of(module_name(target))
    assert source_layer is not None
    target_layer = layer_of(imported)
    assert target_layer is not None
    assert (target_layer == source_layer or target_layer in ALLOWED[source_layer]) is allowed


def test_type_checking_imports_do_not_count() -> None:
    module = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from core.io.backend import IOBackend\n"
        "def later():\n"
        "    import core.storage\n"
    )
    assert imported_modules(module) == [(1, "typing.TYPE_CHECKING"), (5, "core.storage")]


def is_repository_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def private_imports(source: str, where: str) -> list[str]:
    """`from <repository module> import _name`: a private name crossing files (a private
    submodule, such as `from bridge import _trio`, is a module, not a name, and may)."""
    return [
        f"{where}:{node.lineno} imports {alias.name} from {node.module}"
        for node in ast.walk(ast.parse(source, where))
        if isinstance(node, ast.ImportFrom) and node.module and layer_of(node.module)
        for alias in node.names
        if alias.name.startswith("_")
        and not alias.name.startswith("__")
        and not is_repository_module(f"{node.module}.{alias.name}")
    ]


def test_no_private_name_crosses_files() -> None:
    found = [
        problem
        for path in python_files(*FOLDERS)
        for problem in private_imports(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []
    planted = "from core.files.call import _Secret\nfrom bridge import _trio\n"
    assert private_imports(planted, "x.py") == ["x.py:1 imports _Secret from core.files.call"]


MAX_LINES = 1000
"""No module of `core`, `bridge` or `examples` grows past this; split it by concept."""


def test_every_module_opens_with_a_docstring_and_stays_under_the_size_limit() -> None:
    for path in python_files(*FOLDERS):
        text = path.read_text()
        name = path.relative_to(ROOT)
        assert ast.get_docstring(ast.parse(text)), f"{name} has no module docstring"
        lines = len(text.splitlines())
        assert lines <= MAX_LINES, f"{name} has {lines} lines; split it"
