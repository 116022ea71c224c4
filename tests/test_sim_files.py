"""core.files under the simulator: the open flags the file modes need (`EXCLUSIVE`,
`APPEND`) behave on `SimulatorIO` as on `UnixIO`, and sequences of buffered, text and raw
file calls give the same results and files under every schedule `explore` tries, and the
same results as CPython's `open()`."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core import Completion, CompletionError, Done, ErrorKind, block
from core.driver import Operation
from core.files import OpenFile, parse_open_arguments
from core.io import OpenFlags, UnixIO
from core.ops import WriteBuffers
from core.sim import Chain, FaultConfig, ScheduleMismatchError, SimulatorIO, explore

# -- the open flags ----------------------------------------------------------------------


def test_exclusive_refuses_an_existing_file_and_creates_a_missing_one() -> None:
    io = SimulatorIO(seed=1)
    io.create_file("there", b"old")
    with pytest.raises(CompletionError) as info:
        io.open_file("there", OpenFlags.CREATE | OpenFlags.EXCLUSIVE)
    assert info.value.kind is ErrorKind.IO and info.value.errno == errno.EEXIST
    assert info.value.path == "there"
    assert io.file_contents("there") == b"old"
    f = io.open_file("new", OpenFlags.CREATE | OpenFlags.EXCLUSIVE)
    assert io.files() == ["new", "there"] and f.size() == 0
    with pytest.raises(CompletionError) as missing:
        io.open_file("absent", OpenFlags.EXCLUSIVE)  # EXCLUSIVE alone creates nothing
    assert missing.value.errno == errno.ENOENT


def test_append_writes_land_at_the_end_whatever_the_offset() -> None:
    io = SimulatorIO(seed=2, inline=1.0)
    io.create_file("log", b"0123")
    f = io.open_file("log", OpenFlags.APPEND)
    assert block(WriteBuffers(f, 0, [b"ab"]), io) == 2
    assert block(WriteBuffers(f, 1, [b"c", b"de"]), io) == 3
    assert io.file_contents("log") == b"0123abcde"
    plain = io.open_file("log")  # a handle without APPEND writes at its offset
    block(WriteBuffers(plain, 0, [b"Z"]), io)
    assert io.file_contents("log") == b"Z123abcde"


def test_deferred_appends_land_in_the_order_they_execute() -> None:
    io = SimulatorIO(seed=5, inline=0.0, min_latency_us=1, max_latency_us=1_000)
    io.create_file("log", b"")
    f = io.open_file("log", OpenFlags.APPEND)
    writes = [bytes([65 + i]) * 3 for i in range(6)]
    completions = [f.pwrite(0, w, Completion.new_write()) for w in writes]
    io.run_until_idle()
    assert all(c.result() == 3 for c in completions)
    data = io.file_contents("log")
    assert sorted(data[i : i + 3] for i in range(0, 18, 3)) == sorted(writes)
    order = [e.offset for e in io.trace if e.event == "complete"]
    assert order == [0, 3, 6, 9, 12, 15]  # each landed at the end as it was then
    assert data != b"".join(writes)  # latencies reordered them (seed 5)


def test_a_failed_append_lands_nothing() -> None:
    io = SimulatorIO(seed=3, faults=FaultConfig(write_error=1.0), inline=1.0)
    io.create_file("log", b"keep")
    f = io.open_file("log", OpenFlags.APPEND)
    with pytest.raises(CompletionError):
        block(WriteBuffers(f, 0, [b"lost"]), io)
    assert io.file_contents("log") == b"keep"


def test_append_and_exclusive_match_unix_io(tmp_path: Path) -> None:
    sim = SimulatorIO(seed=4, inline=1.0)
    unix = UnixIO()
    try:
        path = tmp_path / "log"
        path.write_bytes(b"start")
        sim.create_file("log", b"start")
        for io, name in ((sim, "log"), (unix, str(path))):
            f = io.open_file(name, OpenFlags.APPEND)
            block(WriteBuffers(f, 0, [b"-one"]), io)
            block(WriteBuffers(f, 2, [b"-two"]), io)
            f.close()
            with pytest.raises(CompletionError) as info:
                io.open_file(name, OpenFlags.CREATE | OpenFlags.EXCLUSIVE)
            assert info.value.errno == errno.EEXIST
        assert sim.file_contents("log") == path.read_bytes() == b"start-one-two"
    finally:
        unix.close()
        sim.close()


# -- file call sequences under explore -----------------------------------------------------

Call = tuple[str, tuple[Any, ...]]


def _chain(path: str, mode: str, calls: list[Call], **kwargs: Any) -> Callable[..., Any]:
    """make_op for explore: open `path`, then each call on the file object, in turn."""

    def make_op(io: SimulatorIO) -> Operation[list[Any]]:
        options = parse_open_arguments(path, mode, **kwargs)
        builders: list[Callable[[list[Any]], Operation[Any]]] = [lambda _: OpenFile(io, options)]
        for name, args in calls:
            builders.append(_call(name, args))
        return Chain(builders, wrap=io.with_yields)

    return make_op


def _call(name: str, args: tuple[Any, ...]) -> Callable[[list[Any]], Operation[Any]]:
    def build(values: list[Any]) -> Operation[Any]:
        result = getattr(values[0], name)(*args)
        if hasattr(result, "step"):
            op: Operation[Any] = result
            return op
        return lambda: Done(result)  # a synchronous method (tell)

    return build


def _same_after_open(a: list[Any], b: list[Any]) -> bool:
    return a[1:] == b[1:]  # the file objects themselves differ from run to run


def _cpython(tmp_path: Path, initial: bytes | None, mode: str, calls: list[Call], **kw: Any):
    path = tmp_path / "f"
    if initial is not None:
        path.write_bytes(initial)
    with open(path, mode, **kw) as f:
        values = [getattr(f, name)(*args) for name, args in calls if name != "close"]
    return values, path.read_bytes()


TEXT = "alpha\nbeta\r\ngamma\rdelta é€\n" * 40

SEQUENCES: dict[str, tuple[bytes | None, str, list[Call], dict[str, Any]]] = {
    "binary read-write, small buffer": (
        bytes(range(256)) * 8,
        "rb+",
        [
            ("read", (10,)),
            ("peek", (1,)),
            ("seek", (100,)),
            ("write", (b"X" * 40,)),
            ("read", (30,)),
            ("seek", (-5, 2)),
            ("write", (b"tail-bytes",)),
            ("seek", (0,)),
            ("read1", (64,)),
            ("readline", ()),
            ("tell", ()),
            ("truncate", (1500,)),
            ("flush", ()),
            ("close", ()),
        ],
        {"buffering": 64},
    ),
    "text write then read back": (
        None,
        "w+",
        [
            ("write", (TEXT,)),
            ("seek", (0,)),
            ("readline", ()),
            ("readline", ()),
            ("read", (17,)),
            ("readlines", ()),
            ("write", ("more\n",)),
            ("seek", (0,)),
            ("read", ()),
            ("close", ()),
        ],
        {"encoding": "utf-8", "newline": None, "buffering": 128},
    ),
    "append, binary": (
        b"header\n",
        "ab",
        [
            ("write", (b"line one\n",)),
            ("flush", ()),
            ("write", (b"x" * 300,)),
            ("tell", ()),
            ("write", (b"line three\n",)),
            ("close", ()),
        ],
        {"buffering": 128},
    ),
    "append, text, read back": (
        b"first\n",
        "a+",
        [
            ("write", ("second\n",)),
            ("seek", (0,)),
            ("read", ()),
            ("write", ("third\n",)),
            ("seek", (0,)),
            ("readlines", ()),
            ("close", ()),
        ],
        {"encoding": "utf-8"},
    ),
    "exclusive create": (
        None,
        "xb",
        [("write", (b"made here",)), ("close", ())],
        {},
    ),
    "unbuffered": (
        b"one\ntwo\nthree\n" * 20,
        "rb+",
        [
            ("readline", ()),
            ("read", (7,)),
            ("seek", (5, 1)),
            ("write", (b"ZZ",)),
            ("readall", ()),
            ("seek", (0,)),
            ("readlines", ()),
            ("close", ()),
        ],
        {"buffering": 0},
    ),
}


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_file_calls_pass_explore_and_match_cpython(name: str, tmp_path: Path) -> None:
    initial, mode, calls, kwargs = SEQUENCES[name]

    def setup(io: SimulatorIO) -> None:
        if initial is not None:
            io.create_file("f", initial)

    report = explore(
        _chain("f", mode, calls, **kwargs), setup=setup, seeds=12, equal=_same_after_open
    )
    outcome = report.outcome
    assert outcome.error is None, outcome.describe()
    assert report.schedules > 10 and report.yield_points >= len(calls)
    values, data = _cpython(tmp_path, initial, mode, calls, **kwargs)
    assert outcome.value is not None
    assert outcome.value[1 : 1 + len(values)] == values
    inline = SimulatorIO(seed=0, inline=1.0)
    setup(inline)
    block(_chain("f", mode, calls, **kwargs)(inline), inline)
    assert inline.file_contents("f") == data


def test_explore_catches_a_file_sequence_that_depends_on_the_schedule() -> None:
    # Planted: a link that returns before its write finished. Inline, the next link sees
    # the write's size; with the write deferred it sees 0, and the explorer must say so.
    def make_op(io: SimulatorIO) -> Operation[list[Any]]:
        f = io.open_file("f", OpenFlags.CREATE)

        def write_no_wait(_: list[Any]) -> Operation[int]:
            f.pwrite(0, b"abc", Completion.new_write())
            return lambda: Done(0)  # BUG: does not wait for the write

        def size(_: list[Any]) -> Operation[int]:
            return lambda: Done(f.size())

        return Chain([write_no_wait, size], wrap=io.with_yields)

    with pytest.raises(ScheduleMismatchError):
        explore(make_op, seeds=2)
