"""The public surface: `__all__` is exact, the contract names import, the core stays loop-free."""

from __future__ import annotations

import ast
import importlib
import pathlib
import pkgutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FORBIDDEN = {"asyncio", "anyio", "trio", "uvloop", "aiofiles", "sniffio"}


def _modules(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        names.append(info.name)
    return names


def test_contract_names_import() -> None:
    import bridge
    from bridge import AsyncFileIO, drive  # noqa: F401
    from core import (  # noqa: F401
        IO,
        Completion,
        CompletionError,
        CompletionGroup,
        Continue,
        Done,
        ErrorKind,
        IOResult,
        IOResultError,
        StateMachine,
        block,
        io_yield_one,
    )
    from core.io import (  # noqa: F401
        File,
        IOBackend,
        MemoryIO,
        MemoryYieldIO,
        OpenFlags,
        UnixIO,
        UringIO,
    )
    from core.sim import FaultConfig, SimulatorIO, explore  # noqa: F401
    from core.storage import CorruptDatabaseError, Database  # noqa: F401

    assert callable(bridge.open)
    assert issubclass(CorruptDatabaseError, IOResultError)
    assert issubclass(CompletionError, IOResultError)
    assert {k.name for k in ErrorKind} >= {
        "IO",
        "ABORTED",
        "SHORT_READ",
        "SHORT_WRITE",
        "CHECKSUM_MISMATCH",
        "CALLBACK",
        "CLOSED",
    }
    assert {f.name for f in OpenFlags} >= {"CREATE", "READ_ONLY"}
    assert OpenFlags.NONE.value == 0


@pytest.mark.parametrize(
    "package", ["core", "core.io", "core.ops", "core.sim", "core.files", "core.storage", "bridge"]
)
def test_all_matches_exports(package: str) -> None:
    module = importlib.import_module(package)
    exported = set(module.__all__)
    assert len(exported) == len(module.__all__), "duplicates in __all__"
    for name in exported:
        assert hasattr(module, name), f"{package}.__all__ names {name!r}, which is missing"
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, type(importlib))
    }
    public -= {"annotations"}
    assert public == exported, f"public names not in __all__: {sorted(public - exported)}"


def test_core_never_imports_an_event_loop_library() -> None:
    offenders = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            for root in roots & FORBIDDEN:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {root}")
    assert not offenders, "\n".join(offenders)


def test_importing_every_core_module_loads_no_event_loop_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pkgutil, importlib, core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
        "    if not m.name.endswith('pytest_plugin'):\n"
        "        importlib.import_module(m.name)\n"
        f"bad = sorted(set(sys.modules) & {FORBIDDEN!r})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_py_typed_markers_exist() -> None:
    assert (ROOT / "core" / "py.typed").exists()
    assert (ROOT / "bridge" / "py.typed").exists()


def test_rows_are_encoded_in_one_place() -> None:
    # `bridge.rows` is the one encoding; the older import paths hand out the same objects.
    import bridge.rows
    import bridge.storage
    import examples.service.encoding

    for name in bridge.rows.__all__:
        shared = getattr(bridge.rows, name)
        assert getattr(bridge.storage, name) is shared, name
        assert getattr(examples.service.encoding, name) is shared, name
