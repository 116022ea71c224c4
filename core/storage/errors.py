"""The storage engine's errors, all under `core.errors.IOResultError`.

Rules:
- Bad bytes in a database or WAL file are a `CorruptDatabaseError` naming the file, the page
  (when there is one) and what was wrong. Parsing code raises it directly where it can, and
  every parser entry point also translates the stray exceptions a malformed buffer could
  provoke (`IndexError`, `struct.error`, `ValueError`, `OverflowError`) at its boundary, so
  a caller never sees anything but this class for bad input.
- A database that is fine but cannot be read *now* (a writer holds the lock, the WAL kept
  changing) is a `DatabaseBusyError`: retry later. A hot journal is its own error because
  retrying does not help: a writable SQLite connection must roll it back first.
- A write that would break a constraint is a `ConstraintError`.
- Asking for something the schema does not have (a table, an index, a key of the wrong
  shape) is a `SchemaError`; a feature this reader does not implement is `UnsupportedError`.
"""

from __future__ import annotations

from core.errors import IOResultError

__all__ = [
    "ConstraintError",
    "CorruptDatabaseError",
    "DatabaseBusyError",
    "HotJournalError",
    "SchemaError",
    "StorageError",
    "UnsupportedError",
]


class StorageError(IOResultError):
    """Base of the storage engine's errors."""


class CorruptDatabaseError(StorageError):
    """The database (or its WAL) is malformed.

    `page` is the page number the problem was found on (None when it concerns the file as a
    whole or the WAL header), `path` the file, `detail` what was wrong.
    """

    page: int | None
    path: str | None
    detail: str

    def __init__(self, detail: str, *, page: int | None = None, path: str | None = None) -> None:
        self.page = page
        self.path = path
        self.detail = detail
        where = []
        if path is not None:
            where.append(repr(path))
        if page is not None:
            where.append(f"page {page}")
        prefix = f"database {' '.join(where)}: " if where else "database: "
        super().__init__(f"corrupt {prefix}{detail}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_corrupt, (self.detail, self.page, self.path))


def _rebuild_corrupt(detail: str, page: int | None, path: str | None) -> CorruptDatabaseError:
    return CorruptDatabaseError(detail, page=page, path=path)


class ConstraintError(StorageError):
    """A write would break a constraint (UNIQUE, NOT NULL, a rowid already in use); the
    statement left nothing behind and the transaction is still usable. `constraint` names
    what was violated (an index name, or `table.column`)."""

    constraint: str

    def __init__(self, message: str, *, constraint: str) -> None:
        self.constraint = constraint
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_constraint, (str(self), self.constraint))


def _rebuild_constraint(message: str, constraint: str) -> ConstraintError:
    return ConstraintError(message, constraint=constraint)


class DatabaseBusyError(StorageError):
    """The database cannot be read right now (a writer holds its lock, or its WAL changed
    under every retry); trying again later may succeed."""


class HotJournalError(StorageError):
    """A crashed writer left a hot rollback journal; a read-write SQLite connection must
    roll it back before the database can be read consistently."""


class SchemaError(StorageError):
    """The request does not fit the schema: no such table or index, a key of the wrong
    shape, or a collation this reader does not know."""


class UnsupportedError(StorageError):
    """The database uses a feature this reader does not implement (for instance a virtual
    table, or a generated column whose value is computed rather than stored)."""
