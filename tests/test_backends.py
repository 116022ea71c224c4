"""MemoryIO, MemoryYieldIO, UnixIO and UringIO: the same behaviour, the same errors."""

from __future__ import annotations

import errno
import os
import pathlib
from collections.abc import Iterator

import pytest

from core import Completion, CompletionError, ErrorKind, IOResultError, block
from core.io import File, IOBackend, MemoryIO, MemoryYieldIO, OpenFlags, UnixIO, UringIO
from core.ops import ReadRange, ReadWholeFile, WriteBuffers
from tests.helpers import URING

BACKENDS = [MemoryIO, MemoryYieldIO, UnixIO, URING]
REAL_FILES = [UnixIO, URING]
"""The backends over real files, for the checks of what the operating system reports."""


@pytest.fixture(params=BACKENDS, ids=lambda cls: cls.__name__)
def io(request: pytest.FixtureRequest) -> Iterator[IOBackend]:
    backend: IOBackend = request.param()
    with backend:
        yield backend


def wait(io: IOBackend, c: Completion) -> Completion:
    io.wait_for_completion(c)
    return c


def test_protocols_are_implemented(io: IOBackend, tmp_path: pathlib.Path) -> None:
    assert isinstance(io, IOBackend)
    with io.open_file(tmp_path / "f", OpenFlags.CREATE) as f:
        assert isinstance(f, File)
        assert f.path == str(tmp_path / "f")


def test_write_read_size_truncate_sync(io: IOBackend, tmp_path: pathlib.Path) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    assert f.size() == 0
    assert wait(io, f.pwrite(0, b"hello world", Completion.new_write())).result() == 11
    assert f.size() == 11
    buf = bytearray(5)
    assert wait(io, f.pread(6, Completion.new_read(buf))).result() == 5
    assert buf == b"world"
    assert wait(io, f.pwritev(20, [b"ab", memoryview(b"cd")], Completion.new_write())).result() == 4
    assert f.size() == 24
    gap = bytearray(9)
    wait(io, f.pread(11, Completion.new_read(gap)))
    assert gap == bytes(9)  # a hole reads back as zeros
    wait(io, f.sync(Completion.new_sync()))
    wait(io, f.truncate(5, Completion.new_trunc()))
    assert f.size() == 5
    f.close()


def test_read_past_the_end_gives_the_short_count(io: IOBackend, tmp_path: pathlib.Path) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    wait(io, f.pwrite(0, b"abc", Completion.new_write()))
    buf = bytearray(10)
    assert wait(io, f.pread(1, Completion.new_read(buf))).result() == 2
    assert buf[:2] == b"bc"
    assert wait(io, f.pread(100, Completion.new_read(bytearray(4)))).result() == 0


def test_a_bytes_read_returns_the_bytes_short_at_the_end(
    io: IOBackend, tmp_path: pathlib.Path
) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    wait(io, f.pwrite(0, b"hello world", Completion.new_write()))
    c = wait(io, f.pread(6, Completion.new_read_bytes(5)))
    assert c.result() == 5 and c.read_bytes() == b"world"
    c = wait(io, f.pread(8, Completion.new_read_bytes(10)))
    assert c.result() == 3 and c.read_bytes() == b"rld"
    c = wait(io, f.pread(100, Completion.new_read_bytes(4)))
    assert c.result() == 0 and c.read_bytes() == b""
    assert block(ReadRange(f, 0, 5), io) == b"hello"
    f.close()


def test_missing_file_names_path_and_errno_and_backend_still_works(
    io: IOBackend, tmp_path: pathlib.Path
) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(CompletionError) as info:
        io.open_file(missing)
    err = info.value
    assert err.kind is ErrorKind.IO and err.errno == errno.ENOENT and err.path == str(missing)
    assert str(missing) in str(err) and "ENOENT" in str(err)
    with pytest.raises(CompletionError) as info:
        io.remove_file(missing)
    assert info.value.errno == errno.ENOENT
    f = io.open_file(tmp_path / "ok", OpenFlags.CREATE)
    assert block(WriteBuffers(f, 0, [b"next"]), io) == 4
    assert block(ReadRange(f, 0, 4), io) == b"next"


def test_closed_file_is_a_closed_error_and_the_next_file_works(
    io: IOBackend, tmp_path: pathlib.Path
) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    f.close()
    f.close()  # idempotent
    for call in (
        lambda: f.pread(0, Completion.new_read(bytearray(1))),
        lambda: f.pwrite(0, b"x", Completion.new_write()),
        lambda: f.pwritev(0, [b"x"], Completion.new_write()),
        lambda: f.sync(Completion.new_sync()),
        lambda: f.truncate(0, Completion.new_trunc()),
        f.size,
    ):
        with pytest.raises(CompletionError) as info:
            call()
        assert info.value.kind is ErrorKind.CLOSED
        assert str(tmp_path / "f") in str(info.value)
    g = io.open_file(tmp_path / "f")
    assert block(WriteBuffers(g, 0, [b"x"]), io) == 1


def test_closed_backend_refuses_and_closes_its_files(io: IOBackend, tmp_path: pathlib.Path) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    io.close()
    with pytest.raises(CompletionError) as info:
        io.open_file(tmp_path / "f")
    assert info.value.kind is ErrorKind.CLOSED
    with pytest.raises(CompletionError) as info:
        f.size()
    assert info.value.kind is ErrorKind.CLOSED
    io.close()


def test_read_only_file_refuses_writes_at_submission(io: IOBackend, tmp_path: pathlib.Path) -> None:
    io.open_file(tmp_path / "f", OpenFlags.CREATE).close()
    f = io.open_file(tmp_path / "f", OpenFlags.READ_ONLY)
    with pytest.raises(CompletionError) as info:
        f.pwrite(0, b"x", Completion.new_write())
    assert info.value.errno == errno.EBADF and "read-only" in str(info.value)
    with pytest.raises(CompletionError):
        f.truncate(0, Completion.new_trunc())
    assert block(ReadRange(f, 0, 1), io) == b""


def test_removed_file_is_gone(io: IOBackend, tmp_path: pathlib.Path) -> None:
    io.open_file(tmp_path / "f", OpenFlags.CREATE).close()
    io.remove_file(tmp_path / "f")
    with pytest.raises(CompletionError):
        io.open_file(tmp_path / "f")


def test_drain_and_cancel(io: IOBackend, tmp_path: pathlib.Path) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    cs = [f.pwrite(i, b"x", Completion.new_write()) for i in range(3)]
    io.drain_completions(cs)
    assert all(c.succeeded() for c in cs)
    pending = Completion.new_write()
    io.cancel([pending, cs[0]])
    assert pending.failed() and cs[0].succeeded()
    assert isinstance(io.now(), float)


def test_whole_file_and_vectored_write_ops(io: IOBackend, tmp_path: pathlib.Path) -> None:
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    data = bytes(range(256)) * 40
    assert block(WriteBuffers(f, 0, [data[:1000], data[1000:]]), io) == len(data)
    assert block(ReadWholeFile(f, chunk_size=777), io) == data


def test_memory_yield_defers_until_step(tmp_path: pathlib.Path) -> None:
    io = MemoryYieldIO()
    f = io.open_file("f", OpenFlags.CREATE)
    order: list[str] = []
    a = f.pwrite(0, b"a", Completion.new_write(lambda _: order.append("a")))  # type: ignore[func-returns-value]
    b = f.pwrite(1, b"b", Completion.new_write(lambda _: order.append("b")))  # type: ignore[func-returns-value]
    assert not a.finished() and io.pending() == 2
    assert io.step() == 2
    assert order == ["a", "b"] and a.succeeded() and b.succeeded()
    assert io.step() == 0


def test_memory_yield_snapshots_queue_before_callbacks() -> None:
    io = MemoryYieldIO()
    f = io.open_file("f", OpenFlags.CREATE)
    follow_ups: list[Completion] = []

    def submit_more(_: object) -> None:
        follow_ups.append(f.pwrite(1, b"z", Completion.new_write()))

    f.pwrite(0, b"y", Completion.new_write(submit_more))  # type: ignore[arg-type]
    assert io.step() == 1
    assert len(follow_ups) == 1 and not follow_ups[0].finished()
    assert io.step() == 1 and follow_ups[0].succeeded()


def test_memory_yield_drops_a_completion_aborted_while_queued() -> None:
    io = MemoryYieldIO()
    f = io.open_file("f", OpenFlags.CREATE)
    c = f.pwrite(0, b"lost", Completion.new_write())
    c.abort()
    io.step()
    assert f.size() == 0 and c.failed()


def test_memory_yield_close_aborts_queued_io() -> None:
    io = MemoryYieldIO()
    f = io.open_file("f", OpenFlags.CREATE)
    c = f.pwrite(0, b"x", Completion.new_write())
    io.close()
    error = c.get_error()
    assert error is not None and error.kind is ErrorKind.ABORTED


def test_waiting_on_a_foreign_completion_fails_instead_of_hanging() -> None:
    backends: list[IOBackend] = [MemoryIO(), MemoryYieldIO(), UnixIO()]
    if UringIO.available():
        backends.append(UringIO())
    for io in backends:
        with pytest.raises(IOResultError, match="can never finish"):
            io.wait_for_completion(Completion.new_write())


def test_pwritev_propagates_a_part_error_to_the_parent() -> None:
    io = MemoryYieldIO()
    f = io.open_file("f", OpenFlags.CREATE)
    parent = f.pwritev(0, [b"ab", b"cd"], Completion.new_write())
    # Close the file under the queued parts: the parts finish, the parent must see errors
    # from parts. Fail a part explicitly through the queue instead.
    queued = [entry[0] for entry in io._queue]
    injected = CompletionError(ErrorKind.IO, "disk", errno=errno.EIO, path="f", offset=2)
    queued[1].error(injected)
    io.step()
    assert parent.get_error() is injected


def test_aborting_pwritev_cancels_its_parts() -> None:
    io = MemoryYieldIO()
    f = io.open_file("f", OpenFlags.CREATE)
    parent = f.pwritev(0, [b"ab", b"cd"], Completion.new_write())
    parent.abort()
    io.step()
    assert f.size() == 0
    error = parent.get_error()
    assert error is not None and error.kind is ErrorKind.ABORTED


def test_negative_offset_is_rejected_in_memory() -> None:
    io = MemoryIO()
    f = io.open_file("f", OpenFlags.CREATE)
    with pytest.raises(CompletionError) as info:
        f.pread(-1, Completion.new_read(bytearray(1)))
    assert info.value.errno == errno.EINVAL and info.value.offset == -1


@pytest.mark.parametrize("real", REAL_FILES, ids=lambda cls: cls.__name__)
def test_unix_errors_arrive_on_the_completion_with_errno_path_offset(
    real: type[IOBackend],
    tmp_path: pathlib.Path,
) -> None:
    io = real()
    f = io.open_file(tmp_path / "f", OpenFlags.CREATE)
    c = f.pread(-5, Completion.new_read(bytearray(1)))
    error = c.get_error()
    assert error is not None and error.errno == errno.EINVAL
    assert error.path == str(tmp_path / "f") and error.offset == -5
    assert isinstance(error.__cause__, OSError)
    assert block(WriteBuffers(f, 0, [b"still works"]), io) == 11


@pytest.mark.parametrize("real", REAL_FILES, ids=lambda cls: cls.__name__)
def test_unix_directory_is_refused(real: type[IOBackend], tmp_path: pathlib.Path) -> None:
    io = real()
    for flags in (OpenFlags.NONE, OpenFlags.READ_ONLY):
        with pytest.raises(CompletionError) as info:
            io.open_file(tmp_path, flags)
        assert info.value.errno == errno.EISDIR and info.value.path == str(tmp_path)


@pytest.mark.parametrize("real", REAL_FILES, ids=lambda cls: cls.__name__)
def test_unix_write_to_a_full_device_is_an_io_error(real: type[IOBackend]) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (Linux)")
    io = real()
    f = io.open_file("/dev/full")
    c = f.pwrite(0, b"x" * 10, Completion.new_write())
    io.drain_completions([c])
    error = c.get_error()
    assert error is not None and error.errno == errno.ENOSPC and error.path == "/dev/full"


@pytest.mark.parametrize("real", REAL_FILES, ids=lambda cls: cls.__name__)
def test_unix_permission_denied_names_path_and_errno(
    real: type[IOBackend], tmp_path: pathlib.Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"x")
    secret.chmod(0)
    io = real()
    # Root bypasses file modes: drop the effective user for the open, then restore it.
    as_root = os.geteuid() == 0
    if as_root:
        os.seteuid(65534)
    try:
        with pytest.raises(CompletionError) as info:
            io.open_file(secret)
    finally:
        if as_root:
            os.seteuid(0)
    assert info.value.errno == errno.EACCES and info.value.path == str(secret)
    assert "EACCES" in str(info.value)
    f = io.open_file(tmp_path / "next", OpenFlags.CREATE)
    assert block(WriteBuffers(f, 0, [b"ok"]), io) == 2  # the next operation still works


def test_unix_bytes_read_reads_the_rest_after_a_short_read(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(range(10)))
    real_pread = os.pread
    calls: list[tuple[int, int]] = []

    def short_pread(fd: int, length: int, pos: int) -> bytes:
        calls.append((length, pos))
        return real_pread(fd, min(length, 3), pos)  # the kernel may return fewer bytes

    monkeypatch.setattr(os, "pread", short_pread)
    with UnixIO() as io, io.open_file(path) as f:
        assert block(ReadRange(f, 1, 8), io) == bytes(range(1, 9))
        assert block(ReadRange(f, 6, 8), io) == bytes(range(6, 10))  # then the end
    assert calls[:3] == [(8, 1), (5, 4), (2, 7)]


def test_unix_bytes_read_error_names_errno_path_and_offset(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")

    def failing_pread(fd: int, length: int, pos: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    with UnixIO() as io, io.open_file(path) as f:
        monkeypatch.setattr(os, "pread", failing_pread)
        with pytest.raises(CompletionError) as info:
            block(ReadRange(f, 1, 2), io)
    error = info.value
    assert error.kind is ErrorKind.IO and error.errno == errno.EIO
    assert error.path == str(path) and error.offset == 1
