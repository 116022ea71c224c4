"""Bounds on what a database may make this engine do before it does it: the size of its
schema (a service that opens files from strangers sets them).

Theory of operation:
- A schema is read as the rows of `sqlite_schema`, then parsed. Parsing costs time in
  proportion to the SQL, on whatever thread runs the operation (an event loop's, under
  `bridge.drive`), so the SQL's total size and the number of objects are checked on the
  raw rows, before anything is parsed; the columns per table right after, on the parsed
  schema (cheap once the SQL is known to be small).
- A limit that is passed raises `SchemaTooLargeError` naming the limit, the value found
  and the maximum; the operation (an open, any read) fails, nothing is cached.
- No limits by default: a `Database` opened without `schema_limits` reads any schema
  SQLite can write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.storage.errors import StorageError
from core.storage.record import Value
from core.storage.schema import Schema

__all__ = ["SchemaLimits", "SchemaTooLargeError"]


class SchemaTooLargeError(StorageError):
    """The schema passes a `SchemaLimits` bound. `limit` names it (the field of
    `SchemaLimits`), `value` is what the database has, `maximum` what is allowed."""

    limit: str
    value: int
    maximum: int

    def __init__(self, limit: str, value: int, maximum: int, what: str) -> None:
        self.limit = limit
        self.value = value
        self.maximum = maximum
        super().__init__(f"{what}: {value:,}, over the limit of {maximum:,} ({limit})")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.limit, self.value, self.maximum, str(self)))


def _rebuild(limit: str, value: int, maximum: int, message: str) -> SchemaTooLargeError:
    error = SchemaTooLargeError(limit, value, maximum, "")
    error.args = (message,)
    return error


@dataclass(frozen=True, slots=True)
class SchemaLimits:
    """The largest schema a `Database` accepts (see the module docstring)."""

    max_sql_bytes: int = 1 << 20
    """The CREATE statements of `sqlite_schema`, in bytes of UTF-8, all together."""
    max_objects: int = 10_000
    """Rows of `sqlite_schema`: tables, indexes, views and triggers."""
    max_columns: int = 2000
    """Columns of one table (SQLite's own default `SQLITE_MAX_COLUMN`)."""

    def check_rows(self, rows: Sequence[tuple[int, list[Value]]]) -> None:
        """Check `sqlite_schema` rows before they are parsed. Raises `SchemaTooLargeError`."""
        if len(rows) > self.max_objects:
            raise SchemaTooLargeError("max_objects", len(rows), self.max_objects, "schema objects")
        total = 0
        for _, values in rows:
            sql = values[4] if len(values) > 4 else None
            if isinstance(sql, str):
                total += len(sql.encode("utf-8", "surrogatepass"))
        if total > self.max_sql_bytes:
            raise SchemaTooLargeError(
                "max_sql_bytes", total, self.max_sql_bytes, "bytes of schema SQL"
            )

    def check_schema(self, schema: Schema) -> None:
        """Check a parsed schema. Raises `SchemaTooLargeError`."""
        for table in schema.tables:
            if len(table.columns) > self.max_columns:
                raise SchemaTooLargeError(
                    "max_columns",
                    len(table.columns),
                    self.max_columns,
                    f"columns of table {table.name!r}",
                )
