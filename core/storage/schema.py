"""The schema: tables, columns and indexes, from the rows of `sqlite_schema` (Turso
`schema.rs`; sqlite.org/fileformat2.html section 2.6, lang_createtable.html).

Theory of operation:
- `build_schema` turns `sqlite_schema` rows into frozen `Table` and `Index` objects; the
  SQL text of each is parsed by `ddl.py`. Names are matched ignoring ASCII case, as SQLite
  does.
- A column's affinity comes from its declared type; its collation from COLLATE, else
  BINARY. INTEGER PRIMARY KEY (declared type exactly INTEGER, not a column-level DESC, not
  WITHOUT ROWID) makes the column an alias of the rowid: the record stores NULL there and
  rows show the rowid.
- Rows written before an `ALTER TABLE ADD COLUMN` have fewer fields; the missing ones take
  the column's default, evaluated as SQLite's `sqlite3ValueFromExpr` does (the literal's
  text with the column affinity applied). An INSERT that omits the column evaluates the
  same literal differently (as a value, then the column's storage affinity: `1e3` is the
  real 1000.0, so '1000.0' in a TEXT column where an old row reads '1e3'); a writer needs
  that value, `Column.insert_default`.
- What a writer must enforce or refuse is recorded, not interpreted: NOT NULL (also implied
  for the key of a WITHOUT ROWID table, as `PRAGMA table_info` shows), AUTOINCREMENT,
  whether any CHECK or foreign key exists, each trigger's table. `write_refusal` says
  which tables a writer that enforces only NOT NULL, UNIQUE and the indexes must leave
  alone.
- An index's column takes its collation from the index (COLLATE), else from the table
  column, else BINARY. DESC counts only from schema format 4 on, as in SQLite.
- Indexes SQLite made for PRIMARY KEY and UNIQUE constraints (`sqlite_autoindex_T_N`, no
  SQL) are matched to the N-th constraint that got an index, in declaration order,
  skipping duplicates (same columns and collations) and the INTEGER PRIMARY KEY.
- A WITHOUT ROWID table is stored as an index B-tree whose record is the primary key
  columns (in key order) and then the other stored columns (in table order); its secondary
  indexes store their columns then the primary key columns they do not already hold.
- `RowBuilder` turns a stored record into the tuple sqlite3 returns for
  `SELECT rowid, * FROM t` (`SELECT * FROM t` for WITHOUT ROWID): the rowid alias filled
  in, defaults for missing fields, and integers in REAL columns read back as floats (SQLite
  stores whole REAL values as integers and converts on read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from core.storage.collation import (
    KNOWN_COLLATIONS,
    Affinity,
    KeyPlan,
    affinity_of,
    apply_affinity,
    field_key,
    text_to_numeric,
)
from core.storage.ddl import (
    DefaultValue,
    ParsedConstraint,
    ParsedIndexedColumn,
    ParsedTable,
    parse_create_index,
    parse_create_table,
)
from core.storage.errors import CorruptDatabaseError, SchemaError, UnsupportedError
from core.storage.record import Value, to_signed64

__all__ = [
    "SCHEMA_TABLE_SQL",
    "Column",
    "Index",
    "IndexColumn",
    "RowBuilder",
    "Schema",
    "Table",
    "build_schema",
    "fold_name",
    "write_refusal",
]

SCHEMA_TABLE_SQL: Final = (
    "CREATE TABLE sqlite_schema(type text, name text, tbl_name text, rootpage int, sql text)"
)
_ASCII_LOWER: Final = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_INT32_MAX: Final = (1 << 31) - 1
_I64_MIN: Final = -(1 << 63)
_I64_MAX: Final = (1 << 63) - 1
_U64_MASK: Final = (1 << 64) - 1
_REAL_INT_LIMIT: Final = 9.2233720368547758e18
"""Reals strictly inside +-2**63 that are whole become integers under NUMERIC affinity."""


def fold_name(name: str) -> str:
    """A name folded the way SQLite compares identifiers (ASCII letters only): two names
    denote the same table, column or index exactly when their folded forms are equal.
    Exported as `core.storage.fold_identifier`; raises nothing."""
    return name.translate(_ASCII_LOWER)


@dataclass(frozen=True, slots=True)
class Column:
    """A table column."""

    name: str
    declared_type: str
    affinity: Affinity
    collation: str
    """Upper-case collation name; BINARY unless declared."""
    default: Value
    """The value rows written before the column was added get (None if no default)."""
    default_supported: bool
    """False when the default is an expression this reader cannot evaluate."""
    generated: str | None
    """"virtual" or "stored" for a generated column."""
    rowid_alias: bool
    """True for the INTEGER PRIMARY KEY column."""
    not_null: bool = False
    """NULL is refused: a NOT NULL constraint, or a PRIMARY KEY column of a WITHOUT ROWID
    table (SQLite makes those NOT NULL; `PRAGMA table_info` shows notnull=1 for both)."""
    default_expression: str | None = None
    """The DEFAULT clause's text as `PRAGMA table_info` shows it (dflt_value); None if none."""
    insert_default: Value = None
    """The value an INSERT that omits the column stores (column affinity applied; None
    without a default, or when `default_supported` is False)."""


@dataclass(frozen=True, slots=True)
class IndexColumn:
    """A column of an index (or of a WITHOUT ROWID table's primary key)."""

    name: str | None
    """The table column's name; None for an expression."""
    column: int | None
    """The table column's position; None for an expression."""
    expression: str
    collation: str
    descending: bool
    affinity: Affinity | None
    """The table column's affinity (None for an expression: no conversion)."""


@dataclass(frozen=True, slots=True)
class Table:
    """A table, as `sqlite_schema` describes it."""

    name: str
    root_page: int
    sql: str | None
    columns: tuple[Column, ...]
    without_rowid: bool
    strict: bool
    virtual: bool
    rowid_alias: int | None
    """Position of the INTEGER PRIMARY KEY column, if any."""
    primary_key: tuple[IndexColumn, ...]
    """The declared primary key (empty if none); the B-tree key of a WITHOUT ROWID table."""
    autoincrement: bool = False
    """INTEGER PRIMARY KEY AUTOINCREMENT: rowids are never reused (`sqlite_sequence`)."""
    has_check: bool = False
    """A CHECK constraint, on a column or on the table."""
    has_foreign_keys: bool = False
    """REFERENCES on a column or a FOREIGN KEY table constraint."""
    _constraints: tuple[ParsedConstraint, ...] = field(default=(), repr=False, compare=False)

    def column_index(self, name: str) -> int | None:
        """The position of column `name` (ignoring ASCII case), or None."""
        folded = fold_name(name)
        for i, column in enumerate(self.columns):
            if fold_name(column.name) == folded:
                return i
        return None

    @property
    def column_names(self) -> tuple[str, ...]:
        """The column names in declaration order."""
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True, slots=True)
class Index:
    """An index, explicit (CREATE INDEX) or automatic (PRIMARY KEY / UNIQUE)."""

    name: str
    table: str
    root_page: int
    sql: str | None
    unique: bool
    columns: tuple[IndexColumn, ...]
    where: str | None
    """The WHERE clause of a partial index: only rows matching it are in the index."""

    @property
    def automatic(self) -> bool:
        """True for the indexes SQLite creates for PRIMARY KEY and UNIQUE constraints."""
        return self.sql is None

    @property
    def expression(self) -> bool:
        """True if any indexed term is an expression rather than a table column."""
        return any(c.column is None for c in self.columns)


@dataclass(frozen=True, slots=True)
class Schema:
    """Every table and index of a database."""

    tables: tuple[Table, ...]
    indexes: tuple[Index, ...]
    views: tuple[str, ...] = ()
    triggers: tuple[str, ...] = ()
    schema_table: Table | None = field(default=None, repr=False, compare=False)
    trigger_tables: tuple[str, ...] = ()
    """The table (or view) of each trigger in `triggers`: its `sqlite_schema` tbl_name."""
    _by_name: dict[str, Table | Index] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Folded names -> objects (tables and indexes share SQLite's one namespace).
        by_name = self._by_name
        for index in self.indexes:
            by_name[fold_name(index.name)] = index
        for table in self.tables:
            by_name[fold_name(table.name)] = table
        if self.schema_table is not None:
            by_name.setdefault("sqlite_schema", self.schema_table)
            by_name.setdefault("sqlite_master", self.schema_table)

    def table(self, name: str) -> Table:
        """The table called `name` (`sqlite_schema`/`sqlite_master` included).

        Raises `SchemaError` if there is none.
        """
        found = self._by_name.get(name)
        if type(found) is not Table:
            found = self._by_name.get(fold_name(name))
            if type(found) is not Table:
                raise SchemaError(f"no such table: {name}")
        return found

    def index(self, name: str) -> Index:
        """The index called `name`. Raises `SchemaError` if there is none."""
        found = self._by_name.get(name)
        if type(found) is not Index:
            found = self._by_name.get(fold_name(name))
            if type(found) is not Index:
                raise SchemaError(f"no such index: {name}")
        return found

    def indexes_of(self, table: str) -> tuple[Index, ...]:
        """The indexes on table `table`."""
        folded = fold_name(table)
        return tuple(i for i in self.indexes if fold_name(i.table) == folded)

    def triggers_on(self, table: str) -> tuple[str, ...]:
        """The names of the triggers on table (or view) `table`, ignoring ASCII case."""
        folded = fold_name(table)
        return tuple(
            name
            for name, on in zip(self.triggers, self.trigger_tables, strict=False)
            if fold_name(on) == folded
        )


def write_refusal(schema: Schema, table: Table) -> str | None:
    """Why a write to `table` must be refused, as one sentence naming the table and the
    feature; None if nothing stands in the way.

    A writer that maintains rows, NOT NULL, UNIQUE and plain indexes (columns of the table
    under BINARY, NOCASE or RTRIM) must leave alone a table that is virtual or WITHOUT
    ROWID, or has generated columns, CHECK constraints, foreign keys, a partial or
    expression index, an index in a collation that is not built in, or triggers: those
    need SQL evaluated, or a layout such a writer does not produce. STRICT tables are
    fine. Raises nothing.
    """
    name = table.name
    if table.virtual:
        return _refused(name, "is a virtual table")
    if table.without_rowid:
        return _refused(name, "is WITHOUT ROWID")
    for column in table.columns:
        if column.generated is not None:
            return _refused(name, f"has a generated column {column.name!r} ({column.generated})")
    if table.has_check:
        return _refused(name, "has a CHECK constraint")
    if table.has_foreign_keys:
        return _refused(name, "has a foreign key (REFERENCES)")
    for index in schema.indexes_of(name):
        if index.where is not None:
            return _refused(name, f"has a partial index {index.name!r}")
        if index.expression:
            return _refused(name, f"has an index on an expression, {index.name!r}")
        for c in index.columns:
            if c.collation not in KNOWN_COLLATIONS:
                return _refused(name, f"has an index {index.name!r} in collation {c.collation!r}")
    triggers = schema.triggers_on(name)
    if triggers:
        return _refused(name, f"has a trigger {triggers[0]!r}")
    return None


def _refused(table: str, feature: str) -> str:
    return f"table {table!r} {feature}: writing it is not supported"


def evaluate_default(default: DefaultValue | None, affinity: Affinity) -> tuple[Value, bool]:
    """The value of a DEFAULT clause for a column of `affinity`, and whether this reader
    could evaluate it (an expression it cannot is `(None, False)`)."""
    if default is None or default.kind == "null":
        return None, True
    kind = default.kind
    value: Value
    if kind == "number":
        text = default.text
        magnitude: int | None = None
        if text[:2] in ("0x", "0X"):
            magnitude = int(text, 16)
        elif text.isdigit():
            magnitude = int(text)
        if magnitude is not None and magnitude <= _INT32_MAX:
            # Small integer literals are held as integers, not as their text.
            value = -magnitude if default.negative else magnitude
            return apply_affinity(value, None if affinity is Affinity.BLOB else affinity), True
        literal = ("-" if default.negative else "") + text
        if affinity in (Affinity.BLOB, Affinity.NUMERIC, Affinity.INTEGER, Affinity.REAL):
            # A hex literal past 32 bits stays text: affinity does not read hex.
            number = text_to_numeric(literal)
            return (literal if number is None else number), True
        return literal, True
    if kind in ("string", "identifier"):
        return apply_affinity(default.text, affinity), True
    if kind == "blob":
        return bytes.fromhex(default.text), True
    if kind in ("true", "false"):
        return (1 if kind == "true" else 0), True  # SQLite applies no affinity to these
    return None, False


def evaluate_insert_default(default: DefaultValue | None, affinity: Affinity) -> Value:
    """The value an INSERT that omits a column with this DEFAULT stores in a column of
    `affinity`, as sqlite3 reads it back; None for an expression (see `evaluate_default`).

    The literal is evaluated as a value (an integer that does not fit in 64 bits, or one
    with a point or exponent, is a real; a hex literal is its 64-bit pattern), then the
    column's storage affinity applies (`applyAffinity` in SQLite's vdbe.c).
    """
    if default is None:
        return None
    kind = default.kind
    value: Value
    if kind == "number":
        text = default.text
        if text[:2] in ("0x", "0X"):
            value = to_signed64(int(text, 16) & _U64_MASK)
        elif text.isdigit():
            value = int(text)
        else:
            value = float(text)
        if default.negative:
            value = -value
        if isinstance(value, int) and not _I64_MIN <= value <= _I64_MAX:
            value = float(value)
    elif kind in ("string", "identifier"):
        value = default.text
    elif kind == "blob":
        value = bytes.fromhex(default.text)
    elif kind in ("true", "false"):
        value = 1 if kind == "true" else 0
    else:
        return None
    return _storage_affinity(value, affinity)


def _storage_affinity(value: Value, affinity: Affinity) -> Value:
    """`value` as a column of `affinity` stores it and reads it back: text for TEXT,
    numeric text as a number and whole reals as integers for NUMERIC and INTEGER, any
    number as a real for REAL."""
    if affinity is Affinity.BLOB or value is None or isinstance(value, bytes):
        return value
    converted = apply_affinity(value, affinity)
    if affinity is Affinity.REAL and isinstance(converted, int):
        return float(converted)
    if (
        affinity in (Affinity.NUMERIC, Affinity.INTEGER)
        and isinstance(converted, float)
        and converted.is_integer()
        and -_REAL_INT_LIMIT < converted < _REAL_INT_LIMIT
    ):
        return int(converted)
    return converted


class _TableBuilder:
    """Turns one parsed CREATE TABLE into a `Table` (and resolves its autoindexes)."""

    def __init__(self, name: str, root: int, sql: str, parsed: ParsedTable, fmt: int) -> None:
        self.name = name
        self.parsed = parsed
        self.format = fmt
        columns = []
        names = [fold_name(c.name) for c in parsed.columns]
        primary = next((c for c in parsed.constraints if c.kind == "primary"), None)
        alias: int | None = None
        # SQLite's parser turns a one-column PRIMARY KEY on a column declared exactly
        # INTEGER (unless it is a column-level "PRIMARY KEY DESC") into the rowid alias,
        # even in a WITHOUT ROWID table, where the key index is then built afterwards from
        # the bare column: last in the autoindex numbering, with the column's collation.
        integer_key: int | None = None
        if primary is not None and len(primary.columns) == 1:
            pk = primary.columns[0]
            if pk.name is not None and fold_name(pk.name) in names:
                position = names.index(fold_name(pk.name))
                declared = parsed.columns[position].declared_type
                if declared.upper() == "INTEGER" and not (primary.column_level and pk.descending):
                    integer_key = position
                    if not parsed.without_rowid:
                        alias = position
        self.integer_key = integer_key
        key_columns: set[int] = set()
        if parsed.without_rowid and primary is not None:
            key_columns = {
                names.index(fold_name(c.name))
                for c in primary.columns
                if c.name is not None and fold_name(c.name) in names
            }
        for i, pc in enumerate(parsed.columns):
            affinity = affinity_of(pc.declared_type, strict=parsed.strict)
            default, supported = evaluate_default(pc.default, affinity)
            columns.append(
                Column(
                    name=pc.name,
                    declared_type=pc.declared_type,
                    affinity=affinity,
                    collation=(pc.collation or "BINARY").upper(),
                    default=default,
                    default_supported=supported,
                    generated=pc.generated,
                    rowid_alias=i == alias,
                    not_null=pc.not_null or i in key_columns,
                    default_expression=None if pc.default is None else pc.default.source,
                    insert_default=(
                        evaluate_insert_default(pc.default, affinity) if supported else None
                    ),
                )
            )
        self.columns = tuple(columns)
        self.alias = alias
        pk_columns: tuple[IndexColumn, ...] = ()
        if primary is not None:
            pk_columns = tuple(self.index_column(c, sql) for c in primary.columns)
            earlier_constraints = parsed.constraints
            if integer_key is not None:
                column = self.columns[integer_key]
                pk_columns = (replace(pk_columns[0], collation=column.collation),)
                # Its key index (WITHOUT ROWID only) is made after every UNIQUE constraint.
                earlier_constraints = () if alias is not None else parsed.constraints
            # A PRIMARY KEY on the same columns and collations as an earlier UNIQUE
            # constraint does not get an index of its own: the UNIQUE one becomes the key,
            # with its own ASC/DESC order (SQLite's sqlite3CreateIndex ignores the order
            # when it looks for a duplicate).
            signature = tuple((c.column, c.collation) for c in pk_columns)
            for constraint in earlier_constraints:
                if constraint is primary:
                    if integer_key is None:
                        break
                    continue
                earlier = tuple(self.index_column(c, sql) for c in constraint.columns)
                if tuple((c.column, c.collation) for c in earlier) == signature:
                    pk_columns = earlier
                    break
        self.table = Table(
            name=name,
            root_page=root,
            sql=sql,
            columns=self.columns,
            without_rowid=parsed.without_rowid,
            strict=parsed.strict,
            virtual=False,
            rowid_alias=alias,
            primary_key=pk_columns,
            autoincrement=parsed.autoincrement,
            has_check=parsed.has_check,
            has_foreign_keys=parsed.has_foreign_keys,
            _constraints=parsed.constraints,
        )

    def index_column(self, parsed: ParsedIndexedColumn, sql: str) -> IndexColumn:
        position = None
        if parsed.name is not None:
            folded = fold_name(parsed.name)
            for i, column in enumerate(self.columns):
                if fold_name(column.name) == folded:
                    position = i
                    break
        if position is None:
            return IndexColumn(
                name=None,
                column=None,
                expression=parsed.expression,
                collation=(parsed.collation or "BINARY").upper(),
                descending=parsed.descending and self.format >= 4,
                affinity=None,
            )
        column = self.columns[position]
        return IndexColumn(
            name=column.name,
            column=position,
            expression=parsed.expression,
            collation=(parsed.collation or column.collation).upper(),
            descending=parsed.descending and self.format >= 4,
            affinity=column.affinity,
        )

    def autoindexes(self) -> list[tuple[bool, tuple[IndexColumn, ...]]]:
        """(unique, columns) of each constraint that got an index, in SQLite's numbering."""
        made: list[tuple[bool, tuple[IndexColumn, ...]]] = []
        seen: list[tuple[tuple[int | None, str], ...]] = []
        constraints = list(self.parsed.constraints)
        if self.integer_key is not None:
            primary = [c for c in constraints if c.kind == "primary"][:1]
            constraints = [c for c in constraints if all(c is not p for p in primary)]
            if self.parsed.without_rowid:
                constraints += primary  # its index is made after every other one
        for constraint in constraints:
            columns = tuple(self.index_column(c, "") for c in constraint.columns)
            if constraint.kind == "primary" and self.integer_key is not None:
                columns = self.table.primary_key
            signature = tuple((c.column, c.collation) for c in columns)
            if signature in seen:
                continue
            seen.append(signature)
            made.append((True, columns))
        return made


def _schema_table(fmt: int) -> Table:
    parsed = parse_create_table(SCHEMA_TABLE_SQL)
    return _TableBuilder("sqlite_schema", 1, SCHEMA_TABLE_SQL, parsed, fmt).table


def build_schema(rows: Sequence[tuple[int, list[Value]]], schema_format: int) -> Schema:
    """Build the schema from `sqlite_schema` rows `(rowid, [type, name, tbl_name,
    rootpage, sql])`.

    Raises `CorruptDatabaseError` naming the schema object for a row of the wrong shape or
    SQL this reader cannot make sense of.
    """
    tables: list[Table] = []
    builders: dict[str, _TableBuilder] = {}
    index_rows: list[tuple[str, str, int, str | None]] = []
    views: list[str] = []
    triggers: list[str] = []
    trigger_tables: list[str] = []
    for rowid, values in rows:
        padded = list(values[:5]) + [None] * (5 - min(len(values), 5))
        kind, name, tbl_name, root, sql = padded
        if not isinstance(kind, str) or not isinstance(name, str):
            raise CorruptDatabaseError(
                f"sqlite_schema row {rowid} has type {kind!r} and name {name!r}", page=1
            )
        if sql is not None and not isinstance(sql, str):
            raise CorruptDatabaseError(f"sqlite_schema row {rowid} ({name}) has non-text SQL")
        if kind == "view":
            views.append(name)
            continue
        if kind == "trigger":
            triggers.append(name)
            trigger_tables.append(tbl_name if isinstance(tbl_name, str) else "")
            continue
        if kind not in ("table", "index"):
            continue
        if not isinstance(root, int) or root < 0:
            raise CorruptDatabaseError(
                f"{kind} {name!r} has root page {root!r} in sqlite_schema", page=1
            )
        if kind == "index":
            index_rows.append((name, tbl_name if isinstance(tbl_name, str) else "", root, sql))
            continue
        if sql is None:
            raise CorruptDatabaseError(f"table {name!r} has no SQL in sqlite_schema", page=1)
        if root == 0 or (sql.lstrip()[:6].upper() == "CREATE" and _is_virtual(sql)):
            tables.append(
                Table(name, 0, sql, (), False, False, True, None, ())  # a virtual table
            )
            continue
        try:
            builder = _TableBuilder(name, root, sql, parse_create_table(sql), schema_format)
        except _PARSE_ERRORS as exc:
            raise _schema_corrupt("table", name, exc) from None
        builders[fold_name(name)] = builder
        tables.append(builder.table)
    indexes: list[Index] = []
    for name, tbl_name, root, sql in index_rows:
        builder_for = builders.get(fold_name(tbl_name))
        if builder_for is None:
            continue  # an index on a table this reader does not have (e.g. virtual)
        try:
            if sql is None:
                indexes.append(_autoindex(name, tbl_name, root, builder_for))
                continue
            parsed_index = parse_create_index(sql)
            columns = tuple(builder_for.index_column(c, sql) for c in parsed_index.columns)
        except _PARSE_ERRORS as exc:
            raise _schema_corrupt("index", name, exc) from None
        indexes.append(
            Index(
                name=name,
                table=builder_for.name,
                root_page=root,
                sql=sql,
                unique=parsed_index.unique,
                columns=columns,
                where=parsed_index.where,
            )
        )
    return Schema(
        tables=tuple(tables),
        indexes=tuple(indexes),
        views=tuple(views),
        triggers=tuple(triggers),
        schema_table=_schema_table(schema_format),
        trigger_tables=tuple(trigger_tables),
    )


# What malformed SQL in sqlite_schema can provoke while it is interpreted.
_PARSE_ERRORS: Final = (CorruptDatabaseError, ValueError, IndexError, KeyError, OverflowError)


def _schema_corrupt(kind: str, name: str, exc: Exception) -> CorruptDatabaseError:
    detail = exc.detail if isinstance(exc, CorruptDatabaseError) else f"malformed SQL ({exc})"
    return CorruptDatabaseError(f"{kind} {name!r} in sqlite_schema: {detail}", page=1)


def _is_virtual(sql: str) -> bool:
    words = sql.split(None, 3)
    return len(words) >= 2 and words[1].upper() == "VIRTUAL"


def _autoindex(name: str, table: str, root: int, builder: _TableBuilder) -> Index:
    prefix = f"sqlite_autoindex_{builder.name}_"
    number = 0
    if fold_name(name).startswith(fold_name(prefix)):
        suffix = name[len(prefix) :]
        if suffix.isdigit():
            number = int(suffix)
    made = builder.autoindexes()
    if not 1 <= number <= len(made):
        raise CorruptDatabaseError(
            f"automatic index {name!r} matches no PRIMARY KEY or UNIQUE constraint of "
            f"table {builder.name!r}",
            page=1,
        )
    unique, columns = made[number - 1]
    return Index(
        name=name,
        table=builder.name,
        root_page=root,
        sql=None,
        unique=unique,
        columns=columns,
        where=None,
    )


def index_key_plan(table: Table, index: Index | None, codec: str) -> KeyPlan:
    """The sort-key plan of an index B-tree (or, with `index` None, of a WITHOUT ROWID
    table's own B-tree).

    Raises `SchemaError` if a column uses a collation this reader does not have.
    """
    if index is None:
        return KeyPlan(
            [field_key(c.collation, codec, c.descending) for c in table.primary_key],
            limit=len(table.primary_key),
        )
    fields = [field_key(c.collation, codec, c.descending) for c in index.columns]
    if table.without_rowid:
        for pk in pk_suffix(table, index):
            fields.append(field_key(pk.collation, codec, pk.descending))
    else:
        fields.append(field_key("BINARY", codec))
    return KeyPlan(fields)


def pk_suffix(table: Table, index: Index) -> list[IndexColumn]:
    """The primary key columns a WITHOUT ROWID table's index appends to its own columns
    (those it does not already hold with the same collation)."""
    suffix = []
    for pk in table.primary_key:
        if not any(c.column == pk.column and c.collation == pk.collation for c in index.columns):
            suffix.append(pk)
    return suffix


def pk_positions(table: Table, index: Index) -> list[int]:
    """Where each primary key column of a WITHOUT ROWID table sits in `index`'s records."""
    positions = []
    suffix = pk_suffix(table, index)
    for pk in table.primary_key:
        found = None
        for i, c in enumerate(index.columns):
            if c.column == pk.column and c.collation == pk.collation:
                found = i
                break
        if found is None:
            found = len(index.columns) + suffix.index(pk)
        positions.append(found)
    return positions


def check_collations(columns: Sequence[IndexColumn], what: str) -> None:
    """Raises `SchemaError` if a column uses a collation this reader does not know."""
    for c in columns:
        if c.collation not in KNOWN_COLLATIONS:
            raise SchemaError(
                f"{what} uses collation {c.collation!r}; only BINARY, NOCASE and RTRIM are built in"
            )


class RowBuilder:
    """Builds the row tuple sqlite3 returns from a stored record (see the module)."""

    __slots__ = (
        "_alias",
        "_defaults",
        "_order",
        "_real_columns",
        "_simple",
        "_stored",
        "_unsupported_defaults",
        "table",
        "without_rowid",
    )

    def __init__(self, table: Table) -> None:
        """Raises `UnsupportedError` for a virtual table or a virtual generated column."""
        if table.virtual:
            raise UnsupportedError(f"{table.name} is a virtual table; it has no rows on disk")
        for column in table.columns:
            if column.generated == "virtual":
                raise UnsupportedError(
                    f"column {column.name} of {table.name} is a virtual generated column: "
                    "its value is computed, not stored"
                )
        self.table = table
        self.without_rowid = table.without_rowid
        self._alias = table.rowid_alias
        self._defaults: list[Value] = [c.default for c in table.columns]
        self._stored = len(table.columns)
        self._real_columns = [i for i, c in enumerate(table.columns) if c.affinity is Affinity.REAL]
        # WITHOUT ROWID: record position of each column in declaration order.
        order: list[int] = []
        if table.without_rowid:
            pk_cols = [c.column for c in table.primary_key]
            rest = [i for i in range(len(table.columns)) if i not in pk_cols]
            record_cols = [c for c in pk_cols if c is not None] + rest
            order = [record_cols.index(i) for i in range(len(table.columns))]
        self._order = order
        self._simple = self._alias is None and not self._real_columns and not table.without_rowid
        unsupported = [i for i, c in enumerate(table.columns) if not c.default_supported]
        self._unsupported_defaults: list[int] | None = unsupported or None

    def build(self, rowid: int, values: list[Value]) -> tuple[Value, ...]:
        """`(rowid, *columns)` from a rowid table's record. The list may be modified.

        Raises `UnsupportedError` if a missing field's default cannot be evaluated.
        """
        n = len(values)
        stored = self._stored
        if n != stored:
            if n > stored:
                del values[stored:]
            else:
                self._check_defaults(n)
                values.extend(self._defaults[n:])
        if self._simple:
            return (rowid, *values)
        alias = self._alias
        if alias is not None:
            values[alias] = rowid
        for i in self._real_columns:
            v = values[i]
            if type(v) is int:
                values[i] = float(v)
        return (rowid, *values)

    def build_without_rowid(self, record: Sequence[Value]) -> tuple[Value, ...]:
        """The columns in declaration order from a WITHOUT ROWID table's record."""
        n = len(record)
        if n < self._stored:
            self._check_defaults(n)
        out = [record[p] if p < n else self._defaults[i] for i, p in enumerate(self._order)]
        for i in self._real_columns:
            v = out[i]
            if type(v) is int:
                out[i] = float(v)
        return tuple(out)

    def _check_defaults(self, present: int) -> None:
        missing = self._unsupported_defaults
        if missing is None:
            return
        for i in missing:
            position = self._order[i] if self._order else i
            if position >= present:
                column = self.table.columns[i]
                raise UnsupportedError(
                    f"column {column.name} of {self.table.name} is missing from an old row "
                    "and its DEFAULT is an expression this reader does not evaluate"
                )


def autoindex_count(name: str, sql: str, schema_format: int) -> int:
    """How many automatic indexes (`sqlite_autoindex_<name>_<n>`) SQLite makes for the
    PRIMARY KEY and UNIQUE constraints of `CREATE TABLE` statement `sql`.

    Raises `CorruptDatabaseError` for SQL the parser cannot make sense of.
    """
    builder = _TableBuilder(name, 0, sql, parse_create_table(sql), schema_format)
    return len(builder.autoindexes())
