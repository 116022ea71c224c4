"""`SimulatorIO`: a deterministic disk with latency, reordering, faults and power loss
(Turso `testing/simulator/runner/io.rs`, `runner/file.rs` and `runner/memory/`).

Theory of operation:
- One `random.Random(seed)` makes every decision: faults, latencies, which I/O completes
  inline, what a crash keeps. Nothing else is random and nothing reads the real clock,
  so the same seed and the same calls give the same trace, byte for byte.
- Time is virtual (integer microseconds; `now()` gives seconds). An I/O is either finished
  inline, during the call that submits it, or queued with a random latency; `step()`
  moves the clock to the earliest due I/O and finishes every I/O due by then, in order of
  due time and then submission. Latencies are independent, so completions finish in an
  order other than submission, and a sync may finish before a write submitted earlier.
- Data moves when an I/O *executes*, not when it is submitted: a write's buffer is read
  then (a caller that reuses it too early is caught), and a read sees the file as it is
  then. Durability follows `core.sim.fs`: a sync covers the writes applied before it was
  submitted, and `crash()` keeps only durable data, plus a random subset of the rest if
  `FaultConfig.crash_keep_unsynced` allows (whole writes, or sectors of them: torn).
- A completion that was already finished (aborted) when its turn comes is dropped: its I/O
  never happens. `crash()` and `close()` abort everything in flight.
- Open flags follow `open(2)`: `EXCLUSIVE` with `CREATE` refuses an existing file
  (`EEXIST`); on an `APPEND` handle every write lands at the end of the file as it is when
  the write *executes* (`O_APPEND` decides the offset at write time), whatever offset was
  passed. A crash that keeps an append still in flight places it at the offset passed.
- `needs_stepping` is True: nothing progresses between calls to `step()` (drivers and
  `BackendBase.wait_for_completion` step it).
- Which I/Os finish inline is the schedule: `inline` is the probability for each, and
  `defer_at` names submission numbers (counted from construction or the last
  `configure()`) that are always queued. The explorer builds its schedules from these two
  and from the yield injector the simulator carries (`injector`, used by `with_yields`).
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import heapq
import os
import random
from collections.abc import Iterable, Sequence
from typing import TypeVar

from core.completion import Completion
from core.driver import Operation
from core.errors import CompletionError, ErrorKind, IOResultError
from core.io.backend import Buffer, OpenFlags, StrPath
from core.io.common import BackendBase, FileBase
from core.sim.errors import SimConfigError
from core.sim.faults import FaultConfig, TornWriteResult
from core.sim.fs import FileSystem, Inode, Mutation, MutationKind
from core.sim.trace import Trace, TraceEvent
from core.sim.yields import InjectYields, YieldInjector

__all__ = ["SimFile", "SimStats", "SimulatorIO"]

T = TypeVar("T")


class _Op(enum.Enum):
    PREAD = "pread"
    PWRITE = "pwrite"
    PWRITEV = "pwritev"
    SYNC = "sync"
    TRUNCATE = "truncate"


class _Fault(enum.Enum):
    NONE = "none"
    EIO = "eio"
    SHORT = "short"
    TORN = "torn"


@dataclasses.dataclass(slots=True)
class SimStats:
    """Counters of what a `SimulatorIO` did; `faults()` sums the injected faults."""

    submitted: int = 0
    """I/Os accepted (not counting those refused at submission)."""
    completed: int = 0
    """I/Os executed (successfully or with an injected error)."""
    inline: int = 0
    """I/Os finished during their own submission."""
    dropped: int = 0
    """I/Os skipped because their completion was already finished (aborted)."""
    submit_errors: int = 0
    read_errors: int = 0
    write_errors: int = 0
    sync_errors: int = 0
    truncate_errors: int = 0
    short_reads: int = 0
    torn_writes: int = 0
    crashes: int = 0
    kept_unsynced: int = 0
    """Writes or truncates that were not durable but survived a crash anyway."""
    lost_unsynced: int = 0
    """Writes or truncates lost in a crash."""
    aborted: int = 0
    """Completions aborted by `crash()` or `close()`."""

    def faults(self) -> int:
        """Every injected fault, crashes aside."""
        return (
            self.submit_errors
            + self.read_errors
            + self.write_errors
            + self.sync_errors
            + self.truncate_errors
            + self.short_reads
            + self.torn_writes
        )

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class _Pending:
    """One submitted I/O waiting for its turn."""

    __slots__ = (
        "append",
        "buffers",
        "completion",
        "fault",
        "inode",
        "io",
        "kind",
        "offset",
        "path",
        "upto",
    )

    def __init__(
        self,
        io: int,
        kind: _Op,
        inode: Inode,
        path: str,
        offset: int,
        buffers: tuple[Buffer, ...],
        completion: Completion,
        fault: _Fault,
        upto: int,
        append: bool,
    ) -> None:
        self.io = io
        self.kind = kind
        self.inode = inode
        self.path = path
        self.offset = offset
        self.buffers = buffers
        self.completion = completion
        self.fault = fault
        self.upto = upto  # for a sync: mutations applied when it was submitted
        self.append = append  # a write through an APPEND handle: lands at the end

    def length(self) -> int | None:
        if self.kind is _Op.PREAD:
            buffer = self.completion.buffer
            return 0 if buffer is None else len(buffer)
        if self.kind in (_Op.PWRITE, _Op.PWRITEV):
            return sum(len(b) for b in self.buffers)
        return None

    def as_mutation(self) -> Mutation | None:
        """What this I/O would change, for a crash that catches it in flight."""
        if self.kind is _Op.TRUNCATE:
            return Mutation(MutationKind.TRUNCATE, self.offset)
        if self.kind in (_Op.PWRITE, _Op.PWRITEV):
            return Mutation(
                MutationKind.WRITE, self.offset, b"".join(bytes(b) for b in self.buffers)
            )
        return None


class SimFile(FileBase):
    """A file of a `SimulatorIO`. Each I/O method returns the completion it was given.

    Each raises `CompletionError` at submission: kind `CLOSED` on a closed file (every
    handle is closed by a crash); `IO` with `EBADF` for a write to a read-only file, with
    `EINVAL` for a negative offset, and with `EIO` when a submission fault is injected.
    `pread` raises `IOResultError` for a completion without a buffer. On a handle opened
    with `OpenFlags.APPEND`, writes land at the end of the file when they execute.
    """

    __slots__ = ("_append", "_inode", "_io")

    def __init__(
        self, io: SimulatorIO, path: str, inode: Inode, read_only: bool, append: bool = False
    ) -> None:
        super().__init__(path, read_only)
        self._io = io
        self._inode = inode
        self._append = append

    def pread(self, pos: int, c: Completion) -> Completion:
        self._check_open("pread")
        if c.buffer is None:
            raise IOResultError(f"pread needs a read completion with a buffer, got {c!r}")
        _check_offset(pos, "pread", self._path)
        return self._io._submit(self._inode, self._path, _Op.PREAD, pos, (), c)

    def pwrite(self, pos: int, buffer: Buffer, c: Completion) -> Completion:
        self._check_writable("pwrite")
        _check_offset(pos, "pwrite", self._path)
        return self._io._submit(
            self._inode, self._path, _Op.PWRITE, pos, (buffer,), c, self._append
        )

    def pwritev(self, pos: int, buffers: Sequence[Buffer], c: Completion) -> Completion:
        self._check_writable("pwritev")
        _check_offset(pos, "pwritev", self._path)
        return self._io._submit(
            self._inode, self._path, _Op.PWRITEV, pos, tuple(buffers), c, self._append
        )

    def sync(self, c: Completion) -> Completion:
        self._check_open("sync")
        return self._io._submit(self._inode, self._path, _Op.SYNC, 0, (), c)

    def truncate(self, length: int, c: Completion) -> Completion:
        self._check_writable("truncate")
        _check_offset(length, "truncate", self._path)
        return self._io._submit(self._inode, self._path, _Op.TRUNCATE, length, (), c)

    def size(self) -> int:
        """The size reads see now. Raises `CompletionError` (kind `CLOSED`) if closed."""
        self._check_open("size")
        return len(self._inode.data)

    def _release(self) -> None:
        self._io._open_files.discard(self)


def _check_offset(pos: int, what: str, path: str) -> None:
    if pos < 0:
        raise CompletionError(
            ErrorKind.IO, f"{what} at a negative offset", errno=errno.EINVAL, path=path, offset=pos
        )


class SimulatorIO(BackendBase):
    """A deterministic simulated disk: an `IOBackend` whose I/O completes only when stepped.

    `seed` seeds the one random generator; `faults` says what goes wrong (nothing by
    default); `inline` is the probability that an I/O finishes during its own submission
    (0: every I/O is deferred to `step()`); `defer_at` lists submission numbers always
    deferred; latencies are drawn uniformly from `min_latency_us` to `max_latency_us`
    virtual microseconds; the trace keeps at most `trace_limit` events (`None`: all).

    Raises `SimConfigError` for a probability outside [0, 1], negative latencies, or
    `min_latency_us > max_latency_us`.
    """

    needs_stepping = True

    def __init__(
        self,
        seed: int = 0,
        faults: FaultConfig | None = None,
        *,
        inline: float = 0.0,
        defer_at: Iterable[int] = (),
        min_latency_us: int = 1,
        max_latency_us: int = 1_000,
        trace_limit: int | None = 100_000,
        injector: YieldInjector | None = None,
    ) -> None:
        super().__init__()
        if faults is None:
            faults = FaultConfig()
        if not isinstance(faults, FaultConfig):
            raise SimConfigError(f"faults must be a FaultConfig, got {faults!r}")
        if min_latency_us < 0 or max_latency_us < min_latency_us:
            raise SimConfigError(
                "latencies must satisfy 0 <= min_latency_us <= max_latency_us, got "
                f"{min_latency_us} and {max_latency_us}"
            )
        self.seed = seed
        self.faults = faults
        self.rng = random.Random(seed)
        """The one source of randomness; draw from it (never from `random`) to stay replayable."""
        self.trace = Trace(trace_limit)
        self.stats = SimStats()
        self.injector = injector if injector is not None else YieldInjector()
        """The yield injector `with_yields` wraps operations with."""
        self._fs = FileSystem()
        self._heap: list[tuple[int, int, _Pending]] = []
        self._clock_us = 0
        self._next_io = 0
        self._base_io = 0
        self._inline = 0.0
        self._defer_at: frozenset[int] = frozenset()
        self._min_latency = min_latency_us
        self._max_latency = max_latency_us
        self._open_files: set[SimFile] = set()
        self.configure(inline=inline, defer_at=defer_at)

    # -- schedule ---------------------------------------------------------------------

    def configure(
        self,
        *,
        inline: float | None = None,
        defer_at: Iterable[int] | None = None,
        injector: YieldInjector | None = None,
    ) -> None:
        """Change how later I/O completes: `inline` probability, `defer_at` submission
        numbers (counted from this call), and the yield `injector`. Omitted settings keep
        their value, except that submission numbers always restart at 0.

        Raises `SimConfigError` for `inline` outside [0, 1] or a negative `defer_at` number.
        """
        if inline is not None:
            if not 0.0 <= inline <= 1.0:
                raise SimConfigError(f"inline must be between 0 and 1, got {inline}")
            self._inline = inline
        if defer_at is not None:
            chosen = frozenset(defer_at)
            if any(i < 0 for i in chosen):
                raise SimConfigError(f"defer_at numbers must be >= 0, got {sorted(chosen)}")
            self._defer_at = chosen
        if injector is not None:
            self.injector = injector
        self._base_io = self._next_io

    @property
    def submissions(self) -> int:
        """How many I/Os were submitted (refused ones included) since the last `configure`."""
        return self._next_io - self._base_io

    def with_yields(self, op: Operation[T]) -> InjectYields[T]:
        """`op` wrapped so each of its steps is a yield point of `self.injector`."""
        return InjectYields(op, self.injector)

    def describe(self) -> str:
        """How this simulator was built, for failure messages."""
        return (
            f"SimulatorIO(seed={self.seed}, faults={self.faults}, inline={self._inline}, "
            f"latency={self._min_latency}..{self._max_latency}us)"
        )

    # -- files --------------------------------------------------------------------------

    def open_file(self, path: StrPath, flags: OpenFlags = OpenFlags.NONE) -> SimFile:
        """Open (with `OpenFlags.CREATE`, create) a simulated file. With `EXCLUSIVE` an
        existing file is refused; with `APPEND` every write lands at the end of the file.

        Raises `CompletionError`: kind `IO` with `ENOENT` for a missing file without
        `CREATE`, with `EEXIST` for an existing one with `EXCLUSIVE`; kind `CLOSED` if the
        simulator is closed.
        """
        self._check_open("open_file")
        name = os.fspath(path)
        inode = self._fs.lookup(name)
        if inode is not None and OpenFlags.EXCLUSIVE in flags:
            raise CompletionError(
                ErrorKind.IO, "open failed: file exists", errno=errno.EEXIST, path=name
            )
        if inode is None:
            if OpenFlags.CREATE not in flags:
                raise CompletionError(
                    ErrorKind.IO, "open failed: no such file", errno=errno.ENOENT, path=name
                )
            inode = self._fs.create(name)
            self._event(-1, "create", "", name, None, None, "")
        file = SimFile(self, name, inode, OpenFlags.READ_ONLY in flags, OpenFlags.APPEND in flags)
        self._open_files.add(file)
        return file

    def remove_file(self, path: StrPath) -> None:
        """Unlink `path` (durably, at once); open handles keep reading its data.

        Raises `CompletionError` (`ENOENT`) if missing, or kind `CLOSED`.
        """
        self._check_open("remove_file")
        name = os.fspath(path)
        if not self._fs.remove(name):
            raise CompletionError(
                ErrorKind.IO, "remove failed: no such file", errno=errno.ENOENT, path=name
            )
        self._event(-1, "remove", "", name, None, None, "")

    def create_file(self, path: StrPath, data: Buffer = b"") -> None:
        """Set up `path` with `data`, durable at once and without I/O (for tests' setup).
        Replaces an existing file of that name.

        Raises `CompletionError` (kind `CLOSED`) if the simulator is closed.
        """
        self._check_open("create_file")
        name = os.fspath(path)
        self._fs.create(name, bytes(data))
        self._event(-1, "create", "", name, None, len(data), "durable")

    def files(self) -> list[str]:
        """The names of the files that exist, sorted."""
        return sorted(self._fs.inodes)

    def file_contents(self, path: StrPath) -> bytes:
        """What a read of `path` would see now. Raises `KeyError` if there is no such file."""
        return bytes(self._fs.inodes[os.fspath(path)].data)

    def durable_contents(self, path: StrPath) -> bytes:
        """What of `path` would survive a crash that keeps nothing unsynced.
        Raises `KeyError` if there is no such file."""
        return self._fs.inodes[os.fspath(path)].durable

    def snapshot(self) -> dict[str, bytes]:
        """Every file's visible contents, by name."""
        return {name: bytes(inode.data) for name, inode in sorted(self._fs.inodes.items())}

    # -- progress -----------------------------------------------------------------------

    def now(self) -> float:
        """Virtual time in seconds since the simulator was built."""
        return self._clock_us / 1_000_000

    def now_us(self) -> int:
        """Virtual time in microseconds."""
        return self._clock_us

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward by `seconds` without finishing anything that
        falls due (the next `step()` does). Raises `SimConfigError` if negative."""
        if seconds < 0:
            raise SimConfigError(f"cannot move the clock backwards by {seconds} s")
        self._clock_us += round(seconds * 1_000_000)

    def pending(self) -> int:
        """How many submitted I/Os wait for a `step()` (aborted ones not counted)."""
        return sum(1 for _, _, p in self._heap if not p.completion.finished())

    def step(self, limit: int | None = None) -> int:
        """Advance the clock to the earliest due I/O and execute every I/O due by then (at
        most `limit` of them, in order: the rest stay due for the next step); return how
        many it took off the queue (0 if none was pending). `limit=1` finishes exactly one
        I/O, so a test can crash between any two completions.

        I/O submitted by the completions' callbacks waits for a later step.
        """
        heap = self._heap
        if not heap:
            return 0
        due = heap[0][0]
        self._clock_us = max(self._clock_us, due)
        batch: list[_Pending] = []
        while heap and heap[0][0] <= self._clock_us and (limit is None or len(batch) < limit):
            batch.append(heapq.heappop(heap)[2])
        for p in batch:
            self._execute(p)
        return len(batch)

    def run_until_idle(self, max_steps: int = 1_000_000) -> int:
        """Step until nothing is pending; return how many I/Os were taken off the queue.

        Raises `IOResultError` if I/O is still pending after `max_steps` steps (callbacks
        that keep submitting).
        """
        total = 0
        for _ in range(max_steps):
            done = self.step()
            if done == 0:
                return total
            total += done
        if self._heap:
            raise IOResultError(f"I/O still pending after {max_steps} steps of {self.describe()}")
        return total

    # -- power loss and shutdown ------------------------------------------------------

    def crash(self) -> None:
        """Simulate a power loss.

        Every file is rebuilt from its durable image (what completed syncs covered), plus
        each not-yet-durable write or truncate, including those still in flight, with
        probability `faults.crash_keep_unsynced`, in a random order (with
        `faults.crash_sector`, each sector of a write on its own: torn writes). Every open handle is
        closed (further I/O on it raises `CompletionError` kind `CLOSED`), then every
        pending completion is aborted (`ErrorKind.ABORTED`). Files can be opened again
        at once, as after a reboot.

        Raises `CompletionError` (kind `CLOSED`) if the simulator is closed.
        """
        self._check_open("crash")
        pending = [p for _, _, p in sorted(self._heap, key=_heap_order)]
        self._heap.clear()
        in_flight: dict[str, list[Mutation]] = {}
        for p in pending:
            if p.completion.finished() or self._fs.lookup(p.path) is not p.inode:
                continue
            mutation = p.as_mutation()
            if mutation is not None:
                in_flight.setdefault(p.path, []).append(mutation)
        for file in sorted(self._open_files, key=_file_order):
            file.close()
        faults = self.faults
        kept, lost = self._fs.crash(
            self.rng, faults.crash_keep_unsynced, in_flight, faults.crash_sector
        )
        self.stats.crashes += 1
        self.stats.kept_unsynced += kept
        self.stats.lost_unsynced += lost
        self._event(-1, "crash", "", "", None, None, f"kept {kept} unsynced, lost {lost}")
        self._abort_all(pending)

    def close(self) -> None:
        """Abort what is pending, close every file and the simulator; idempotent."""
        if self.closed:
            return
        pending = [p for _, _, p in sorted(self._heap, key=_heap_order)]
        self._heap.clear()
        for file in sorted(self._open_files, key=_file_order):
            file.close()
        self._abort_all(pending)
        super().close()

    def _abort_all(self, pending: list[_Pending]) -> None:
        for p in pending:
            if not p.completion.finished():
                self.stats.aborted += 1
                where = None if p.kind is _Op.SYNC else p.offset
                self._event(p.io, "abort", p.kind.value, p.path, where, p.length(), "aborted")
                p.completion.abort()

    # -- submission and execution -----------------------------------------------------

    def _submit(
        self,
        inode: Inode,
        path: str,
        kind: _Op,
        offset: int,
        buffers: tuple[Buffer, ...],
        c: Completion,
        append: bool = False,
    ) -> Completion:
        io = self._next_io
        self._next_io += 1
        faults = self.faults
        rng = self.rng
        if faults.submit_error and rng.random() < faults.submit_error:
            self.stats.submit_errors += 1
            where = None if kind is _Op.SYNC else offset
            self._event(io, "refuse", kind.value, path, where, None, "EIO")
            raise CompletionError(
                ErrorKind.IO,
                f"{kind.value} refused at submission (simulated EIO)",
                errno=errno.EIO,
                path=path,
                offset=where,
            )
        fault = _Fault.NONE
        if kind is _Op.PREAD:
            if faults.read_error and rng.random() < faults.read_error:
                fault = _Fault.EIO
            elif faults.short_read and rng.random() < faults.short_read:
                fault = _Fault.SHORT
        elif kind is _Op.SYNC:
            if faults.sync_error and rng.random() < faults.sync_error:
                fault = _Fault.EIO
        elif kind is _Op.TRUNCATE:
            if faults.truncate_error and rng.random() < faults.truncate_error:
                fault = _Fault.EIO
        elif faults.write_error and rng.random() < faults.write_error:
            fault = _Fault.EIO
        elif faults.torn_write and rng.random() < faults.torn_write:
            fault = _Fault.TORN
        p = _Pending(io, kind, inode, path, offset, buffers, c, fault, inode.applied, append)
        self.stats.submitted += 1
        if io - self._base_io in self._defer_at:
            run_inline = False
        elif self._inline >= 1.0:
            run_inline = True
        elif self._inline <= 0.0:
            run_inline = False
        else:
            run_inline = rng.random() < self._inline
        where = None if kind is _Op.SYNC else offset
        if run_inline:
            self.stats.inline += 1
            self._event(io, "submit", kind.value, path, where, p.length(), "inline")
            self._execute(p)
        else:
            due = self._clock_us + rng.randint(self._min_latency, self._max_latency)
            self._event(io, "submit", kind.value, path, where, p.length(), f"due {due}us")
            heapq.heappush(self._heap, (due, io, p))
        return c

    def _execute(self, p: _Pending) -> None:
        c = p.completion
        if c.finished():
            self.stats.dropped += 1
            self._event(
                p.io, "drop", p.kind.value, p.path, p.offset, p.length(), "already finished"
            )
            return
        self.stats.completed += 1
        match p.kind:
            case _Op.PREAD:
                self._execute_read(p, c)
            case _Op.PWRITE | _Op.PWRITEV:
                self._execute_write(p, c)
            case _Op.SYNC:
                if p.fault is _Fault.EIO:
                    self.stats.sync_errors += 1
                    self._fail(p, c, "fsync")
                    return
                moved = p.inode.make_durable(p.upto)
                self._event(p.io, "complete", "sync", p.path, None, None, f"ok ({moved} durable)")
                c.complete(0)
            case _Op.TRUNCATE:
                if p.fault is _Fault.EIO:
                    self.stats.truncate_errors += 1
                    self._fail(p, c, "ftruncate")
                    return
                p.inode.apply(Mutation(MutationKind.TRUNCATE, p.offset))
                self._event(p.io, "complete", "truncate", p.path, p.offset, None, "ok")
                c.complete(0)

    def _execute_read(self, p: _Pending, c: Completion) -> None:
        if p.fault is _Fault.EIO:
            self.stats.read_errors += 1
            self._fail(p, c, "pread")
            return
        buffer = c.buffer
        assert buffer is not None  # checked at submission
        data = p.inode.data
        count = min(len(buffer), max(0, len(data) - p.offset))
        outcome = f"ok {count}"
        if p.fault is _Fault.SHORT and count > 0:
            self.stats.short_reads += 1
            short = self.rng.randrange(count)
            outcome = f"short {short} of {count}"
            count = short
        buffer[:count] = data[p.offset : p.offset + count]
        self._event(p.io, "complete", "pread", p.path, p.offset, len(buffer), outcome)
        c.complete(count)

    def _execute_write(self, p: _Pending, c: Completion) -> None:
        if p.fault is _Fault.EIO:
            self.stats.write_errors += 1
            self._fail(p, c, p.kind.value)
            return
        data = b"".join(bytes(b) for b in p.buffers)
        if p.append:
            p.offset = len(p.inode.data)  # O_APPEND: the end as it is now, not as passed
        landed = len(data)
        if p.fault is _Fault.TORN and data:
            self.stats.torn_writes += 1
            landed = self.rng.randrange(len(data))
        if landed:
            p.inode.apply(Mutation(MutationKind.WRITE, p.offset, data[:landed]))
        if landed == len(data):
            self._event(p.io, "complete", p.kind.value, p.path, p.offset, len(data), f"ok {landed}")
            c.complete(landed)
            return
        self._event(p.io, "complete", p.kind.value, p.path, p.offset, len(data), f"torn {landed}")
        if self.faults.torn_write_result is TornWriteResult.SHORT_COUNT:
            c.complete(landed)
        else:
            c.error(
                CompletionError(
                    ErrorKind.SHORT_WRITE,
                    f"{p.kind.value} torn (simulated): only part of the data landed",
                    path=p.path,
                    offset=p.offset,
                    expected=len(data),
                    actual=landed,
                )
            )

    def _fail(self, p: _Pending, c: Completion, what: str) -> None:
        self._event(p.io, "complete", p.kind.value, p.path, p.offset, p.length(), "EIO")
        c.error(
            CompletionError(
                ErrorKind.IO,
                f"{what} failed (simulated EIO)",
                errno=errno.EIO,
                path=p.path,
                offset=p.offset if p.kind is not _Op.SYNC else None,
            )
        )

    def _event(
        self,
        io: int,
        event: str,
        op: str,
        path: str,
        offset: int | None,
        length: int | None,
        outcome: str,
    ) -> None:
        self.trace.record(TraceEvent(self._clock_us, io, event, op, path, offset, length, outcome))

    def __repr__(self) -> str:
        return f"<{self.describe()} t={self.now():.6f}s pending={len(self._heap)}>"


def _heap_order(entry: tuple[int, int, _Pending]) -> tuple[int, int]:
    return entry[0], entry[1]


def _file_order(file: SimFile) -> str:
    return file.path
