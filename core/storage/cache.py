"""The page cache: a bounded LRU map from page number to `Page` (Turso `page_cache.rs`).

Rules:
- A hit moves the page to the most-recently-used end and does no I/O at all.
- Only whole, successfully read pages enter (the pager enforces it); a full cache evicts the
  least recently used page. Pages are immutable, so an evicted page stays valid for whoever
  still holds it (a cursor's stack); it is only forgotten here.
- What was parsed from a page (cells, decoded keys) lives on the `Page`, so it is cached and
  evicted together with the bytes.
"""

from __future__ import annotations

from collections import OrderedDict

from core.storage.page import Page

__all__ = ["PageCache"]


class PageCache:
    """An LRU cache of at most `capacity` pages."""

    __slots__ = ("_pages", "capacity", "hits", "misses")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"the page cache needs room for at least 1 page, got {capacity}")
        self.capacity = capacity
        self._pages: OrderedDict[int, Page] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def pages(self) -> OrderedDict[int, Page]:
        """The map itself, for walks that look up several pages in a row without I/O; such
        a walk calls `touch` for the pages it used, to keep the LRU order and the counts."""
        return self._pages

    def touch(self, numbers: list[int]) -> None:
        """Count hits on `numbers` and make them the most recently used."""
        pages = self._pages
        for number in numbers:
            pages.move_to_end(number)  # compiled: a method call, no bound method object
        self.hits += len(numbers)

    def get(self, number: int) -> Page | None:
        """The cached page `number` (now most recently used), or None."""
        page = self._pages.get(number)
        if page is None:
            self.misses += 1
            return None
        self.hits += 1
        self._pages.move_to_end(number)
        return page

    def peek(self, number: int) -> Page | None:
        """The cached page without touching its recency or the statistics."""
        return self._pages.get(number)

    def put(self, page: Page) -> None:
        """Insert (or refresh) a page, evicting the least recently used beyond capacity."""
        pages = self._pages
        pages[page.number] = page
        pages.move_to_end(page.number)
        if len(pages) > self.capacity:
            pages.popitem(last=False)

    def discard(self, number: int) -> None:
        """Forget page `number` if cached."""
        self._pages.pop(number, None)

    def clear(self) -> None:
        """Forget every page."""
        self._pages.clear()

    def __len__(self) -> int:
        return len(self._pages)

    def __contains__(self, number: object) -> bool:
        return number in self._pages
