"""The shipped file operations, stepped by hand against scripted files and run on backends."""

from __future__ import annotations

import pathlib

import pytest

from core import IO, CompletionError, Done, ErrorKind, StateMachineError, block
from core.io import MemoryIO, MemoryYieldIO, OpenFlags, UnixIO
from core.io.backend import IOBackend
from core.ops import CopyFile, ReadRange, ReadWholeFile, WriteBuffers
from tests.helpers import URING, ScriptedFile, eio, step_to_done


def test_read_range_yields_once_then_returns_bytes() -> None:
    f = ScriptedFile()
    op = ReadRange(f, 100, 4)
    result = op.step()
    assert isinstance(result, IO)
    assert [s.op for s in f.submitted] == ["pread"] and f.submitted[0].pos == 100
    # Re-entry before the read finished waits on the same completion: no second submission.
    again = op.step()
    assert isinstance(again, IO) and again.completion is result.completion
    assert len(f.submitted) == 1
    buf = result.completion.buffer
    assert buf is not None
    buf[:4] = b"abcd"
    result.completion.complete(4)
    assert op.step() == Done(b"abcd")
    with pytest.raises(StateMachineError, match="after it finished"):
        op.step()


def test_read_range_exact_turns_a_short_read_into_an_error() -> None:
    f = ScriptedFile("db")
    op = ReadRange(f, 8, 4, exact=True)
    result = op.step()
    assert isinstance(result, IO)
    result.completion.complete(2)
    with pytest.raises(CompletionError) as info:
        op.step()
    err = info.value
    assert err.kind is ErrorKind.SHORT_READ and (err.expected, err.actual) == (4, 2)
    assert err.path == "db" and err.offset == 8


def test_read_range_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        ReadRange(ScriptedFile(), -1, 3)


def test_read_whole_file_submits_every_chunk_as_one_group() -> None:
    f = ScriptedFile(size=25)
    op = ReadWholeFile(f, chunk_size=10)
    result = op.step()
    assert isinstance(result, IO)
    assert [(s.op, s.pos) for s in f.submitted] == [("pread", 0), ("pread", 10), ("pread", 20)]
    # Children finish out of order; the group completes after the last one.
    for index in (2, 0, 1):
        part = f.submitted[index].completion
        buf = part.buffer
        assert buf is not None
        size = len(buf)
        buf[:] = bytes([65 + index]) * size
        assert not result.completion.finished()
        part.complete(size)
    assert result.completion.finished()
    assert op.step() == Done(b"A" * 10 + b"B" * 10 + b"C" * 5)


def test_read_whole_file_raises_a_chunk_error_after_all_chunks_finish() -> None:
    f = ScriptedFile(size=20)
    op = ReadWholeFile(f, chunk_size=10)
    result = op.step()
    assert isinstance(result, IO)
    err = eio("scripted", 10)
    f.submitted[1].completion.error(err)
    assert not result.completion.finished()
    f.submitted[0].completion.complete(10)
    with pytest.raises(CompletionError) as info:
        op.step()
    assert info.value is err


def test_read_whole_file_that_shrank_is_a_short_read() -> None:
    f = ScriptedFile(size=20)
    op = ReadWholeFile(f, chunk_size=10)
    result = op.step()
    assert isinstance(result, IO)
    f.submitted[0].completion.complete(10)
    f.submitted[1].completion.complete(3)
    with pytest.raises(CompletionError) as info:
        op.step()
    assert info.value.kind is ErrorKind.SHORT_READ and info.value.actual == 13


def test_read_whole_empty_file_needs_no_io() -> None:
    assert ReadWholeFile(ScriptedFile(size=0)).step() == Done(b"")


def test_write_buffers_writes_then_syncs() -> None:
    f = ScriptedFile()
    op = WriteBuffers(f, 4, [b"ab", b"cde"])
    result = op.step()
    assert isinstance(result, IO)
    assert f.submitted[0].op == "pwritev" and f.submitted[0].data == b"abcde"
    result.completion.complete(5)
    result = op.step()
    assert isinstance(result, IO) and f.submitted[1].op == "sync"
    result.completion.complete(0)
    assert op.step() == Done(5)
    assert len(f.submitted) == 2


def test_write_buffers_short_write_is_an_error() -> None:
    f = ScriptedFile("out")
    op = WriteBuffers(f, 0, [b"abcdef"], sync=False)
    result = op.step()
    assert isinstance(result, IO)
    result.completion.complete(4)
    with pytest.raises(CompletionError) as info:
        op.step()
    assert info.value.kind is ErrorKind.SHORT_WRITE
    assert (info.value.expected, info.value.actual, info.value.path) == (6, 4, "out")


def test_write_buffers_sync_failure_raises() -> None:
    f = ScriptedFile()
    op = WriteBuffers(f, 0, [b"x"])

    def finish(c: object) -> None:
        if f.submitted[-1].op == "sync":
            f.submitted[-1].completion.error(eio())
        else:
            f.submitted[-1].completion.complete(1)

    with pytest.raises(CompletionError) as info:
        step_to_done(op, finish=finish)
    assert info.value.errno == 5


def test_copy_file_in_batches() -> None:
    src = ScriptedFile("src", size=25)
    dst = ScriptedFile("dst")
    op = CopyFile(src, dst, chunk_size=10, batch=2)
    contents = bytes(range(25))

    def finish(c: object) -> None:
        for s in src.pending() + dst.pending():
            if s.op == "pread":
                buf = s.completion.buffer
                assert buf is not None
                piece = contents[s.pos : s.pos + len(buf)]
                buf[: len(piece)] = piece
                s.completion.complete(len(piece))
            elif s.op == "pwritev":
                s.completion.complete(len(s.data))
            else:
                s.completion.complete(0)

    assert step_to_done(op, finish=finish) == 25
    assert [s.op for s in dst.submitted] == ["truncate", "pwritev", "pwritev", "sync"]
    assert b"".join(s.data for s in dst.submitted if s.op == "pwritev") == contents
    assert [s.pos for s in src.submitted] == [0, 10, 20]


BACKENDS = [MemoryIO, MemoryYieldIO, UnixIO, URING]


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 100_003])
def test_ops_agree_on_every_backend(
    backend: type[IOBackend], size: int, tmp_path: pathlib.Path
) -> None:
    io = backend()
    data = bytes((i * 7 + 3) % 256 for i in range(size))
    src = io.open_file(tmp_path / "src", OpenFlags.CREATE)
    dst = io.open_file(tmp_path / "dst", OpenFlags.CREATE)
    assert block(WriteBuffers(dst, 0, [b"stale" * 50_000]), io) == 250_000
    assert block(WriteBuffers(src, 0, [data[:100], data[100:]]), io) == size
    assert block(CopyFile(src, dst, chunk_size=4096, batch=3), io) == size
    assert block(ReadWholeFile(dst, chunk_size=5000), io) == data
    assert dst.size() == size
    assert block(ReadRange(src, 50, 200), io) == data[50:250]
    io.close()


def test_copy_file_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        CopyFile(ScriptedFile(), ScriptedFile(), batch=0)
