"""The model in one page: an operation as an explicit state machine, run by `block`.

Run: python examples/quickstart.py
"""

from __future__ import annotations

import enum
import tempfile
from pathlib import Path

from core import IO, Completion, Done, IOResult, block
from core.io import File, MemoryIO, MemoryYieldIO, OpenFlags, UnixIO
from core.ops import WriteBuffers


class State(enum.Enum):
    START = "start"
    READING = "reading"


class CountLines:
    """Count the newlines of a file, reading it `chunk` bytes at a time."""

    def __init__(self, file: File, chunk: int = 4096) -> None:
        self.file = file
        self.chunk = chunk
        self.state = State.START
        self.offset = 0
        self.lines = 0
        self.pending: Completion | None = None

    def step(self) -> IOResult[int]:
        while True:
            match self.state:
                case State.START:
                    self.pending = Completion.new_read(bytearray(self.chunk))
                    self.state = State.READING  # leave the state before the I/O point
                    self.file.pread(self.offset, self.pending)
                case State.READING:
                    assert self.pending is not None
                    if not self.pending.finished():
                        return IO(self.pending)  # call me again once it has finished
                    count = self.pending.result()  # raises the read's error, if any
                    if count == 0:
                        return Done(self.lines)
                    buffer = self.pending.buffer
                    assert buffer is not None
                    self.lines += bytes(buffer[:count]).count(b"\n")  # after the I/O point
                    self.offset += count
                    self.state = State.START


def main() -> None:
    text = b"".join(b"line %d\n" % i for i in range(10_000))
    with tempfile.TemporaryDirectory() as tmp:
        for io in (MemoryIO(), MemoryYieldIO(), UnixIO()):
            with io:
                f = io.open_file(Path(tmp) / "lines.txt", OpenFlags.CREATE)
                block(WriteBuffers(f, 0, [text]), io)
                print(f"{type(io).__name__:>13}: {block(CountLines(f), io)} lines")


if __name__ == "__main__":
    main()
