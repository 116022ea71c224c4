"""Schema changes: CREATE TABLE, CREATE INDEX, DROP TABLE, DROP INDEX (Turso
`translate/schema.rs`; SQLite `build.c` `sqlite3EndTable`, `sqlite3CreateIndex`,
`sqlite3DropTable`).

Theory of operation:
- One statement per call, planned like every write statement (see `statement.py`): the
  new root pages, the `sqlite_schema` rows, an index's entries built from the table's
  rows, or the freed pages of a dropped tree are all staged, and kept only if the whole
  statement succeeds. The schema cookie moves by one per statement, so every reader
  (ours, and SQLite's) reloads the schema after the commit.
- `sqlite_schema` rows are written as SQLite writes them: type, name, table name, root
  page, and the SQL as "CREATE TABLE " / "CREATE [UNIQUE] INDEX " followed by the text
  from the object's name on (without IF NOT EXISTS or a trailing semicolon); automatic
  indexes for PRIMARY KEY (other than INTEGER PRIMARY KEY) and UNIQUE constraints get
  rows named `sqlite_autoindex_<table>_<n>` with NULL SQL, in SQLite's numbering. The
  first AUTOINCREMENT table brings `sqlite_sequence(name,seq)` with it.
- What is refused with `UnsupportedError`: other statements, TEMP objects, WITHOUT ROWID
  and virtual tables, `CREATE TABLE ... AS SELECT`, partial and expression indexes,
  dropping a constraint's automatic index or `sqlite_sequence`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from core.storage.changes import Changes
from core.storage.ddl import Token, dequote, parse_create_index, parse_create_table, tokenize
from core.storage.encode import encode_record
from core.storage.errors import CorruptDatabaseError, SchemaError, UnsupportedError
from core.storage.node import Node
from core.storage.record import Value, decode_record
from core.storage.row_write import index_entry, insert_index_entry
from core.storage.schema import Index, Schema, Table, autoindex_count, build_schema, fold_name
from core.storage.statement import Statement
from core.storage.tree_edit import (
    delete_row,
    free_tree,
    insert_row,
    last_rowid,
    scan_rows,
    seek_rowid,
)

if TYPE_CHECKING:
    from core.storage.write_transaction import WriteTransaction

__all__ = ["ExecuteDDL"]

SEQUENCE_SQL: Final = "CREATE TABLE sqlite_sequence(name,seq)"
_SCHEMA_ROOT: Final = 1


def _bad_sql(sql: str, what: str) -> SchemaError:
    return SchemaError(f"cannot run {sql!r}: {what}")


class ExecuteDDL(Statement[Schema]):
    """The operation `WriteTransaction.execute_ddl` returns; `Done(schema)`: the schema as
    the transaction now sees it."""

    __slots__ = ("_sql",)

    def __init__(self, tx: WriteTransaction, sql: str) -> None:
        super().__init__(tx)
        self._sql = sql.strip().rstrip(";").rstrip()

    def _applied(self, value: Schema) -> None:
        tx = self.tx
        tx.schema = value
        tx.schema_cookie += 1
        tx.forget_key_plans()

    def _plan(self, changes: Changes) -> Schema:
        sql = self._sql
        try:
            tokens = tokenize(sql)
        except CorruptDatabaseError as exc:
            raise _bad_sql(sql, exc.detail) from None
        words = [t.text.upper() if t.kind == "id" else "" for t in tokens[:3]]
        if words[:1] == ["CREATE"] and words[1:2] in (["TEMP"], ["TEMPORARY"]):
            raise UnsupportedError(f"{sql!r}: TEMP objects are not supported")
        if words[:2] == ["CREATE", "TABLE"]:
            self._create_table(changes, tokens)
        elif words[:2] == ["CREATE", "INDEX"] or words[:3] == ["CREATE", "UNIQUE", "INDEX"]:
            self._create_index(changes, tokens)
        elif words[:2] == ["DROP", "TABLE"]:
            self._drop(changes, tokens, "table")
        elif words[:2] == ["DROP", "INDEX"]:
            self._drop(changes, tokens, "index")
        else:
            raise UnsupportedError(
                f"{sql!r}: only CREATE TABLE, CREATE [UNIQUE] INDEX, DROP TABLE and DROP INDEX "
                "are supported"
            )
        return build_schema(list(self._schema_rows(changes)), self._format())

    # -- helpers ---------------------------------------------------------------------

    def _format(self) -> int:
        header = self.tx.db.header
        return header.schema_format if header is not None and header.schema_format else 4

    def _schema_rows(self, changes: Changes) -> list[tuple[int, list[Value]]]:
        codec = self.tx.codec
        return [
            (rowid, decode_record(record, 0, len(record), codec))
            for rowid, record in scan_rows(changes, _SCHEMA_ROOT)
        ]

    def _name_after(
        self, tokens: list[Token], start: int, exists_words: tuple[str, ...]
    ) -> tuple[str, int, bool]:
        """The object name at `start` (after an optional IF [NOT] EXISTS): (name, index of
        its token, whether IF ... EXISTS was given)."""
        i = start
        guarded = False
        n = len(exists_words)
        if [t.text.upper() for t in tokens[i : i + n] if t.kind == "id"] == list(exists_words):
            i += n
            guarded = True
        if i >= len(tokens) or tokens[i].kind not in ("id", "qid", "str"):
            raise _bad_sql(self._sql, "expected a name")
        if i + 1 < len(tokens) and tokens[i + 1].text == ".":
            if fold_name(dequote(tokens[i])) != "main":
                raise UnsupportedError(f"{self._sql!r}: only the main schema is supported")
            i += 2
            if i >= len(tokens):
                raise _bad_sql(self._sql, "expected a name")
        return dequote(tokens[i]), i, guarded

    def _exists(self, name: str) -> Table | Index | None:
        schema = self.tx.schema
        try:
            return schema.table(name)
        except SchemaError:
            pass
        try:
            return schema.index(name)
        except SchemaError:
            return None

    def _add_schema_row(self, changes: Changes, values: list[Value]) -> None:
        rowid = (last_rowid(changes, _SCHEMA_ROOT) or 0) + 1
        record = encode_record(values, self.tx.codec)
        insert_row(changes, _SCHEMA_ROOT, seek_rowid(changes, _SCHEMA_ROOT, rowid), rowid, record)

    def _new_root(self, changes: Changes, table: bool) -> int:
        number = changes.allocate()
        changes.put(Node.empty(number, table))
        return number

    # -- the statements --------------------------------------------------------------

    def _create_table(self, changes: Changes, tokens: list[Token]) -> None:
        sql = self._sql
        name, at, guarded = self._name_after(tokens, 2, ("IF", "NOT", "EXISTS"))
        if self._exists(name) is not None or fold_name(name).startswith("sqlite_"):
            if guarded and self._exists(name) is not None:
                return
            raise SchemaError(f"{sql!r}: an object named {name!r} already exists or is reserved")
        stored = "CREATE TABLE " + sql[tokens[at].start :]
        if at + 1 < len(tokens) and tokens[at + 1].is_kw("AS"):
            raise UnsupportedError(f"{sql!r}: CREATE TABLE ... AS SELECT is not supported")
        try:
            parsed = parse_create_table(stored)
        except CorruptDatabaseError as exc:
            raise _bad_sql(sql, exc.detail) from None
        if parsed.without_rowid:
            raise UnsupportedError(f"{sql!r}: WITHOUT ROWID tables are not written")
        root = self._new_root(changes, True)
        self._add_schema_row(changes, ["table", name, name, root, stored])
        for number in range(1, autoindex_count(name, stored, self._format()) + 1):
            index_root = self._new_root(changes, False)
            self._add_schema_row(
                changes, ["index", f"sqlite_autoindex_{name}_{number}", name, index_root, None]
            )
        schema = build_schema(self._schema_rows(changes), self._format())
        if schema.table(name).autoincrement and not any(
            fold_name(t.name) == "sqlite_sequence" for t in schema.tables
        ):
            sequence_root = self._new_root(changes, True)
            self._add_schema_row(
                changes,
                ["table", "sqlite_sequence", "sqlite_sequence", sequence_root, SEQUENCE_SQL],
            )

    def _create_index(self, changes: Changes, tokens: list[Token]) -> None:
        sql = self._sql
        unique = tokens[1].is_kw("UNIQUE")
        name, at, guarded = self._name_after(tokens, 3 if unique else 2, ("IF", "NOT", "EXISTS"))
        if self._exists(name) is not None or fold_name(name).startswith("sqlite_"):
            if guarded and self._exists(name) is not None:
                return
            raise SchemaError(f"{sql!r}: an object named {name!r} already exists or is reserved")
        stored = ("CREATE UNIQUE INDEX " if unique else "CREATE INDEX ") + sql[tokens[at].start :]
        try:
            parsed = parse_create_index(stored)
        except CorruptDatabaseError as exc:
            raise _bad_sql(sql, exc.detail) from None
        if parsed.where is not None:
            raise UnsupportedError(f"{sql!r}: partial indexes are not written")
        if any(c.name is None for c in parsed.columns):
            raise UnsupportedError(f"{sql!r}: expression indexes are not written")
        tx = self.tx
        table = tx.schema.table(parsed.table)
        if table.virtual or table.without_rowid or fold_name(table.name).startswith("sqlite_"):
            raise UnsupportedError(f"{sql!r}: cannot index table {table.name!r}")
        for indexed in parsed.columns:
            assert indexed.name is not None
            if table.column_index(indexed.name) is None:
                raise SchemaError(f"{sql!r}: table {table.name!r} has no column {indexed.name!r}")
        root = self._new_root(changes, False)
        self._add_schema_row(changes, ["index", name, table.name, root, stored])
        schema = build_schema(self._schema_rows(changes), self._format())
        index = schema.index(name)
        alias = table.rowid_alias
        codec = tx.codec
        for rowid, record in scan_rows(changes, table.root_page):
            values = list(decode_record(record, 0, len(record), codec))
            row = values[: len(table.columns)]
            for column in table.columns[len(row) :]:
                row.append(column.default)
            if alias is not None:
                row[alias] = rowid
            insert_index_entry(tx, changes, table, index, index_entry(table, index, row, rowid))

    def _drop(self, changes: Changes, tokens: list[Token], kind: str) -> None:
        sql = self._sql
        name, _, guarded = self._name_after(tokens, 2, ("IF", "EXISTS"))
        schema = self.tx.schema
        target = self._exists(name)
        wanted = Table if kind == "table" else Index
        if not isinstance(target, wanted):
            if guarded and target is None:
                return
            raise SchemaError(f"{sql!r}: no such {kind}: {name}")
        folded = fold_name(target.name)
        if isinstance(target, Index) and target.automatic:
            raise UnsupportedError(
                f"{sql!r}: index {target.name!r} belongs to a UNIQUE or PRIMARY KEY constraint"
            )
        if folded.startswith("sqlite_") and not (kind == "table" and folded == "sqlite_stat1"):
            raise UnsupportedError(f"{sql!r}: {target.name!r} belongs to SQLite")
        if isinstance(target, Table) and target.virtual:
            raise UnsupportedError(f"{sql!r}: dropping a virtual table is not supported")
        doomed_roots: list[tuple[int, bool]] = []
        if isinstance(target, Table):
            doomed_roots.append((target.root_page, True))
            doomed_roots.extend((i.root_page, False) for i in schema.indexes_of(target.name))
        else:
            doomed_roots.append((target.root_page, False))
        for root, table in doomed_roots:
            free_tree(changes, root, table)
        # The schema rows: the object itself, and for a table its indexes and triggers.
        doomed_rows = []
        for rowid, values in self._schema_rows(changes):
            row_name = values[1] if len(values) > 1 else None
            row_table = values[2] if len(values) > 2 else None
            if (isinstance(row_name, str) and fold_name(row_name) == folded) or (
                kind == "table"
                and isinstance(row_table, str)
                and fold_name(row_table) == folded
                and values[0] in ("index", "trigger")
            ):
                doomed_rows.append(rowid)
        for rowid in doomed_rows:
            delete_row(changes, seek_rowid(changes, _SCHEMA_ROOT, rowid))
        if isinstance(target, Table) and target.autoincrement:
            self._drop_sequence_row(changes, target.name)

    def _drop_sequence_row(self, changes: Changes, name: str) -> None:
        try:
            sequence = self.tx.schema.table("sqlite_sequence")
        except SchemaError:
            return
        codec = self.tx.codec
        for rowid, record in scan_rows(changes, sequence.root_page):
            values = decode_record(record, 0, len(record), codec)
            if values and isinstance(values[0], str) and fold_name(values[0]) == fold_name(name):
                delete_row(changes, seek_rowid(changes, sequence.root_page, rowid))
                return
