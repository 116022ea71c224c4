"""Which build runs: `core.COMPILED` matches what the suite expects (`make test-compiled`
sets IORESULT_EXPECT_COMPILED=1), the compiled suite imports `core` and `bridge` from the
installed wheel and never from the checkout, and operations written in plain Python run on
the kernel either way."""

from __future__ import annotations

import enum
import os
from pathlib import Path

import bridge
import core
from core import IO, Completion, Continue, Done, block
from core.io import MemoryIO, OpenFlags
from core.state_machine import Machine, TransitionResult
from tests.source_tree import ROOT

EXPECT_COMPILED = os.environ.get("IORESULT_EXPECT_COMPILED", "") not in ("", "0")


def test_the_expected_build_runs() -> None:
    print(f"core.COMPILED = {core.COMPILED}")
    assert core.COMPILED is EXPECT_COMPILED


def test_the_compiled_suite_imports_the_installed_packages() -> None:
    for package in (core, bridge):
        where = Path(package.__file__ or "").resolve()
        from_source = where.parent == ROOT / where.parent.name
        assert from_source is not EXPECT_COMPILED, where


def test_no_extension_module_in_the_source_tree() -> None:
    """A compiled module next to its `.py` file would shadow the source."""
    found = [
        p for d in ("core", "bridge") for p in (ROOT / d).rglob("*") if p.suffix in {".so", ".pyd"}
    ]
    assert found == []


class _State(enum.Enum):
    READ = "read"
    END = "end"


class _ReadTwice(Machine[bytes]):
    """A user's operation in plain Python on the (possibly compiled) kernel."""

    __slots__ = ("buf", "c", "file", "state")

    def __init__(self, file: object) -> None:
        super().__init__()
        self.file, self.state, self.buf = file, _State.READ, bytearray(4)
        self.c = Completion.new_read(self.buf)

    def _advance(self) -> TransitionResult[bytes]:
        match self.state:
            case _State.READ:
                self.state = _State.END
                self.file.pread(0, self.c)  # type: ignore[attr-defined]
                return Continue if self.c.finished() else IO(self.c)
            case _State.END:
                return Done(bytes(self.buf[: self.c.result()]))
        raise AssertionError(self.state)


def test_an_interpreted_operation_runs_on_the_kernel() -> None:
    io = MemoryIO()
    with io.open_file("f", OpenFlags.CREATE) as f:
        block(
            io.wait_for_completion(f.pwrite(0, b"abcd", Completion.new_write()))
            or (lambda: Done(0)),
            io,
        )
        assert block(_ReadTwice(f), io) == b"abcd"


def test_match_on_results_works_on_either_build() -> None:
    c = Completion.new_yield()
    match Done(3):
        case Done(v):
            assert v == 3
    match IO(c):
        case IO(completion):
            assert completion is c
