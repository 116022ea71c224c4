"""A statement of a write transaction, on the kernel: plan against staged changes, read
what is missing, plan again, adopt (the write side of Turso's `return_if_io!` discipline).

Theory of operation:
- A statement (insert, update, delete, DDL) is a machine with two states. PLAN runs the
  statement's `_plan(changes)` synchronously against a fresh `Changes` over the
  transaction's pages. If planning needs a page that is not in memory it raises
  `NeedPage`; the statement submits that page's read and goes to READ. READ takes the
  page (with the pages `NeedPage.ahead` says come next, read in the same batch: a scan
  asks for all the missing children of an interior page at once), pins them for the rest
  of the statement (so a concurrent reader evicting them from the cache cannot starve
  the statement), and goes back to PLAN, which starts over with nothing staged.
- Only a plan that ran to the end is adopted, in the same step, by one call
  (`TransactionPages.adopt`), followed by `_applied(value)` for what is not a page (the
  schema after DDL). So nothing is ever applied before a yield, and a statement that
  raised (a constraint, a bad value, a corrupt page) leaves nothing behind: the
  transaction stays usable, as after a failed statement in SQLite.
- Statements of one transaction may be driven concurrently (several tasks): each plan
  runs within one step on the current pages, so they simply serialize.
- Re-planning costs CPU, never I/O: each restart has one more page in memory. A cold
  statement restarts once per page it reads (a few per B-tree level).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Final, TypeVar

from mypy_extensions import mypyc_attr

from core.result import IO, Done
from core.state_machine import Continue, Machine, TransitionResult
from core.storage.changes import Changes, NeedPage
from core.storage.page import Page
from core.storage.pager import PageRead

if TYPE_CHECKING:
    from core.storage.write_transaction import WriteTransaction

__all__ = ["Statement"]

T = TypeVar("T")


class _Step(enum.Enum):
    PLAN = "plan"
    READ = "read"


_PLAN: Final = _Step.PLAN
_READ: Final = _Step.READ


@mypyc_attr(allow_interpreted_subclasses=True)
class Statement(Machine[T]):
    """Base of the write statements: a subclass writes `_plan` (and may write `_applied`).

    `step()` raises what `_plan` raises, the reads' `CompletionError`s, and
    `StorageError` if the transaction is no longer open.
    """

    __slots__ = ("_ahead", "_pinned", "_read", "_state", "tx")

    def __init__(self, tx: WriteTransaction) -> None:
        Machine.__init__(self)
        self.tx = tx
        self._state = _PLAN
        self._pinned: dict[int, Page] = {}
        self._read: PageRead | None = None
        self._ahead: tuple[int, ...] = ()

    def _plan(self, changes: Changes) -> T:
        """Stage the statement's edits in `changes` and return its value. Synchronous;
        may raise `NeedPage` (it will run again from the start) or a logical error."""
        raise NotImplementedError

    def _applied(self, value: T) -> None:
        """Called once the transaction adopted the plan."""

    def _advance(self) -> TransitionResult[T]:
        tx = self.tx
        if self._state is _READ:
            read = self._read
            assert read is not None
            self._read = None
            page = read.result()
            pinned = self._pinned
            pinned[page.number] = page
            cache = tx.db.pager.cache
            for number in self._ahead:
                extra = cache.peek(number)
                if extra is not None:
                    pinned[number] = extra
            self._state = _PLAN
        tx.check_usable()
        changes = Changes(tx.pages, self._pinned)
        try:
            value = self._plan(changes)
        except NeedPage as need:
            read = tx.db.pager.read(need.number, need.ahead)
            self._read = read
            self._ahead = need.ahead
            self._state = _READ
            return Continue if read.wait.finished() else IO(read.wait)
        tx.pages.adopt(changes)
        self._applied(value)
        return Done(value)
