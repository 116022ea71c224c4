"""The pager: pages by number, through the cache or a `File.pread` (Turso `pager.rs`,
`read_page` and `begin_read_page`).

Theory of operation:
- `Pager.read(number)` returns a `PageRead`: the page's read completion (already submitted)
  and, once it finishes, the `Page`. A cached page never gets here: callers ask the cache
  first, and a hit costs no completion and no I/O.
- The read's own completion callback turns the buffer into a `Page` and caches it, so the
  page is in place before anyone sees the completion finished. A read that failed or came
  back short is never cached; a short one records a `CorruptDatabaseError` (the file ends
  inside the page) that the waiter raises.
- A page already being read is not read twice: waiters share the `PageRead`.
- Read-ahead: `read(number, ahead)` also submits reads for the pages in `ahead` that are
  neither cached nor in flight, all children of one `CompletionGroup` linked before any is
  submitted; the waiter waits for the whole group, so a scan gets the next leaves of an
  interior page in one batch.
- In WAL mode the pager reads a page from the WAL frame that holds its latest committed
  version (the `wal_frames` map of the current snapshot), otherwise from the database file.
- `invalidate` bumps a generation: reads still in flight from before it finish but are not
  cached, since what they read may be stale.
- `PageLoader` is the re-entrancy-safe way to wait for one page: it keeps the `PageRead`
  it yielded and, on re-entry, hands over that page instead of reading again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from core.completion import Completion, CompletionGroup
from core.errors import CompletionError
from core.io.backend import File
from core.storage.cache import PageCache
from core.storage.errors import CorruptDatabaseError
from core.storage.page import Page, PageLayout

__all__ = ["PageLoader", "PageRead", "Pager"]

WAL_HEADER_SIZE: Final = 32
WAL_FRAME_HEADER_SIZE: Final = 24


class PageRead:
    """One page read in flight (or finished): its completion, then its page or error."""

    __slots__ = ("buffer", "completion", "error", "generation", "number", "page", "pager", "wait")

    def __init__(self, pager: Pager, number: int, size: int) -> None:
        self.pager = pager
        self.number = number
        self.generation = pager.generation
        self.buffer = bytearray(size)
        self.page: Page | None = None
        self.error: CorruptDatabaseError | None = None
        self.completion = Completion.new_read(self.buffer, self._on_read)
        self.wait: Completion = self.completion
        """What to wait for: this read's completion, or the read-ahead group it leads."""

    def _on_read(self, outcome: int | CompletionError) -> CompletionError | None:
        pager = self.pager
        if pager._in_flight.get(self.number) is self:
            del pager._in_flight[self.number]
        if isinstance(outcome, int):
            if outcome != len(self.buffer):
                self.error = CorruptDatabaseError(
                    f"file is truncated: read {outcome} of {len(self.buffer)} bytes",
                    page=self.number,
                    path=pager.path,
                )
            else:
                page = Page(self.number, bytes(self.buffer))
                self.page = page
                if self.generation == pager.generation:
                    pager.cache.put(page)
        self.buffer = bytearray()  # the page owns a copy; drop the buffer early
        return None

    def result(self) -> Page:
        """The page, once `completion` finished.

        Raises the completion's `CompletionError` if the read failed, or
        `CorruptDatabaseError` if it came back short.
        """
        error = self.completion.get_error()
        if error is not None:
            raise error
        if self.error is not None:
            raise self.error
        page = self.page
        assert page is not None, "PageRead.result() before the read finished"
        return page


class Pager:
    """Reads pages of one database (and its WAL) through a bounded page cache."""

    __slots__ = (
        "_in_flight",
        "cache",
        "db_file",
        "generation",
        "layout",
        "page_count",
        "path",
        "readahead",
        "reads",
        "wal_file",
        "wal_frames",
    )

    def __init__(
        self, db_file: File, layout: PageLayout, *, cache_pages: int, readahead: int
    ) -> None:
        self.db_file = db_file
        self.path = db_file.path
        self.layout = layout
        self.cache = PageCache(cache_pages)
        self.readahead = max(0, min(readahead, cache_pages // 4))
        """How many pages a scan reads ahead (bounded so they cannot evict each other)."""
        self.page_count = 0
        """Pages in the database as of the current snapshot; larger numbers are corrupt."""
        self.wal_file: File | None = None
        self.wal_frames: dict[int, int] = {}
        """Page number -> WAL frame number (1-based) of its latest committed version."""
        self.generation = 0
        self.reads = 0
        """Page reads submitted so far (each one `pread`)."""
        self._in_flight: dict[int, PageRead] = {}

    def read(self, number: int, ahead: Sequence[int] = ()) -> PageRead:
        """Submit a read of page `number` (plus read-ahead of `ahead`); return its `PageRead`.

        Raises `CorruptDatabaseError` for a page number outside the database, and whatever
        the file raises at submission (`CompletionError`).
        """
        if not 1 <= number <= self.page_count:
            raise CorruptDatabaseError(
                f"page {number} is out of range (the database has {self.page_count} pages)",
                path=self.path,
            )
        existing = self._in_flight.get(number)
        if existing is not None:
            return existing
        main = PageRead(self, number, self.layout.page_size)
        reads = [main]
        if ahead:
            cache = self.cache
            in_flight = self._in_flight
            for extra in ahead:
                if (
                    extra != number
                    and 1 <= extra <= self.page_count
                    and extra not in cache
                    and extra not in in_flight
                ):
                    reads.append(PageRead(self, extra, self.layout.page_size))
        if len(reads) > 1:
            group = CompletionGroup()
            for r in reads:
                group.add(r.completion)
            main.wait = group.build()
        for r in reads:
            self._in_flight[r.number] = r
        try:
            for r in reads:
                file, offset = self._locate(r.number)
                self.reads += 1
                file.pread(offset, r.completion)
        except BaseException:
            for r in reads:
                if self._in_flight.get(r.number) is r:
                    del self._in_flight[r.number]
                if not r.completion.finished():
                    r.completion.abort()
            raise
        return main

    def _locate(self, number: int) -> tuple[File, int]:
        frame = self.wal_frames.get(number) if self.wal_frames else None
        if frame is not None and self.wal_file is not None:
            size = self.layout.page_size
            offset = (
                WAL_HEADER_SIZE
                + (frame - 1) * (WAL_FRAME_HEADER_SIZE + size)
                + WAL_FRAME_HEADER_SIZE
            )
            return self.wal_file, offset
        return self.db_file, (number - 1) * self.layout.page_size

    def invalidate(self, numbers: Sequence[int] | None = None) -> None:
        """Forget cached pages (`numbers`, or all) and disown reads in flight."""
        self.generation += 1
        self._in_flight.clear()
        if numbers is None:
            self.cache.clear()
        else:
            for number in numbers:
                self.cache.discard(number)


class PageLoader:
    """Waits for one page at a time, safely across re-entry.

    `load(n)` returns the page if it is cached or its read has finished, otherwise None;
    the caller then yields `wait`. Re-entering and calling `load(n)` again takes the page
    from the kept `PageRead` rather than submitting a second read.
    """

    __slots__ = ("_read", "pager")

    def __init__(self, pager: Pager) -> None:
        self.pager = pager
        self._read: PageRead | None = None

    def load(self, number: int, ahead: Sequence[int] = ()) -> Page | None:
        """The page, or None after submitting (or while waiting for) its read.

        Raises what `Pager.read` and `PageRead.result` raise.
        """
        read = self._read
        if read is not None and read.number == number:
            if not read.wait.finished():
                return None
            self._read = None
            return read.result()
        page = self.pager.cache.get(number)
        if page is not None:
            return page
        read = self.pager.read(number, ahead)
        if read.wait.finished():
            return read.result()
        self._read = read
        return None

    @property
    def wait(self) -> Completion:
        """The completion to yield after `load` returned None."""
        read = self._read
        assert read is not None, "PageLoader.wait without a pending read"
        return read.wait

    def reset(self) -> None:
        """Forget a pending read (the operation was abandoned or restarted)."""
        self._read = None
