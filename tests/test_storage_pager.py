"""The pager and its cache: hits cost no I/O, the cache is a bounded LRU, failed or short
reads are never cached, reads in flight are shared, read-ahead is one group."""

from __future__ import annotations

import pytest

from core import Completion, CompletionError, ErrorKind
from core.io.common import FileBase
from core.storage import CorruptDatabaseError
from core.storage.cache import PageCache
from core.storage.page import Page, PageLayout
from core.storage.pager import PageLoader, Pager

PAGE = 512


class HeldFile(FileBase):
    """A file whose reads stay pending until the test finishes them."""

    def __init__(self, pages: int) -> None:
        super().__init__("held.db", read_only=True)
        self.pending: list[tuple[int, Completion]] = []
        self.pages = pages

    def pread(self, pos: int, c: Completion) -> Completion:
        self.pending.append((pos, c))
        return c

    def size(self) -> int:
        return self.pages * PAGE

    def finish(self, *, short: bool = False, error: bool = False) -> None:
        pending, self.pending = self.pending, []
        for pos, c in pending:
            if error:
                c.error(CompletionError(ErrorKind.IO, "boom", errno=5, offset=pos))
                continue
            assert c.buffer is not None
            n = len(c.buffer) // 2 if short else len(c.buffer)
            c.buffer[:n] = bytes([pos // PAGE % 256]) * n
            c.complete(n)


def _pager(pages: int = 20, cache: int = 8, readahead: int = 4) -> tuple[HeldFile, Pager]:
    f = HeldFile(pages)
    pager = Pager(f, PageLayout(PAGE, PAGE), cache_pages=cache, readahead=readahead)
    pager.page_count = pages
    return f, pager


def test_cache_is_a_bounded_lru() -> None:
    cache = PageCache(2)
    a, b, c = Page(1, b"a"), Page(2, b"b"), Page(3, b"c")
    cache.put(a)
    cache.put(b)
    assert cache.get(1) is a  # 1 is now the most recent
    cache.put(c)  # evicts 2
    assert 2 not in cache and 1 in cache and 3 in cache
    assert (cache.hits, cache.misses) == (1, 0)
    assert cache.get(2) is None and cache.misses == 1
    with pytest.raises(ValueError, match="at least 1"):
        PageCache(0)


def test_cached_page_costs_no_io() -> None:
    f, pager = _pager()
    loader = PageLoader(pager)
    assert loader.load(3) is None
    c = loader.wait
    assert not c.finished() and len(f.pending) == 1
    f.finish()
    page = loader.load(3)
    assert page is not None and page.data[:1] == b"\x02"
    assert pager.reads == 1
    assert loader.load(3) is page  # from the cache: nothing submitted
    assert f.pending == [] and pager.reads == 1


def test_reentry_before_completion_does_not_read_twice() -> None:
    f, pager = _pager()
    loader = PageLoader(pager)
    assert loader.load(5) is None
    first = loader.wait
    assert loader.load(5) is None  # re-entered early: same read, nothing new
    assert loader.wait is first and len(f.pending) == 1


def test_reads_in_flight_are_shared() -> None:
    f, pager = _pager()
    one, two = PageLoader(pager), PageLoader(pager)
    assert one.load(4) is None and two.load(4) is None
    assert len(f.pending) == 1
    f.finish()
    assert one.load(4) is two.load(4)


def test_failed_read_is_not_cached() -> None:
    f, pager = _pager()
    loader = PageLoader(pager)
    assert loader.load(6) is None
    f.finish(error=True)
    with pytest.raises(CompletionError, match="boom"):
        loader.load(6)
    assert 6 not in pager.cache
    assert loader.load(6) is None  # tried again
    assert len(f.pending) == 1


def test_short_read_is_not_cached_and_is_corruption() -> None:
    f, pager = _pager()
    loader = PageLoader(pager)
    assert loader.load(7) is None
    f.finish(short=True)
    with pytest.raises(CorruptDatabaseError, match="truncated: read 256 of 512") as info:
        loader.load(7)
    assert info.value.page == 7
    assert 7 not in pager.cache


def test_page_number_out_of_range() -> None:
    _f, pager = _pager(pages=5)
    with pytest.raises(CorruptDatabaseError, match="page 6 is out of range"):
        pager.read(6)
    with pytest.raises(CorruptDatabaseError, match="page 0 is out of range"):
        pager.read(0)


def test_read_ahead_is_one_group() -> None:
    f, pager = _pager(cache=16)
    pager.cache.put(Page(11, bytes(PAGE)))
    loader = PageLoader(pager)
    # 11 is cached, 99 is out of range: neither is read.
    assert loader.load(10, [11, 12, 13, 99]) is None
    group = loader.wait
    assert sorted(pos // PAGE + 1 for pos, _ in f.pending) == [10, 12, 13]
    assert pager.reads == 3
    f.pending[0][1].complete(PAGE)  # one child alone does not finish the group
    assert not group.finished()
    f.finish()
    assert group.finished()
    assert loader.load(10) is not None
    assert 12 in pager.cache and 13 in pager.cache


def test_read_ahead_is_bounded_by_the_cache() -> None:
    _f, pager = _pager(cache=8, readahead=100)
    assert pager.readahead == 2


def test_invalidated_reads_are_not_cached() -> None:
    f, pager = _pager()
    loader = PageLoader(pager)
    assert loader.load(2) is None
    pager.invalidate()
    f.finish()
    page = loader.load(2)  # the waiter still gets what it read...
    assert page is not None
    assert 2 not in pager.cache  # ...but it is not trusted for later readers
