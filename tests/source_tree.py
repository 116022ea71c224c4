"""The repository's own source, as the structure tests read it: where it is, the dotted
name of a file, and which `if` blocks never run."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The checkout."""


def module_name(path: Path) -> str:
    """The dotted module name of a `.py` file under `ROOT` (a package's `__init__.py` is
    the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(*folders: str) -> list[Path]:
    """Every `.py` file under the given top-level folders, sorted."""
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def is_type_checking(test: ast.expr) -> bool:
    """Whether an `if` tests `TYPE_CHECKING` (its body never runs)."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )
