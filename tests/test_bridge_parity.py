"""The same operations give the same results under `block`, under `drive` on asyncio and
uvloop, and under trio, over every backend that fits each driver."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from bridge import AsyncFileIO, drive
from core import CompletionError, block
from core.io import IOBackend, MemoryIO, MemoryYieldIO, OpenFlags, UnixIO
from core.ops import CopyFile, ReadRange, ReadWholeFile, WriteBuffers

# Every test here runs on both engines of AsyncFileIO (see `file_engine` in conftest).
pytestmark = pytest.mark.usefixtures("file_engine")

A = random.Random(1).randbytes(70_000)
B = random.Random(2).randbytes(12_345)


@pytest.fixture
def anyio_backend() -> str:
    return "trio"


def make_ops(io: IOBackend, root: Path) -> list[Any]:
    f = io.open_file(str(root / "a.bin"), OpenFlags.CREATE)
    g = io.open_file(str(root / "b.bin"), OpenFlags.CREATE)
    size = len(A) + len(B)
    return [
        WriteBuffers(f, 0, [A, B]),
        ReadRange(f, 100, 5000),
        ReadWholeFile(f, chunk_size=3000),
        CopyFile(f, g, chunk_size=4096, batch=3),
        ReadWholeFile(g, chunk_size=65536),
        ReadRange(f, size - 10, 100),
        ReadRange(f, size - 10, 100, exact=True),
        WriteBuffers(g, 5, [b"patch"], sync=False),
        ReadRange(g, 0, 16),
    ]


def outcome_of(run: Any) -> Any:
    try:
        return ("ok", run())
    except CompletionError as exc:
        return ("error", exc.kind, exc.expected, exc.actual)


async def async_outcome(op: Any, io: IOBackend) -> Any:
    try:
        return ("ok", await drive(op, io))
    except CompletionError as exc:
        return ("error", exc.kind, exc.expected, exc.actual)


def expected(tmp_path: Path) -> list[Any]:
    root = tmp_path / "reference"
    root.mkdir()
    with UnixIO() as io:
        return [outcome_of(lambda op=op: block(op, io)) for op in make_ops(io, root)]


def test_block_over_memory_io_matches_unix_io(tmp_path: Path) -> None:
    with MemoryIO() as io:
        got = [outcome_of(lambda op=op: block(op, io)) for op in make_ops(io, tmp_path)]
    assert got == expected(tmp_path)


async def run_async(io: IOBackend, root: Path) -> list[Any]:
    return [await async_outcome(op, io) for op in make_ops(io, root)]


@pytest.mark.asyncio
@pytest.mark.parametrize("backend", ["async", "async-pool", "memory-yield"])
async def test_drive_on_asyncio_and_uvloop(tmp_path: Path, backend: str) -> None:
    want = expected(tmp_path)
    assert want[-3][0] == "error" and want[0] == ("ok", len(A) + len(B))
    io: Any = {
        "async": AsyncFileIO,
        "async-pool": lambda: AsyncFileIO(nowait=False),
        "memory-yield": MemoryYieldIO,
    }[backend]()
    root = tmp_path / "run"
    root.mkdir()
    assert await run_async(io, root) == want
    if isinstance(io, AsyncFileIO):
        await io.aclose()
    else:
        io.close()


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["async", "async-pool", "memory-yield"])
async def test_drive_under_trio(tmp_path: Path, backend: str) -> None:
    want = expected(tmp_path)
    io: Any = {
        "async": AsyncFileIO,
        "async-pool": lambda: AsyncFileIO(nowait=False),
        "memory-yield": MemoryYieldIO,
    }[backend]()
    root = tmp_path / "run"
    root.mkdir()
    assert await run_async(io, root) == want
    if isinstance(io, AsyncFileIO):
        await io.aclose()
    else:
        io.close()
