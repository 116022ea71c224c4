"""Testing your own operation with the deterministic simulator.

The operation: append a fixed-size record to a tiny log file laid out as an 8-byte
record count followed by the records. It reads the count, writes the record in the next
slot, writes the new count, then syncs. It is composed of core's own operations.

1. `explore` runs it under every schedule that matters and compares each run with the one
   where all I/O completes inline; a version with a re-entrancy bug is caught, with the
   schedule and seed that show it.
2. Under injected faults and power loss, every append that was acknowledged survives the
   crash, and every failure is a clean `CompletionError`.

Run it: ``python examples/sim_example.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from core import IO, CompletionError, Done, IOResultError, block
from core.driver import Operation
from core.io import File
from core.ops import ReadRange, WriteBuffers
from core.sim import FaultConfig, ScheduleMismatchError, SimulatorIO, explore

RECORD = 16
HEADER = 8

Wrap = Callable[[Operation[object]], Operation[object]]


class _State(enum.Enum):
    READ_COUNT = "read count"
    WRITE_RECORD = "write record"
    WRITE_COUNT = "write count"
    DONE = "done"


class AppendRecord:
    """Append `record` (exactly RECORD bytes); `Done(index)` once it is durable.

    `wrap` is applied to each sub-operation: identity in production, `io.with_yields` under
    the simulator, so the explorer can inject a yield at every sub-operation's step.
    `buggy=True` plants the founding document's "index advanced before a yield".
    """

    def __init__(
        self, file: File, record: bytes, *, wrap: Wrap | None = None, buggy: bool = False
    ) -> None:
        if len(record) != RECORD:
            raise IOResultError(f"a record is {RECORD} bytes, got {len(record)}")
        self.file = file
        self.record = record
        self.wrap: Wrap = wrap if wrap is not None else _identity
        self.buggy = buggy
        self.index = 0
        self.state = _State.READ_COUNT
        self.sub: Operation[object] | None = self.wrap(ReadRange(file, 0, HEADER, exact=True))

    def step(self) -> Done[int] | IO:
        while True:
            match self.state:
                case _State.READ_COUNT:
                    assert self.sub is not None
                    match self.sub.step():
                        case IO() as io:
                            return io
                        case Done(raw):
                            self.index = int.from_bytes(raw, "big")  # type: ignore[arg-type]
                            offset = HEADER + self.index * RECORD
                            write = WriteBuffers(self.file, offset, [self.record], sync=False)
                            self.sub = self.wrap(write)
                            self.state = _State.WRITE_RECORD
                case _State.WRITE_RECORD:
                    assert self.sub is not None
                    match self.sub.step():
                        case IO() as io:
                            return io
                        case Done(_):
                            self.sub = None
                            self.state = _State.WRITE_COUNT
                case _State.WRITE_COUNT:
                    if self.buggy:
                        self.index += 1  # BUG: advances again each time we are re-entered
                        count = self.index
                    else:
                        count = self.index + 1
                    if self.sub is None:  # write the new count, then sync
                        header = count.to_bytes(HEADER, "big")
                        self.sub = self.wrap(WriteBuffers(self.file, 0, [header]))
                    match self.sub.step():
                        case IO() as io:
                            return io
                        case Done(_):
                            self.state = _State.DONE
                            return Done(count - 1)
                case _State.DONE:
                    raise IOResultError("AppendRecord stepped after it finished")


def _identity(op: Operation[object]) -> Operation[object]:
    return op


def setup(io: SimulatorIO) -> None:
    """Two records already in the log."""
    io.create_file("log", (2).to_bytes(HEADER, "big") + b"a" * RECORD + b"b" * RECORD)


def make_append(buggy: bool) -> Callable[[SimulatorIO], AppendRecord]:
    def make_op(io: SimulatorIO) -> AppendRecord:
        return AppendRecord(io.open_file("log"), b"c" * RECORD, wrap=io.with_yields, buggy=buggy)

    return make_op


def explore_both() -> tuple[str, int]:
    """Explore the buggy and the correct version; return the schedule that caught the bug
    and how many schedules the correct one passed."""
    try:
        explore(make_append(buggy=True), setup=setup)
    except ScheduleMismatchError as exc:
        caught = str(exc.schedule)
        print(f"buggy version caught under: {caught}")
        print(f"  inline: {exc.expected}\n  there:  {exc.actual}")
    else:
        raise AssertionError("the explorer missed the planted bug")
    report = explore(make_append(buggy=False), setup=setup)
    print(
        f"correct version: same result under all {report.schedules} schedules "
        f"({report.io_points} I/O points, {report.yield_points} yield points)"
    )
    return caught, report.schedules


def soak(seeds: int = 200) -> dict[str, int]:
    """Append under faults, crash, reopen: acknowledged records must all be there."""
    faults = FaultConfig(
        write_error=0.05,
        sync_error=0.05,
        torn_write=0.05,
        submit_error=0.02,
        crash_keep_unsynced=0.5,
    )
    totals = {"seeds": 0, "acknowledged": 0, "failed": 0, "faults": 0}
    for seed in range(seeds):
        io = SimulatorIO(seed, faults)
        io.create_file("log", bytes(HEADER))
        acknowledged: dict[int, bytes] = {}
        for n in range(6):
            record = bytes([97 + n]) * RECORD
            try:
                index = block(AppendRecord(io.open_file("log"), record), io)
            except CompletionError:
                totals["failed"] += 1
                continue
            acknowledged[index] = record
        io.crash()
        data = io.file_contents("log")  # what the disk holds after the power loss
        count = int.from_bytes(data[:HEADER], "big")
        for index, record in acknowledged.items():
            slot = data[HEADER + index * RECORD : HEADER + (index + 1) * RECORD]
            assert index < count and slot == record, f"seed {seed}: record {index} lost"
        totals["seeds"] += 1
        totals["acknowledged"] += len(acknowledged)
        totals["faults"] += io.stats.faults()
    print(
        f"{totals['seeds']} seeds: {totals['acknowledged']} appends acknowledged and all "
        f"survived their crash; {totals['failed']} failed cleanly; "
        f"{totals['faults']} faults injected"
    )
    return totals


def main() -> None:
    explore_both()
    soak()


if __name__ == "__main__":
    main()
