"""`rowid_position` finds where a rowid goes in a page's rowids exactly as `bisect` does.

Compiled, it is a loop of its own (see `core.storage.btree`); these run in both suites.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from hypothesis import given
from hypothesis import strategies as st

from core.storage.btree import rowid_position

ROWIDS = st.lists(st.integers(-(2**63), 2**63 - 1), max_size=300).map(sorted)
PROBE = st.integers(-(2**63), 2**63 - 1)


@given(ROWIDS, PROBE)
def test_it_matches_bisect(rowids: list[int], rowid: int) -> None:
    assert rowid_position(rowids, rowid) == bisect_left(rowids, rowid)
    assert rowid_position(rowids, rowid, True) == bisect_right(rowids, rowid)


@given(ROWIDS.filter(bool), st.data())
def test_a_rowid_on_the_page_is_found_at_its_first_index(
    rowids: list[int], data: st.DataObject
) -> None:
    rowid = data.draw(st.sampled_from(rowids))
    i = rowid_position(rowids, rowid)
    assert rowids[i] == rowid and (i == 0 or rowids[i - 1] < rowid)
    j = rowid_position(rowids, rowid, True)
    assert rowids[j - 1] == rowid and (j == len(rowids) or rowids[j] > rowid)


def test_edges() -> None:
    assert rowid_position([], 5) == 0 == rowid_position([], 5, True)
    assert rowid_position([1, 2, 2, 3], 2) == 1
    assert rowid_position([1, 2, 2, 3], 2, True) == 3
    assert rowid_position([1, 2, 3], 0) == 0
    assert rowid_position([1, 2, 3], 4) == 3
