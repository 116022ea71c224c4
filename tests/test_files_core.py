"""The core's file objects (`core.files`) under `core.block`: call for call the same as
Python's own file objects, the same on every backend, and explicit about failures."""

from __future__ import annotations

import builtins
import errno
import io as io_module
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import IO, Completion, CompletionError, Done, ErrorKind, StateMachineError, block
from core.files import (
    BufferedFile,
    ClosedFileError,
    FileCall,
    FileOSError,
    OpenFile,
    RawFile,
    Ready,
    TextFile,
    UnsupportedFileOperation,
    default_buffer_size,
    parse_open_arguments,
    to_os_error,
)
from core.files.text_cookie import pack_cookie as _pack_cookie
from core.files.text_cookie import unpack_cookie as _unpack_cookie
from core.io import (
    Buffer,
    File,
    IOBackend,
    MemoryIO,
    MemoryYieldIO,
    OpenFlags,
    UnixIO,
    UringIO,
)
from tests.test_files_support import (
    BINARY_MODES,
    NEWLINES,
    TEXT_MODES,
    Plan,
    alphabet_for,
    binary_calls,
    canonical,
    contents,
    initial_content,
    play_sync,
    text_calls,
)

FAST = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))


def run(io: IOBackend) -> Any:
    """An `invoke` for `play_sync`: run a core call with `block` (plain values pass)."""

    def invoke(method: Any, *args: Any) -> Any:
        result = method(*args)
        return block(result, io) if isinstance(result, FileCall) else result

    return invoke


def open_core(io: IOBackend, path: str, mode: str, **kwargs: Any) -> Any:
    return block(OpenFile(io, parse_open_arguments(path, mode, **kwargs)), io)


def prepare(path: Path, content: bytes | None) -> None:
    if content is None:
        if path.exists():
            path.unlink()
    else:
        path.write_bytes(content)


def play_reference(
    path: Path, mode: str, calls: list[Any], text: bool, chunk: int | None = None, **kw: Any
) -> tuple[list[Any], bytes]:
    f = builtins.open(path, mode, **kw)  # noqa: SIM115 -- closed in the finally below
    if chunk is not None:
        f._CHUNK_SIZE = chunk
    try:
        outcomes = play_sync(f, calls, Plan(text), lambda m, *a: m(*a))
    finally:
        f.close()
    return outcomes, path.read_bytes()


def play_core(
    io: IOBackend,
    path: str,
    mode: str,
    calls: list[Any],
    text: bool,
    chunk: int | None = None,
    **kw: Any,
) -> list[Any]:
    f = open_core(io, path, mode, **kw)
    if chunk is not None:
        f.chunk_size = chunk
    try:
        return play_sync(f, calls, Plan(text), run(io))
    finally:
        block(f.close(), io)


# -- differential: call for call what Python's file objects do -----------------------------


@FAST
@given(
    mode=st.sampled_from(BINARY_MODES),
    buffering=st.sampled_from([-1, 7, 16]),
    content=contents(),
    calls=binary_calls(),
)
def test_binary_files_match_python(
    tmp_path_factory: pytest.TempPathFactory,
    mode: str,
    buffering: int,
    content: bytes,
    calls: list[Any],
) -> None:
    d = tmp_path_factory.mktemp("bin")
    ref, ours = d / "ref", d / "ours"
    for p in (ref, ours):
        prepare(p, initial_content(mode, content))
    if "r" not in mode and "+" not in mode:
        calls = [c for c in calls if c[0] != "peek"]  # no peek on a writer (AttributeError)
    expected, expected_bytes = play_reference(ref, mode, calls, False, buffering=buffering)
    with UnixIO() as io:
        got = play_core(io, str(ours), mode, calls, False, buffering=buffering)
    assert got == expected
    assert ours.read_bytes() == expected_bytes


@FAST
@given(
    mode=st.sampled_from(BINARY_MODES),
    content=contents(),
    calls=binary_calls(),
)
def test_unbuffered_files_match_python(
    tmp_path_factory: pytest.TempPathFactory, mode: str, content: bytes, calls: list[Any]
) -> None:
    d = tmp_path_factory.mktemp("raw")
    ref, ours = d / "ref", d / "ours"
    for p in (ref, ours):
        prepare(p, initial_content(mode, content))
    calls = [c for c in calls if c[0] not in ("peek", "read1")]  # FileIO has neither
    expected, expected_bytes = play_reference(ref, mode, calls, False, buffering=0)
    with UnixIO() as io:
        got = play_core(io, str(ours), mode, calls, False, buffering=0)
    assert got == expected
    assert ours.read_bytes() == expected_bytes


@st.composite
def text_case(draw: st.DrawFn) -> tuple[str, str, str | None, int, str, list[Any]]:
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "shift_jis"]))
    alphabet = alphabet_for(encoding)
    return (
        draw(st.sampled_from(TEXT_MODES)),
        encoding,
        draw(st.sampled_from(NEWLINES)),
        draw(st.sampled_from([8192, 3])),
        draw(st.lists(st.sampled_from(alphabet), max_size=80).map("".join)),
        draw(text_calls(alphabet)),
    )


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=text_case())
def test_text_files_match_python(
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[str, str, str | None, int, str, list[Any]],
) -> None:
    mode, encoding, newline, chunk, initial, calls = case
    d = tmp_path_factory.mktemp("text")
    ref, ours = d / "ref", d / "ours"
    for p in (ref, ours):
        prepare(p, initial_content(mode, initial.encode(encoding)))
    kw = {"encoding": encoding, "newline": newline}
    expected, expected_bytes = play_reference(ref, mode, calls, True, chunk, **kw)
    with UnixIO() as io:
        got = play_core(io, str(ours), mode, calls, True, chunk, **kw)
    assert got == expected
    assert ours.read_bytes() == expected_bytes


# -- the same calls on every backend -------------------------------------------------------


URING_HERE = UringIO.available()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    mode=st.sampled_from(BINARY_MODES),
    content=contents(),
    calls=binary_calls(),
    text=st.booleans(),
)
def test_memory_backends_give_what_unix_gives(
    tmp_path_factory: pytest.TempPathFactory,
    mode: str,
    content: bytes,
    calls: list[Any],
    text: bool,
) -> None:
    path = tmp_path_factory.mktemp("parity") / "f"
    kw: dict[str, Any] = {"buffering": 16}
    if text:
        mode = mode.replace("b", "")
        kw = {"encoding": "utf-8", "newline": None}
        calls = [("read", 5), ("write", "a\r\nb"), ("readline", -1), ("tell",), ("read", -1)]
    outcomes = []
    contents = []
    makers: list[type[IOBackend]] = [UnixIO, MemoryIO, MemoryYieldIO]
    if URING_HERE:
        makers.append(UringIO)
    for make in makers:
        io = make()
        initial = initial_content(mode, content)
        if isinstance(io, UnixIO | UringIO):
            prepare(path, initial)
        elif initial is not None:
            seed = io.open_file(str(path), OpenFlags.CREATE)
            seed.pwrite(0, initial, Completion.new_write())
            io.step()
            seed.close()
        outcomes.append(play_core(io, str(path), mode, calls, text, **kw))
        if isinstance(io, MemoryIO):
            contents.append(io.file_contents(str(path)))
        else:
            contents.append(path.read_bytes())
        io.close()
    assert all(outcome == outcomes[0] for outcome in outcomes[1:])
    assert all(content == contents[0] for content in contents[1:])


# -- opening -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"mode": 1}, TypeError),
        ({"mode": "rw"}, ValueError),
        ({"mode": "rr"}, ValueError),
        ({"mode": "z"}, ValueError),
        ({"mode": "rbt"}, ValueError),
        ({"mode": "b"}, ValueError),
        ({"mode": ""}, ValueError),
        ({"buffering": 1.5}, TypeError),
        ({"encoding": 1}, TypeError),
        ({"errors": 1}, TypeError),
        ({"newline": 1}, TypeError),
        ({"newline": "x"}, ValueError),
        ({"mode": "rb", "encoding": "utf-8"}, ValueError),
        ({"mode": "rb", "errors": "strict"}, ValueError),
        ({"mode": "rb", "newline": ""}, ValueError),
        ({"buffering": 0}, ValueError),
        ({"closefd": False}, ValueError),
        ({"encoding": "no-such-codec"}, LookupError),
        ({"encoding": "rot13"}, LookupError),
    ],
)
def test_open_arguments_fail_as_python_does(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    with pytest.raises(error) as python_error:
        builtins.open(path, **kwargs)  # noqa: SIM115 -- it raises
    with pytest.raises(error) as our_error:
        parse_open_arguments(str(path), **kwargs)
    assert str(our_error.value) == str(python_error.value)


def test_open_refuses_what_the_core_cannot_open() -> None:
    with pytest.raises(UnsupportedFileOperation, match="file descriptor"):
        parse_open_arguments(3, "rb")
    with pytest.raises(UnsupportedFileOperation, match="opener"):
        parse_open_arguments("f", "rb", opener=os.open)
    with pytest.raises(TypeError, match="not float"):
        parse_open_arguments(1.5, "rb")


def test_binary_line_buffering_warns_as_python_does() -> None:
    with pytest.warns(RuntimeWarning, match="line buffering"):
        options = parse_open_arguments("f", "rb", buffering=1)
    assert options.buffering == -1


def test_names_and_modes_are_pythons(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    with UnixIO() as io:
        for mode in ["r", "rb", "r+", "r+b", "w", "wb", "w+", "w+b", "a", "ab+", "rt", "br+"]:
            with builtins.open(path, mode) as ref:
                expected = (ref.name, ref.mode)
            ours = open_core(io, str(path), mode)
            assert (ours.name, ours.mode) == expected
            block(ours.close(), io)
        ours = open_core(io, path.as_posix().encode(), "rb")
        assert ours.name == path.as_posix().encode()
        block(ours.close(), io)


def test_open_errors_become_pythons_oserrors(tmp_path: Path) -> None:
    existing = tmp_path / "f"
    existing.write_bytes(b"x")
    with UnixIO() as io:
        for path, mode, kind in [
            (tmp_path / "missing" / "f", "r", FileNotFoundError),
            (tmp_path, "r", IsADirectoryError),
            (tmp_path, "w", IsADirectoryError),
            (existing, "x", FileExistsError),
        ]:
            with pytest.raises(CompletionError) as caught:
                open_core(io, str(path), mode)
            translated = to_os_error(caught.value, str(path))
            assert type(translated) is kind
            assert translated.filename == str(path)
            assert translated.__cause__ is caught.value
            with pytest.raises(kind) as python_error:
                builtins.open(path, mode)  # noqa: SIM115 -- it raises
            assert str(translated) == str(python_error.value)
        assert existing.read_bytes() == b"x"  # "x" left it alone


def test_to_os_error_without_errno() -> None:
    short = to_os_error(CompletionError(ErrorKind.SHORT_WRITE, "short"))
    assert type(short) is OSError and "short write" in str(short)
    closed = to_os_error(CompletionError(ErrorKind.CLOSED, "closed"))
    assert closed.errno == errno.EBADF


def test_exclusive_and_append_on_memory() -> None:
    io = MemoryIO()
    f = open_core(io, "f", "xb")
    block(f.write(b"abc"), io)
    block(f.close(), io)
    with pytest.raises(CompletionError) as caught:
        open_core(io, "f", "xb")
    assert caught.value.errno == errno.EEXIST
    f = open_core(io, "f", "ab")
    assert f.tell() == 3
    block(f.write(b"de"), io)
    block(f.close(), io)
    assert io.file_contents("f") == b"abcde"


def test_w_truncates_with_one_io_only_when_not_empty() -> None:
    io = Recording(MemoryIO())
    f = open_core(io, "f", "wb")
    block(f.write(b"data"), io)
    block(f.close(), io)
    assert [c for c in io.calls if c[0] == "truncate"] == []
    f = open_core(io, "f", "w")
    block(f.close(), io)
    assert [c for c in io.calls if c[0] == "truncate"] == [("truncate", 0)]
    assert io.inner.file_contents("f") == b""


def test_default_buffer_size_is_the_block_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    with UnixIO() as io:
        f = io.open_file(str(path))
        blksize = os.fstat(f.fd).st_blksize
        assert default_buffer_size(f) == (blksize if blksize > 1 else io_module.DEFAULT_BUFFER_SIZE)
    assert default_buffer_size(MemoryIO().open_file("f", OpenFlags.CREATE)) == (
        io_module.DEFAULT_BUFFER_SIZE
    )


def test_open_is_an_operation_that_closes_on_failure() -> None:
    io = MemoryYieldIO()
    seed = io.open_file("f", OpenFlags.CREATE)
    seed.pwrite(0, b"old", Completion.new_write())
    io.step()
    op = OpenFile(io, parse_open_arguments("f", "wb"))
    first = op.step()
    assert isinstance(first, IO)
    assert op.step() == first  # stepped again while the truncate is pending: same completion
    op.abort(RuntimeError("cancelled"))
    assert len(io._open_files) == 1  # only the seed: the opened file was closed
    with pytest.raises(StateMachineError):
        op.step()


def test_a_file_call_that_raised_says_it_failed_when_stepped_again() -> None:
    io = MemoryIO()
    f = open_core(io, "f", "wb+")
    block(f.close(), io)
    call = f.readline()
    with pytest.raises(ValueError, match="closed file"):
        call.step()
    with pytest.raises(StateMachineError, match="stepped after it failed") as info:
        call.step()
    assert isinstance(info.value.__cause__, ValueError)
    other = open_core(io, "g", "wb+")
    done = other.readline()
    assert block(done, io) == b""
    with pytest.raises(StateMachineError, match="stepped after it finished"):
        done.step()


# -- closed files, modes, arguments ------------------------------------------------------


def test_closed_binary_file_raises_pythons_errors() -> None:
    io = MemoryIO()
    f = open_core(io, "f", "wb+")
    block(f.close(), io)
    block(f.close(), io)  # twice is fine
    for call in (f.read, f.read1, f.readline, f.peek, f.flush, f.readlines, f.truncate):
        with pytest.raises(ClosedFileError):
            block(call(), io)
    with pytest.raises(ValueError, match="closed file"):
        f.tell()
    with pytest.raises(ValueError, match="write to closed file"):
        block(f.write(b"x"), io)
    with pytest.raises(ValueError, match="seek of closed file"):
        block(f.seek(0), io)
    with pytest.raises(ValueError):
        block(f.readinto(bytearray(1)), io)
    with pytest.raises(ValueError):
        block(f.writelines([b"x"]), io)
    with pytest.raises(ValueError):
        block(f.fsync(), io)


def test_closed_text_and_raw_files_raise_value_error() -> None:
    io = MemoryIO()
    t = open_core(io, "t", "w+")
    block(t.close(), io)
    for call in (t.read, t.readline, t.tell, t.flush, t.readlines, t.truncate, t.fsync):
        with pytest.raises(ValueError, match=r"I/O operation on closed file\."):
            block(call(), io)
    with pytest.raises(ValueError):
        block(t.write("x"), io)
    r = open_core(io, "r", "wb+", buffering=0)
    block(r.close(), io)
    with pytest.raises(ValueError):
        r.tell()
    with pytest.raises(ValueError):
        r.seek(0)
    with pytest.raises(ValueError):
        r.flush()
    for call in (r.read, r.readline, r.readlines, r.truncate, r.fsync):
        with pytest.raises(ValueError):
            block(call(), io)


def test_modes_refuse_what_they_do_not_allow() -> None:
    io = MemoryIO()
    block(open_core(io, "f", "wb").close(), io)
    reader = open_core(io, "f", "rb")
    with pytest.raises(io_module.UnsupportedOperation):
        block(reader.write(b"x"), io)
    with pytest.raises(io_module.UnsupportedOperation):
        block(reader.truncate(0), io)
    writer = open_core(io, "f", "wb")
    for call in (writer.read, writer.read1, writer.readline, writer.peek):
        with pytest.raises(io_module.UnsupportedOperation):
            block(call(), io)
    assert block(writer.readline(0), io) == b""  # as IOBase.readline(0)
    text = open_core(io, "f", "w")
    with pytest.raises(io_module.UnsupportedOperation, match="not readable"):
        block(text.read(), io)
    text_reader = open_core(io, "f", "r")
    with pytest.raises(io_module.UnsupportedOperation, match="not writable"):
        block(text_reader.write("x"), io)


def test_bad_arguments() -> None:
    io = MemoryIO()
    f = open_core(io, "f", "wb+")
    with pytest.raises(ValueError, match="non-negative or -1"):
        f.read(-2)
    with pytest.raises(TypeError, match="bytes-like"):
        f.write("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="read-write"):
        f.readinto(b"immutable")
    with pytest.raises(TypeError, match="read-write"):
        f.readinto("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whence value 3"):
        block(f.seek(0, 3), io)
    with pytest.raises(FileOSError) as caught:
        block(f.seek(-1), io)
    assert caught.value.errno == errno.EINVAL
    with pytest.raises(OSError, match="Invalid argument"):
        block(f.truncate(-1), io)
    t = open_core(io, "t", "w+")
    with pytest.raises(TypeError, match="must be str"):
        t.write(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="integer or None"):
        t.read(1.5)  # type: ignore[arg-type]
    with pytest.raises(io_module.UnsupportedOperation, match="cur-relative"):
        block(t.seek(1, 1), io)
    with pytest.raises(ValueError, match="negative seek"):
        block(t.seek(-1), io)
    with pytest.raises(ValueError, match="invalid whence"):
        block(t.seek(0, 5), io)
    with pytest.raises(ValueError, match="buffer size"):
        BufferedFile(f.file, name="f", mode="rb", readable=True, writable=False, buffer_size=0)
    with pytest.raises(ValueError, match="illegal newline"):
        TextFile(f, encoding="utf-8", newline="x")


def test_cookies_pack_as_cpython_does() -> None:
    fields = (12345, 3, 7, 9, True)
    assert _unpack_cookie(_pack_cookie(*fields)) == fields
    assert _pack_cookie(42) == 42
    with pytest.raises(OverflowError):
        _unpack_cookie(2**200)


# -- one pwritev per flush; inline reads -------------------------------------------------


class Recording:
    """A backend wrapper that records every I/O its files submit."""

    def __init__(self, inner: MemoryIO) -> None:
        self.inner = inner
        self.calls: list[tuple[Any, ...]] = []
        self.needs_stepping = inner.needs_stepping

    def open_file(self, path: Any, flags: OpenFlags = OpenFlags.NONE) -> File:
        return RecordingFile(self.inner.open_file(path, flags), self.calls)

    def step(self) -> int:
        return self.inner.step()

    def wait_for_completion(self, c: Completion) -> None:
        self.inner.wait_for_completion(c)


class RecordingFile:
    def __init__(self, inner: File, calls: list[tuple[Any, ...]]) -> None:
        self.inner = inner
        self.calls = calls
        self.path = inner.path

    def pread(self, pos: int, c: Completion) -> Completion:
        self.calls.append(("pread", pos, len(c.buffer or b"")))
        return self.inner.pread(pos, c)

    def pwrite(self, pos: int, buffer: Buffer, c: Completion) -> Completion:
        self.calls.append(("pwrite", pos, bytes(buffer)))
        return self.inner.pwrite(pos, buffer, c)

    def pwritev(self, pos: int, buffers: Sequence[Buffer], c: Completion) -> Completion:
        self.calls.append(("pwritev", pos, [bytes(b) for b in buffers]))
        return self.inner.pwritev(pos, buffers, c)

    def sync(self, c: Completion) -> Completion:
        self.calls.append(("sync",))
        return self.inner.sync(c)

    def truncate(self, length: int, c: Completion) -> Completion:
        self.calls.append(("truncate", length))
        return self.inner.truncate(length, c)

    def size(self) -> int:
        return self.inner.size()

    def close(self) -> None:
        self.inner.close()


def test_small_writes_go_out_as_one_pwritev_per_flush() -> None:
    io = Recording(MemoryIO())
    f = open_core(io, "f", "wb", buffering=64)
    for i in range(10):
        block(f.write(b"%d," % i), io)
    assert io.calls == []  # all buffered
    block(f.flush(), io)
    assert io.calls == [("pwritev", 0, [b"0,1,2,3,4,5,6,7,8,9,"])]
    io.calls.clear()
    block(f.write(b"x" * 10), io)
    block(f.write(b"y" * 100), io)  # larger than the buffer, right after the dirty range
    assert io.calls == [("pwritev", 20, [b"x" * 10, b"y" * 100])]
    block(f.fsync(), io)
    assert io.calls[-1] == ("sync",)
    block(f.close(), io)
    assert io.inner.file_contents("f") == b"0,1,2,3,4,5,6,7,8,9," + b"x" * 10 + b"y" * 100


def test_text_writes_are_handed_over_in_chunks() -> None:
    io = Recording(MemoryIO())
    f = open_core(io, "f", "w", encoding="utf-8")
    for _ in range(100):
        block(f.write("line\n"), io)
    assert io.calls == []
    block(f.close(), io)
    assert [c[0] for c in io.calls] == ["pwritev"]
    assert io.inner.file_contents("f") == b"line\n" * 100


def test_reads_from_the_buffer_need_no_io() -> None:
    io = Recording(MemoryIO())
    seed = io.inner.open_file("f", OpenFlags.CREATE)
    seed.pwrite(0, b"line\n" * 100, Completion.new_write())
    f = open_core(io, "f", "rb", buffering=128)
    lines = [block(f.readline(), io) for _ in range(100)]
    assert lines == [b"line\n"] * 100
    reads = [c for c in io.calls if c[0] == "pread"]
    assert len(reads) == (500 + 127) // 128  # one read per buffer fill, none per line


def test_read1_flushes_pending_writes_first() -> None:
    """A deliberate difference: CPython's read1 would read stale bytes here."""
    io = MemoryIO()
    f = open_core(io, "f", "wb+")
    block(f.write(b"0123456789"), io)
    block(f.seek(0), io)
    block(f.write(b"ab"), io)
    assert block(f.read1(3), io) == b"234"
    assert f.tell() == 5


# -- state machines: re-entrancy, turns, rollback ------------------------------------------


def drive_by_hand(op: Any, io: MemoryYieldIO, limit: int = 10_000) -> Any:
    """Step `op`, stepping it twice at every pending I/O (it must return the same completion),
    and step the backend in between."""
    for _ in range(limit):
        result = op.step()
        if isinstance(result, Done):
            return result.value
        assert op.step() == result
        io.step()
    raise AssertionError("did not finish")


def test_every_call_survives_being_stepped_again_while_pending() -> None:
    io = MemoryYieldIO()
    f = block(OpenFile(io, parse_open_arguments("f", "w+", encoding="utf-16")), io)
    f.chunk_size = 4
    assert drive_by_hand(f.write("héllo\nwörld\n" * 50), io) == 600
    assert drive_by_hand(f.seek(0), io) == 0
    assert drive_by_hand(f.readline(), io) == "héllo\n"
    cookie = drive_by_hand(f.tell(), io)
    assert drive_by_hand(f.read(3), io) == "wör"
    assert drive_by_hand(f.seek(cookie), io) == cookie
    assert drive_by_hand(f.readlines(), io)[:2] == ["wörld\n", "héllo\n"]
    assert drive_by_hand(f.truncate(10), io) == 10
    drive_by_hand(f.close(), io)


def test_calls_on_one_file_take_turns() -> None:
    io = MemoryYieldIO()
    seed = io.open_file("f", OpenFlags.CREATE)
    seed.pwrite(0, b"abcdef", Completion.new_write())
    io.step()
    f = block(OpenFile(io, parse_open_arguments("f", "rb", buffering=2)), io)
    first = f.read(4)
    second = f.read(2)
    pending = first.step()
    assert isinstance(pending, IO)
    waiting = second.step()
    # A completion of its own, finished with the holder's: never the holder's completion.
    assert isinstance(waiting, IO) and waiting.completion is not pending.completion
    assert second.step() == waiting  # stepped again early: the same one
    io.step()
    assert pending.completion.finished() and waiting.completion.finished()
    turn = second.step()  # the holder has not been stepped yet: an explicit yield
    assert isinstance(turn, IO) and turn.completion.is_explicit_yield()
    assert first.step() == Done(b"abcd")
    assert block(second, io) == b"ef"
    with pytest.raises(StateMachineError):
        first.step()


class FailingIO(MemoryIO):
    """Fails the n-th I/O (reads and writes) of its files with EIO."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_on: set[str] = set()

    def _submit(self, c: Completion, action: Any, *args: object) -> Completion:
        kind = "read" if c.buffer is not None else "write"
        if kind in self.fail_on:
            c.error(CompletionError(ErrorKind.IO, "injected", errno=errno.EIO))
            return c
        return super()._submit(c, action, *args)


def test_a_failed_flush_keeps_the_data_for_the_next_one() -> None:
    io = FailingIO()
    f = open_core(io, "f", "wb+", buffering=32)
    block(f.write(b"hello"), io)
    io.fail_on = {"write"}
    with pytest.raises(CompletionError) as caught:
        block(f.flush(), io)
    assert caught.value.errno == errno.EIO
    assert to_os_error(caught.value).errno == errno.EIO
    assert f.tell() == 5
    io.fail_on = set()
    block(f.flush(), io)
    assert io.file_contents("f") == b"hello"


def test_a_failed_read_leaves_the_position_where_it_was() -> None:
    io = FailingIO()
    seed = io.open_file("f", OpenFlags.CREATE)
    seed.pwrite(0, b"0123456789" * 10, Completion.new_write())
    f = open_core(io, "f", "r", encoding="ascii")
    f.chunk_size = 8
    assert block(f.read(3), io) == "012"
    io.fail_on = {"read"}
    with pytest.raises(CompletionError):
        block(f.read(20), io)
    io.fail_on = set()
    assert block(f.read(20), io) == "34567890123456789012"


def test_close_closes_even_when_the_flush_fails() -> None:
    io = FailingIO()
    f = open_core(io, "f", "w")
    block(f.write("data"), io)
    io.fail_on = {"write"}
    with pytest.raises(CompletionError):
        block(f.close(), io)
    assert f.closed


def test_an_abandoned_read_rolls_back_and_moves_to_fresh_memory() -> None:
    io = MemoryYieldIO()
    seed = io.open_file("f", OpenFlags.CREATE)
    seed.pwrite(0, b"line one\nline two\n", Completion.new_write())
    io.step()
    f = block(OpenFile(io, parse_open_arguments("f", "rb+", buffering=8)), io)
    assert block(f.read(3), io) == b"lin"
    old_buffer = f._buf
    op = f.readline()
    assert isinstance(op.step(), IO)
    op.abort(RuntimeError("cancelled"))
    assert f._buf is not old_buffer
    assert f.tell() == 3
    assert block(f.readline(), io) == b"e one\n"


def test_an_abandoned_flush_keeps_the_data_dirty() -> None:
    io = MemoryYieldIO()
    f = block(OpenFile(io, parse_open_arguments("f", "wb", buffering=16)), io)
    block(f.write(b"abc"), io)
    op = f.flush()
    pending = op.step()
    assert isinstance(pending, IO)
    pending.completion.abort()  # what a driver does before calling abort
    op.abort(RuntimeError("cancelled"))
    io.step()  # the abandoned write was aborted before it ran
    assert io.file_contents("f") == b""
    assert f.tell() == 3
    block(f.close(), io)
    assert io.file_contents("f") == b"abc"


def test_an_abandoned_append_closes_the_file() -> None:
    io = MemoryYieldIO()
    f = block(OpenFile(io, parse_open_arguments("f", "ab", buffering=16)), io)
    block(f.write(b"abc"), io)
    op = f.flush()
    assert isinstance(op.step(), IO)
    op.abort(RuntimeError("cancelled"))
    assert f.closed
    with pytest.raises(ValueError):
        block(f.write(b"more"), io)


def test_an_abandoned_close_still_closes() -> None:
    io = MemoryYieldIO()
    f = block(OpenFile(io, parse_open_arguments("f", "w")), io)
    block(f.write("abc"), io)
    op = f.close()
    assert isinstance(op.step(), IO)
    op.abort(RuntimeError("cancelled"))
    assert f.closed


def test_raw_file_calls() -> None:
    io = MemoryYieldIO()
    f = block(OpenFile(io, parse_open_arguments("f", "wb+", buffering=0)), io)
    assert isinstance(f, RawFile)
    assert drive_by_hand(f.write(b"one\ntwo\n"), io) == 8
    assert f.seek(0) == 0
    assert drive_by_hand(f.readline(), io) == b"one\n"
    assert drive_by_hand(f.readall(), io) == b"two\n"
    op = f.read(2)
    assert isinstance(op.step(), IO)
    op.abort(RuntimeError("cancelled"))
    assert f.tell() == 8
    with pytest.raises(FileOSError):
        f.seek(0, 7)
    drive_by_hand(f.fsync(), io)
    drive_by_hand(f.close(), io)


def test_text_attributes(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_bytes(b"a\r\nb\rc\n")
    with UnixIO() as io:
        f = open_core(io, str(path), "r", encoding="utf-8", errors="replace")
        assert isinstance(f, TextFile)
        assert (f.encoding, f.errors, f.newlines, f.line_buffering) == (
            "utf-8",
            "replace",
            None,
            False,
        )
        assert block(f.readlines(), io) == ["a\n", "b\n", "c\n"]
        assert set(f.newlines) == {"\r\n", "\r", "\n"}
        block(f.close(), io)
        lb = open_core(io, str(path), "w", buffering=1)
        assert lb.line_buffering
        block(lb.write("x"), io)
        assert path.read_bytes() == b""
        block(lb.write("y\n"), io)  # a line end with line buffering writes through
        assert path.read_bytes() == b"xy\n"
        block(lb.close(), io)


def test_canonical_exception_names() -> None:
    assert canonical(ClosedFileError("x")) == ("ValueError", None)
    assert canonical(UnsupportedFileOperation("x"))[0] == "UnsupportedOperation"
    assert canonical(FileOSError(errno.EINVAL, "x")) == ("OSError", errno.EINVAL)


def test_files_package_exports() -> None:
    import core.files

    for name in core.files.__all__:
        assert hasattr(core.files, name)


def test_a_block_read_that_does_not_finish_inline_becomes_a_waiting_call() -> None:
    io = MemoryYieldIO()
    seed = io.open_file("f", OpenFlags.CREATE)
    seed.pwrite(0, bytes(range(48)), Completion.new_write())
    io.step()
    f = block(OpenFile(io, parse_open_arguments("f", "rb", buffering=16)), io)
    op = f.read(32)  # whole blocks, nothing buffered: submitted at once
    assert not isinstance(op, Ready)
    other = f.read(1)
    assert isinstance(other.step(), IO)  # the block read holds the turn
    assert drive_by_hand(op, io) == bytes(range(32))
    assert block(other, io) == bytes([32])
    again = f.read(16)  # 15 bytes buffered now: an ordinary read
    assert block(again, io) == bytes(range(33, 48))
    f.seek(0)
    cancelled = f.read(16)
    pending = cancelled.step()
    assert isinstance(pending, IO)
    pending.completion.abort()
    cancelled.abort(RuntimeError("cancelled"))
    assert f.tell() == 0
    assert block(f.read(16), io) == bytes(range(16))


def test_a_ready_call_answers_the_kernel_questions() -> None:
    io = MemoryIO()
    f = open_core(io, "f", "wb+")
    block(f.write(b"abcdef"), io)
    block(f.seek(0), io)
    assert block(f.read(2), io) == b"ab"  # fills the read-ahead buffer
    call = f.read(2)
    assert isinstance(call, Ready) and call.value == b"cd"
    assert call.step() == Done(b"cd") == call.step()
    assert call.pending() is None and not call.is_running() and not call.is_failed()
    call.abort(RuntimeError("late"))  # nothing to undo, and no error
    assert f.lock.holder is None


def holder_and_waiter() -> tuple[MemoryYieldIO, Any, Any, Any, IO, IO]:
    """A 2-byte-buffered file of "abcdef" on a deferred backend, a 4-byte read holding the
    turn with its I/O pending, and a 2-byte read waiting for it."""
    io = MemoryYieldIO()
    seed = io.open_file("f", OpenFlags.CREATE)
    seed.pwrite(0, b"abcdef", Completion.new_write())
    io.step()
    f = block(OpenFile(io, parse_open_arguments("f", "rb", buffering=2)), io)
    holder, waiter = f.read(4), f.read(2)
    held = holder.step()
    waits = waiter.step()
    assert isinstance(held, IO) and isinstance(waits, IO)
    return io, f, holder, waiter, held, waits


def test_giving_up_on_a_waiting_call_leaves_the_holder_alone() -> None:
    io, f, holder, waiter, held, waits = holder_and_waiter()
    waits.completion.abort()  # what a driver does when it gives up on the waiter
    waiter.abort(TimeoutError())
    assert not held.completion.finished()  # the holder's read is untouched
    assert block(holder, io) == b"abcd"
    assert block(f.read(2), io) == b"ef"  # the waiter never ran: its bytes are still there


def test_a_failed_holder_does_not_fail_the_call_waiting_for_its_turn() -> None:
    io, _, holder, waiter, held, waits = holder_and_waiter()
    held.completion.error(CompletionError(ErrorKind.IO, "the holder's disk"))
    assert waits.completion.finished() and waits.completion.succeeded()
    with pytest.raises(CompletionError, match="the holder's disk"):
        holder.step()
    assert block(waiter, io) == b"ab"  # the holder rolled back; the waiter reads from 0
