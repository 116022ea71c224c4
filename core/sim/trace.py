"""The simulator's trace: one line per I/O event, in the order they happened.

Theory of operation:
- An event is recorded when an I/O is submitted (with the virtual time it is due), when it
  completes (with its outcome), when it fails at submission, when a completion is dropped
  because it was already finished (aborted) before its turn came, and for files created,
  removed or rebuilt by a crash.
- Events hold only plain values (ints and strings), and `str(event)` formats them the same
  way on every run, so two traces compare with `==`, and `Trace.digest()` gives a short
  fingerprint: the same seed and the same operations give the same trace, byte for byte.
- Times are virtual microseconds; `str()` prints them as seconds with six decimals.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

__all__ = ["Trace", "TraceEvent"]


@dataclasses.dataclass(frozen=True, slots=True)
class TraceEvent:
    """One event: `time_us` (virtual), `io` (submission number, -1 for events that are not
    an I/O), `event` (``submit``, ``complete``, ``refuse``, ``drop``, ``crash``, ...), `op`
    (``pread``, ``pwrite``, ``sync``, ...), `path`, `offset`, `length` and `outcome`."""

    time_us: int
    io: int
    event: str
    op: str
    path: str
    offset: int | None
    length: int | None
    outcome: str

    def __str__(self) -> str:
        seconds, micros = divmod(self.time_us, 1_000_000)
        head = f"{seconds}.{micros:06d}"
        ident = f"#{self.io}" if self.io >= 0 else "-"
        where = f" {self.path!r}" if self.path else ""
        if self.offset is not None:
            where += f" off={self.offset}"
        if self.length is not None:
            where += f" len={self.length}"
        tail = f" -> {self.outcome}" if self.outcome else ""
        op = f" {self.op}" if self.op else ""
        return f"{head} {ident} {self.event}{op}{where}{tail}"


class Trace:
    """The ordered events of one `SimulatorIO`; compare two with `==` or `digest()`."""

    __slots__ = ("_events", "_limit", "dropped")

    def __init__(self, limit: int | None = None) -> None:
        self._events: list[TraceEvent] = []
        self._limit = limit
        self.dropped = 0
        """How many of the oldest events were discarded to stay within `limit`."""

    def record(self, event: TraceEvent) -> None:
        """Append `event` (discarding the oldest half when over the limit)."""
        self._events.append(event)
        if self._limit is not None and len(self._events) > self._limit:
            cut = len(self._events) - self._limit // 2
            del self._events[:cut]
            self.dropped += cut

    @property
    def events(self) -> list[TraceEvent]:
        """The events, oldest first (a copy)."""
        return list(self._events)

    def lines(self) -> list[str]:
        """One formatted line per event."""
        return [str(e) for e in self._events]

    def format(self, last: int | None = None) -> str:
        """The trace as text, one event a line; only the `last` events if given."""
        events = self._events if last is None else self._events[-last:]
        head = [f"... {self.dropped} earlier events dropped"] if self.dropped else []
        if last is not None and len(self._events) > last:
            head.append(f"... {len(self._events) - last} earlier events not shown")
        return "\n".join(head + [str(e) for e in events])

    def digest(self) -> str:
        """A SHA-256 hex digest of the formatted trace."""
        h = hashlib.sha256()
        for e in self._events:
            h.update(str(e).encode())
            h.update(b"\n")
        return h.hexdigest()

    def first_difference(self, other: Trace) -> str | None:
        """Where two traces first differ, as text; `None` if they are equal."""
        for i, (a, b) in enumerate(zip(self._events, other._events, strict=False)):
            if a != b:
                return f"event {i}: {a} != {b}"
        if len(self._events) != len(other._events):
            return f"lengths differ: {len(self._events)} != {len(other._events)} events"
        return None

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[TraceEvent]:
        return iter(list(self._events))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trace) and self._events == other._events

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"<Trace {len(self._events)} events>"
