"""The founding document's pitfall: state mutated before a yield point runs again on
re-entry. Invisible when I/O completes inline, wrong as soon as it really yields."""

from __future__ import annotations

import enum

import pytest

from core import IO, Completion, Done, IOResult, block
from core.io import MemoryIO, MemoryYieldIO, OpenFlags
from core.io.backend import File

DATA = bytes(range(40))
CHUNK = 10


class BadChunkReader:
    """Counts chunks *before* its yield point: re-entry counts the same chunk again."""

    def __init__(self, file: File) -> None:
        self.file = file
        self.index = 0
        self.chunks_seen = 0
        self.parts: list[bytes] = []
        self.pending: Completion | None = None

    def step(self) -> IOResult[tuple[int, bytes]]:
        while self.index * CHUNK < len(DATA):
            self.chunks_seen += 1  # BUG: mutation before the yield point
            if self.pending is None:
                self.pending = Completion.new_read(bytearray(CHUNK))
                self.file.pread(self.index * CHUNK, self.pending)
            if not self.pending.finished():  # yield only for an unfinished completion
                return IO(self.pending)
            self.parts.append(bytes(self.pending.buffer or b""))
            self.pending = None
            self.index += 1
        return Done((self.chunks_seen, b"".join(self.parts)))


class _State(enum.Enum):
    SUBMIT = "submit"
    WAIT = "wait"


class GoodChunkReader:
    """The corrected twin: progress is recorded only after the read finished."""

    def __init__(self, file: File) -> None:
        self.file = file
        self.index = 0
        self.chunks_seen = 0
        self.parts: list[bytes] = []
        self.pending: Completion | None = None
        self.state = _State.SUBMIT

    def step(self) -> IOResult[tuple[int, bytes]]:
        while self.index * CHUNK < len(DATA):
            match self.state:
                case _State.SUBMIT:
                    self.pending = Completion.new_read(bytearray(CHUNK))
                    self.state = _State.WAIT
                    self.file.pread(self.index * CHUNK, self.pending)
                case _State.WAIT:
                    assert self.pending is not None
                    if not self.pending.finished():
                        return IO(self.pending)
                    self.chunks_seen += 1  # after the yield point: runs once per chunk
                    self.parts.append(bytes(self.pending.buffer or b""))
                    self.index += 1
                    self.state = _State.SUBMIT
        return Done((self.chunks_seen, b"".join(self.parts)))


def run(machine: type[BadChunkReader] | type[GoodChunkReader], io: MemoryIO) -> tuple[int, bytes]:
    f = io.open_file("data", OpenFlags.CREATE)
    f.pwrite(0, DATA, Completion.new_write())
    io.step()
    return block(machine(f), io)


def test_bad_machine_differs_once_io_really_yields() -> None:
    inline = run(BadChunkReader, MemoryIO())
    deferred = run(BadChunkReader, MemoryYieldIO())
    assert inline == (4, DATA)
    assert deferred[1] == DATA
    assert deferred[0] == 8  # each chunk counted twice: once before, once after its yield
    assert inline != deferred


@pytest.mark.parametrize("backend", [MemoryIO, MemoryYieldIO])
def test_corrected_machine_is_the_same_under_both(backend: type[MemoryIO]) -> None:
    assert run(GoodChunkReader, backend()) == (4, DATA)
