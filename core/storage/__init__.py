"""A storage engine that reads and writes SQLite database files, written as explicit state
machines.

`Database.open(io, path)` and every query on the `Database` are operations: run them with
`core.block(op, io)` or `await bridge.drive(op)`. Writing: `Database.open(io, path,
writable=True)`, then `db.begin()` gives a `WriteTransaction` whose `insert`, `update`,
`delete`, `execute_ddl` and `commit` are operations too. See `docs/storage.md`.
"""

from core.storage.collation import KNOWN_COLLATIONS, Affinity
from core.storage.collation import field_key as collation_key
from core.storage.commit import Commit, SyncLog
from core.storage.database import (
    DEFAULT_CACHE_PAGES,
    DEFAULT_READAHEAD,
    Database,
    OpenDatabase,
    ReadSchema,
    Row,
)
from core.storage.ddl_write import ExecuteDDL
from core.storage.errors import (
    ConstraintError,
    CorruptDatabaseError,
    DatabaseBusyError,
    HotJournalError,
    SchemaError,
    StorageError,
    UnsupportedError,
)
from core.storage.header import DatabaseHeader, TextEncoding
from core.storage.index_scan import Bound, IndexScan
from core.storage.limits import SchemaLimits, SchemaTooLargeError
from core.storage.queries import CountRows, GetRow, ScanRows
from core.storage.record import Value
from core.storage.row_write import Delete, Insert, Update
from core.storage.schema import Column, Index, IndexColumn, Schema, Table
from core.storage.schema import fold_name as fold_identifier
from core.storage.write_transaction import Begin, TransactionState, WriteTransaction

__all__ = [
    "DEFAULT_CACHE_PAGES",
    "DEFAULT_READAHEAD",
    "KNOWN_COLLATIONS",
    "Affinity",
    "Begin",
    "Bound",
    "Column",
    "Commit",
    "ConstraintError",
    "CorruptDatabaseError",
    "CountRows",
    "Database",
    "DatabaseBusyError",
    "DatabaseHeader",
    "Delete",
    "ExecuteDDL",
    "GetRow",
    "HotJournalError",
    "Index",
    "IndexColumn",
    "IndexScan",
    "Insert",
    "OpenDatabase",
    "ReadSchema",
    "Row",
    "ScanRows",
    "Schema",
    "SchemaError",
    "SchemaLimits",
    "SchemaTooLargeError",
    "StorageError",
    "SyncLog",
    "Table",
    "TextEncoding",
    "TransactionState",
    "UnsupportedError",
    "Update",
    "Value",
    "WriteTransaction",
    "collation_key",
    "fold_identifier",
]
