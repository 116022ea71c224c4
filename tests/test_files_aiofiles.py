"""`bridge.open` against aiofiles: the same call sequences on the same initial files give the
same return values, the same exception types and the same final contents, on asyncio and
uvloop, in binary, unbuffered and text mode (UTF-8, UTF-16, Shift JIS; every newline mode)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiofiles
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bridge
from tests.conftest import new_asyncio_loop, new_uvloop_loop
from tests.test_files_support import (
    BINARY_MODES,
    NEWLINES,
    TEXT_MODES,
    Plan,
    alphabet_for,
    binary_calls,
    contents,
    initial_content,
    play_async,
    text_calls,
)

EXAMPLES = settings(max_examples=70, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def runner(request: pytest.FixtureRequest) -> Iterator[asyncio.Runner]:
    """One loop per module and loop kind; hypothesis examples run on it one after another."""
    factory = new_asyncio_loop if request.param == "asyncio" else new_uvloop_loop
    with asyncio.Runner(loop_factory=factory) as r:
        yield r


def prepare(path: Path, content: bytes | None) -> None:
    if content is None:
        if path.exists():
            path.unlink()
    else:
        path.write_bytes(content)


async def compare(
    d: Path,
    mode: str,
    initial: bytes,
    calls: list[Any],
    text: bool,
    chunk: int | None = None,
    **kw: Any,
) -> None:
    ref, ours = d / "ref", d / "ours"
    for p in (ref, ours):
        prepare(p, initial_content(mode, initial))
    theirs = await aiofiles.open(ref, mode, **kw)
    mine = await bridge.open(ours, mode, **kw)
    if chunk is not None:
        theirs._file._CHUNK_SIZE = chunk
        mine._f.chunk_size = chunk
    try:
        expected = await play_async(theirs, calls, Plan(text))
        got = await play_async(mine, calls, Plan(text))
    finally:
        await theirs.close()
        await mine.close()
    assert got == expected
    assert ours.read_bytes() == ref.read_bytes()


@EXAMPLES
@given(
    mode=st.sampled_from(BINARY_MODES),
    buffering=st.sampled_from([-1, 16]),
    content=contents(),
    calls=binary_calls(),
)
def test_binary_files_match_aiofiles(
    runner: asyncio.Runner,
    tmp_path_factory: pytest.TempPathFactory,
    mode: str,
    buffering: int,
    content: bytes,
    calls: list[Any],
) -> None:
    if "r" not in mode and "+" not in mode:
        calls = [c for c in calls if c[0] != "peek"]  # aiofiles' writers have no peek
    d = tmp_path_factory.mktemp("bin")
    runner.run(compare(d, mode, content, calls, False, buffering=buffering))


@EXAMPLES
@given(mode=st.sampled_from(BINARY_MODES), content=contents(), calls=binary_calls())
def test_unbuffered_files_match_aiofiles(
    runner: asyncio.Runner,
    tmp_path_factory: pytest.TempPathFactory,
    mode: str,
    content: bytes,
    calls: list[Any],
) -> None:
    calls = [c for c in calls if c[0] not in ("peek", "read1")]  # FileIO has neither
    d = tmp_path_factory.mktemp("raw")
    runner.run(compare(d, mode, content, calls, False, buffering=0))


@st.composite
def text_case(draw: st.DrawFn) -> dict[str, Any]:
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "shift_jis"]))
    alphabet = alphabet_for(encoding)
    initial = draw(st.lists(st.sampled_from(alphabet), max_size=60).map("".join))
    return {
        "mode": draw(st.sampled_from(TEXT_MODES)),
        "encoding": encoding,
        "newline": draw(st.sampled_from(NEWLINES)),
        "chunk": draw(st.sampled_from([8192, 5])),
        "initial": initial.encode(encoding),
        "calls": draw(text_calls(alphabet)),
    }


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=text_case())
def test_text_files_match_aiofiles(
    runner: asyncio.Runner, tmp_path_factory: pytest.TempPathFactory, case: dict[str, Any]
) -> None:
    d = tmp_path_factory.mktemp("text")
    runner.run(
        compare(
            d,
            case["mode"],
            case["initial"],
            case["calls"],
            True,
            case["chunk"],
            encoding=case["encoding"],
            newline=case["newline"],
        )
    )


def test_line_iteration_matches_aiofiles(runner: asyncio.Runner, tmp_path: Path) -> None:
    content = "".join(f"line {i}\r\n" if i % 3 else f"é{i}\n" for i in range(2000)) + "end"
    path = tmp_path / "lines.txt"
    path.write_text(content, encoding="utf-8", newline="")

    async def lines(opener: Any, **kw: Any) -> list[Any]:
        async with opener(path, **kw) as f:
            return [line async for line in f]

    async def main() -> None:
        for kw in ({}, {"newline": ""}, {"mode": "rb"}):
            assert await lines(bridge.open, **kw) == await lines(aiofiles.open, **kw)

    runner.run(main())


SCENARIOS: list[tuple[str, dict[str, Any], list[Any]]] = [
    (
        "rb+",
        {"buffering": 16},
        [
            ("read", 3),
            ("read1", 40),
            ("read1", -1),
            ("readinto", 5),
            ("peek",),
            ("readline", 4),
            ("readline", -1),
            ("readlines", 10),
            ("tell",),
            ("seek", 2, 0),
            ("write", b"XY"),
            ("writelines", [b"1", b"22"]),
            ("flush",),
            ("seek", -3, 2),
            ("read", -1),
            ("truncate", 7),
            ("truncate", None),
            ("seek", 0, 1),
            ("readlines", -1),
        ],
    ),
    (
        "ab+",
        {"buffering": 0},
        [
            ("read", 4),
            ("readall",),
            ("readinto", 3),
            ("readline", -1),
            ("write", b"tail\n"),
            ("tell",),
            ("seek", 0, 0),
            ("readlines", -1),
            ("truncate", 3),
            ("flush",),
        ],
    ),
    (
        "r+",
        {"encoding": "utf-16", "newline": None},
        [
            ("read", 3),
            ("readline", -1),
            ("readline", 2),
            ("tell",),
            ("readlines", 5),
            ("seek_cookie", 1),
            ("read", -1),
            ("write", "end\n"),
            ("writelines", ["a", "b\n"]),
            ("flush",),
            ("seek_end",),
            ("truncate", None),
            ("tell",),
        ],
    ),
]


@pytest.mark.parametrize(("mode", "kw", "calls"), SCENARIOS)
def test_every_method_matches_aiofiles(
    runner: asyncio.Runner, tmp_path: Path, mode: str, kw: dict[str, Any], calls: list[Any]
) -> None:
    """One fixed sequence per kind of file calls every method with arguments where they
    differ from each other (read1 against read, a limit against none...)."""
    text = "b" not in mode
    initial = "first line\nsecond\r\nthird\rfourth line is longer\n" * 3
    data = initial.encode(kw["encoding"]) if text else initial.encode()
    runner.run(compare(tmp_path, mode, data, calls, text, **kw))
