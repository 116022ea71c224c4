"""The service stands on the public API only.

Every module under `examples/service/` may import from `core`, `core.storage`, `bridge`
and `bridge.storage`, and from each only the names its `__all__` lists: the service is the
project's own example of an application, so whatever it needs from the storage engine is
something an application needs, and belongs in the public API. The imports are read with
`ast`, so a name in a string or a comment does not count.
"""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SERVICE = ROOT / "examples" / "service"
PUBLIC = ("core", "core.storage", "bridge", "bridge.storage")
"""The modules the service may import from (each with an exact `__all__`)."""
OURS = ("core", "bridge")


def _is_ours(module: str) -> bool:
    return module.partition(".")[0] in OURS


def _exported(module: str) -> set[str]:
    return set(importlib.import_module(module).__all__)


def offences(source: str, filename: str = "<source>") -> list[str]:
    """Each import in `source` that reaches past the public API, as `file:line: why`."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
            names: list[str] = []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
            names = [alias.name for alias in node.names]
        else:
            continue
        for module in filter(_is_ours, modules):
            where = f"{filename}:{node.lineno}"
            if module not in PUBLIC:
                found.append(f"{where}: imports {module}, which is not public")
                continue
            for name in sorted(set(names) - _exported(module)):
                found.append(f"{where}: imports {name} from {module}, not in its __all__")
    return found


def test_service_imports_only_public_names() -> None:
    paths = sorted(SERVICE.rglob("*.py"))
    assert len(paths) > 1
    found = []
    for path in paths:
        found += offences(path.read_text(), str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "from core.storage.collation import field_key",
        "from core.storage.schema import fold_name",
        "import core.storage.database",
        "from core.errors import CompletionError",
        "from core.storage import collation",
        "from bridge.drive import drive",
        "def f():\n    from core.storage.schema import fold_name",
    ],
)
def test_a_private_import_is_found(source: str) -> None:
    assert offences(source)


@pytest.mark.parametrize(
    "source",
    [
        "import bridge",
        "from bridge.storage import AsyncDatabase, row_key",
        "from core.storage import Bound, collation_key, fold_identifier",
        "from core import CompletionError",
        "from examples.service.settings import Settings",
        "from fastapi import FastAPI",
    ],
)
def test_a_public_import_passes(source: str) -> None:
    assert offences(source) == []
