"""The simulated file system: file contents, what is durable, and what a crash leaves.

Theory of operation (the durability model):
- Each file (an `Inode`) has two images: `data`, what reads see now, and `durable`, what
  survives a power loss. Every write or truncate applied to `data` is also appended to the
  inode's journal as a `Mutation` with an increasing sequence number.
- A sync notes, when it is *submitted*, how many mutations had been applied (`applied`); when
  it *completes* successfully, exactly those mutations are replayed onto `durable` and leave
  the journal. So a sync covers the writes that finished before it was issued, as fsync(2)
  does, and not those that were still in flight or finished after: a sync that overtakes a
  write does not make that write durable.
- A crash rebuilds every file from `durable` plus a random subset, in a random order, of
  the mutations that were not yet durable (the journal, plus writes still in flight):
  whatever survives becomes the new durable image and the journal is emptied. With a
  sector size, each write first splits at the sector boundaries of the file into pieces
  that survive (or not) on their own: a torn write, as a disk that writes whole sectors
  atomically, but not whole requests, leaves it.
- The namespace (creating and removing files) is durable at once: only contents follow
  sync. A removed file stays readable through handles already open, as an unlinked inode
  does, and is gone after a crash.
"""

from __future__ import annotations

import dataclasses
import enum
import random

__all__ = ["FileSystem", "Inode", "Mutation", "MutationKind"]


class MutationKind(enum.Enum):
    """What a mutation does."""

    WRITE = "write"
    TRUNCATE = "truncate"


@dataclasses.dataclass(frozen=True, slots=True)
class Mutation:
    """One change to a file: a write of `data` at `offset`, or a truncate to `offset`."""

    kind: MutationKind
    offset: int
    data: bytes = b""

    def apply(self, image: bytearray) -> None:
        """Apply to `image` in place (a write past the end zero-fills the gap)."""
        if self.kind is MutationKind.WRITE:
            if not self.data:
                return  # a zero-length write changes nothing, not even the size
            end = self.offset + len(self.data)
            if end > len(image):
                image.extend(bytes(end - len(image)))
            image[self.offset : end] = self.data
        elif self.offset < len(image):
            del image[self.offset :]
        else:
            image.extend(bytes(self.offset - len(image)))


class Inode:
    """One file's contents: the visible image, the durable image and the journal between."""

    __slots__ = ("applied", "data", "durable", "journal", "name")

    def __init__(self, name: str, data: bytes = b"") -> None:
        self.name = name
        self.data = bytearray(data)
        self.durable = bytes(data)
        self.journal: list[tuple[int, Mutation]] = []
        self.applied = 0
        """How many mutations have been applied to `data` so far (the next sequence number)."""

    def apply(self, mutation: Mutation) -> None:
        """Apply `mutation` to the visible image and journal it as not yet durable."""
        mutation.apply(self.data)
        self.journal.append((self.applied, mutation))
        self.applied += 1

    def make_durable(self, upto: int) -> int:
        """Make the mutations numbered below `upto` durable; return how many it moved."""
        moved = 0
        image: bytearray | None = None
        while self.journal and self.journal[0][0] < upto:
            if image is None:
                image = bytearray(self.durable)
            self.journal.pop(0)[1].apply(image)
            moved += 1
        if image is not None:
            self.durable = bytes(image)
        return moved

    def unsynced(self) -> list[Mutation]:
        """The mutations applied but not yet durable, oldest first."""
        return [m for _, m in self.journal]

    def reset(self, image: bytes) -> None:
        """After a crash: `image` is both what reads see and what is durable."""
        self.data = bytearray(image)
        self.durable = bytes(image)
        self.journal.clear()


class FileSystem:
    """Named inodes. Knows nothing of handles, time or faults; the backend does."""

    __slots__ = ("inodes",)

    def __init__(self) -> None:
        self.inodes: dict[str, Inode] = {}

    def lookup(self, name: str) -> Inode | None:
        """The inode named `name`, or `None`."""
        return self.inodes.get(name)

    def create(self, name: str, data: bytes = b"") -> Inode:
        """Create (or replace) `name` with `data`, durable at once."""
        inode = self.inodes[name] = Inode(name, data)
        return inode

    def remove(self, name: str) -> bool:
        """Unlink `name`; return whether it existed."""
        return self.inodes.pop(name, None) is not None

    def crash(
        self,
        rng: random.Random,
        keep: float,
        in_flight: dict[str, list[Mutation]],
        sector: int = 0,
    ) -> tuple[int, int]:
        """Rebuild every named file as a power loss leaves it.

        Each not-yet-durable mutation (the journal, then `in_flight[name]`; with `sector`
        > 0, each sector-aligned piece of a write) survives with probability `keep`;
        survivors are applied over the durable image in a random order. Returns how many
        mutations (or pieces) were kept and how many lost.
        """
        kept_total = 0
        lost_total = 0
        for name in sorted(self.inodes):
            inode = self.inodes[name]
            candidates = inode.unsynced() + in_flight.get(name, [])
            if sector > 0:
                candidates = [piece for m in candidates for piece in _sectors(m, sector)]
            kept: list[Mutation] = []
            if keep > 0.0:
                kept = [m for m in candidates if rng.random() < keep]
                rng.shuffle(kept)
            image = bytearray(inode.durable)
            for mutation in kept:
                mutation.apply(image)
            inode.reset(bytes(image))
            kept_total += len(kept)
            lost_total += len(candidates) - len(kept)
        return kept_total, lost_total


def _sectors(mutation: Mutation, sector: int) -> list[Mutation]:
    """`mutation` cut at the file's `sector`-byte boundaries (a truncate stays whole)."""
    data = mutation.data
    if mutation.kind is not MutationKind.WRITE or not data:
        return [mutation]
    start = mutation.offset
    end = start + len(data)
    pieces: list[Mutation] = []
    at = start
    while at < end:
        stop = min(end, (at // sector + 1) * sector)
        pieces.append(Mutation(MutationKind.WRITE, at, data[at - start : stop - start]))
        at = stop
    return pieces
