"""What can go wrong on the simulated disk, and how often (Turso `testing/simulator`'s fault
flags, made into one documented dataclass).

Theory of operation:
- Every knob is a probability in [0, 1], drawn per I/O from the simulator's one
  `random.Random(seed)`; all default to 0, so `FaultConfig()` is a perfect disk.
- The decision for an I/O (fails at submission? fails later? short? torn?) is drawn when it
  is submitted, so the same seed and the same submissions give the same faults whatever
  the completions do afterwards. How short a short read is, and how much of a torn write
  lands, are drawn when the I/O executes.
- A crash is not a probability: a test calls `SimulatorIO.crash()` where it wants one.
  `crash_keep_unsynced` says how much of what was never made durable survives it, and
  `crash_sector` whether a write survives whole or sector by sector (torn).
"""

from __future__ import annotations

import dataclasses
import enum

from core.sim.errors import SimConfigError

__all__ = ["FaultConfig", "TornWriteResult"]


class TornWriteResult(enum.Enum):
    """How a torn write reports itself."""

    ERROR = "error"
    """The completion fails with `ErrorKind.SHORT_WRITE` (`expected` = bytes submitted,
    `actual` = bytes that landed). This is the default because `File.pwrite` promises to
    write everything or fail: a real backend (`UnixIO`'s `write_fully`) retries a partial
    `pwrite(2)` itself, so a write left torn is a device failure, not a count to check."""
    SHORT_COUNT = "short count"
    """The completion succeeds with the count that landed, as a bare `pwrite(2)` does. Use
    it to check that operations verify write counts (core's `WriteBuffers` turns a short
    count into `SHORT_WRITE`)."""


@dataclasses.dataclass(frozen=True, slots=True)
class FaultConfig:
    """Fault probabilities for a `SimulatorIO`; every one is 0 (never) by default.

    Raises `SimConfigError` if a probability is outside [0, 1], `torn_write_result` is
    not a `TornWriteResult`, or `crash_sector` is not an integer >= 0.
    """

    submit_error: float = 0.0
    """An I/O fails at once: `pread`/`pwrite`/`pwritev`/`sync`/`truncate` raises
    `CompletionError` (kind `IO`, errno `EIO`) and nothing is queued (the first error
    channel)."""
    read_error: float = 0.0
    """A read finishes with `CompletionError` (kind `IO`, `EIO`); the buffer is untouched."""
    write_error: float = 0.0
    """A write finishes with `EIO`; none of its bytes land."""
    sync_error: float = 0.0
    """A sync finishes with `EIO`; nothing becomes durable (the writes it would have
    covered stay volatile until a later sync succeeds)."""
    truncate_error: float = 0.0
    """A truncate finishes with `EIO`; the size is unchanged."""
    short_read: float = 0.0
    """A read succeeds with fewer bytes than were available (a random count from 0 up to
    one less than available), as `pread(2)` may. `File.pread` promises a short count
    only at the end of the file, so an operation that takes a short count for the end
    of the file returns too few bytes; one that needs an exact count reports
    `SHORT_READ`."""
    torn_write: float = 0.0
    """A write lands only a random prefix of its bytes (possibly none), reported as
    `torn_write_result` says."""
    torn_write_result: TornWriteResult = TornWriteResult.ERROR
    """How a torn write reports itself; see `TornWriteResult`."""
    crash_keep_unsynced: float = 0.0
    """At `crash()`, the probability that each write (or truncate) not yet made durable by
    a completed sync, including those still in flight, survives anyway. Survivors are
    applied over the durable image in a random order, as a disk's write cache may
    flush them; the rest are lost. 0 means a crash keeps exactly the synced data."""
    crash_sector: int = 0
    """At `crash()`, the unit in which a write not yet durable survives: 0, the whole write
    or nothing of it; a size in bytes (512, as disks guarantee), each aligned sector of the
    write on its own, so a crash tears a write at sector boundaries. Each sector is then
    kept with probability `crash_keep_unsynced`, and the kept ones land in a random order.
    Truncates always survive whole. Not a probability: an integer >= 0."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "crash_sector":
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise SimConfigError(
                        f"FaultConfig.crash_sector must be a size in bytes >= 0, got {value!r}"
                    )
                continue
            if field.name == "torn_write_result":
                if not isinstance(value, TornWriteResult):
                    raise SimConfigError(
                        f"FaultConfig.torn_write_result must be a TornWriteResult, got {value!r}"
                    )
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SimConfigError(
                    f"FaultConfig.{field.name} must be a probability (a float), got {value!r}"
                )
            if not 0.0 <= value <= 1.0:
                raise SimConfigError(
                    f"FaultConfig.{field.name} must be between 0 and 1, got {value!r}"
                )

    @classmethod
    def uniform(cls, probability: float, *, crash_keep_unsynced: float = 0.5) -> FaultConfig:
        """Every I/O fault at the same `probability` (crashes keep `crash_keep_unsynced`).

        Raises `SimConfigError` for a probability outside [0, 1].
        """
        return cls(
            submit_error=probability,
            read_error=probability,
            write_error=probability,
            sync_error=probability,
            truncate_error=probability,
            short_read=probability,
            torn_write=probability,
            crash_keep_unsynced=crash_keep_unsynced,
        )

    def any_io_faults(self) -> bool:
        """True if any per-I/O fault can happen (crashes aside)."""
        return any(
            (
                self.submit_error,
                self.read_error,
                self.write_error,
                self.sync_error,
                self.truncate_error,
                self.short_read,
                self.torn_write,
            )
        )
