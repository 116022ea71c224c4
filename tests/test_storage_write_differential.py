"""A seeded differential fuzz of the write path against sqlite3.

Each run builds the same schema in two files: ours, through `WriteTransaction.execute_ddl`,
and a twin written by sqlite3 (WAL mode). A seeded random sequence of inserts (automatic
and explicit rowids up to the +-2**63 bounds), updates (indexed columns and the INTEGER
PRIMARY KEY included), deletes (down to an empty table), payloads at the overflow
thresholds of the page size and far above them, index churn (duplicates, NULLs, UNIQUE,
NOCASE, DESC, CREATE/DROP INDEX) and mixed-type values in every affinity is applied to
both; every statement must succeed on both, with the same value (the rowid, whether a row
was found), or be refused by both for the same kind of reason. Transactions end after a
random number of statements, by commit (both; ours durable or not, sometimes followed by
`sync_log`, sometimes by a checkpoint) or rollback (both). After each, sqlite3 opens our
file while our `Database` stays open (integrity_check, every row, every index's contents
read through the index, sqlite_sequence, the schema) and must read exactly what the twin
holds, values' types included; it closes before our next `begin`. Our own checker must
find nothing wrong, and our reader (`scan`, `index_scan`) must read what the twin holds.
At the end a sqlite3 process writes our file and runs VACUUM (the twin does the same); we
reopen it, read back what sqlite3 reads, and write on.

A failing run names its seed and the command that replays it alone (`test_replay`).
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from core import block
from core.io import UnixIO
from core.storage import ConstraintError, Database, SchemaError
from core.storage.check import check_database
from core.storage.encode import column_value, encode_record
from core.storage.page import PageLayout
from core.storage.write_transaction import WriteTransaction

MAX_ROWID = (1 << 63) - 1
MIN_ROWID = -(1 << 63)

# -- the schema ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSpec:
    name: str
    table: str
    columns: tuple[tuple[str, str | None, bool], ...]  # (column, COLLATE, DESC)
    unique: bool = False

    def create_sql(self) -> str:
        parts = []
        for column, collation, desc in self.columns:
            part = column
            if collation is not None:
                part += f" COLLATE {collation}"
            if desc:
                part += " DESC"
            parts.append(part)
        unique = "UNIQUE " if self.unique else ""
        return f"CREATE {unique}INDEX {self.name} ON {self.table}({', '.join(parts)})"

    def order_by(self) -> str:
        """An ORDER BY that is the index's own order (the rowid last breaks ties)."""
        parts = []
        for column, collation, desc in self.columns:
            part = column
            if collation is not None:
                part += f" COLLATE {collation}"
            parts.append(part + (" DESC" if desc else ""))
        return ", ".join([*parts, "rowid"])


TABLES: dict[str, str] = {
    "t": (
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT DEFAULT 'dflt', b INTEGER, c REAL, "
        "d NUMERIC DEFAULT 7, e BLOB, f, u TEXT COLLATE NOCASE)"
    ),
    "s": "CREATE TABLE s(k TEXT NOT NULL UNIQUE, v NUMERIC, w BLOB, x REAL DEFAULT 1.5)",
    "q": "CREATE TABLE q(id INTEGER PRIMARY KEY AUTOINCREMENT, x TEXT, y)",
}
COLUMNS: dict[str, tuple[str, ...]] = {
    "t": ("id", "a", "b", "c", "d", "e", "f", "u"),
    "s": ("k", "v", "w", "x"),
    "q": ("id", "x", "y"),
}
ALIAS = {"t": "id", "q": "id"}  # the INTEGER PRIMARY KEY (the rowid) of a table
INDEXES: tuple[IndexSpec, ...] = (
    IndexSpec("t_a", "t", (("a", None, False),)),
    IndexSpec("t_b_desc", "t", (("b", None, True), ("d", None, False))),
    IndexSpec("t_nocase", "t", (("a", "NOCASE", False), ("c", None, True))),
    IndexSpec("t_u", "t", (("u", None, False),), unique=True),  # NOCASE from the column
    IndexSpec("t_bc", "t", (("b", None, False), ("c", None, False)), unique=True),
    IndexSpec("t_e", "t", (("e", None, False),)),
    IndexSpec("t_f_id", "t", (("f", None, False), ("id", None, True))),
    IndexSpec("s_vw", "s", (("v", None, True), ("w", None, False))),
    IndexSpec("q_y", "q", (("y", "NOCASE", False),)),
)
AUTOMATIC = (IndexSpec("sqlite_autoindex_s_1", "s", (("k", None, False),), unique=True),)
CHURN = (  # created and dropped during a run
    IndexSpec("t_churn", "t", (("d", None, False), ("a", "NOCASE", True))),
    IndexSpec("t_churn_u", "t", (("d", None, False),), unique=True),
    IndexSpec("s_churn_u", "s", (("x", None, False), ("v", None, False)), unique=True),
)

# -- values -------------------------------------------------------------------------------

_TEXTS = [
    "",
    "a",
    "A",
    "abc",
    "ABC",
    "Abc",
    "abc ",
    "12",
    " 12 ",
    "+5",
    "-7",
    "-0",
    "1.5",
    "1.0",
    "1e3",
    "2.5e-3",
    "0x10",
    "12abc",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "Inf",
    "ü",
    "Ü",
    "ǅ",
    "日本",
    "x\x00y",
]
_FLOATS = [
    0.5,
    -0.0,
    0.0,
    1.0,
    2.0,
    -3.0,
    0.1,
    1 / 3,
    3.14159,
    1e20,
    -1e-5,
    1e300,
    9.223372036854776e18,
    -9.223372036854776e18,
    float("inf"),
    float("-inf"),
    float("nan"),
]
_INTS = [0, 1, -1, 2, 3, 7, 255, 256, 65535, 1 << 31, -(1 << 31), 1 << 48, MAX_ROWID, MIN_ROWID]
_BLOBS = [b"", b"\x00", b"a", b"abc", b"\xff\xfe", b"12"]


def random_value(rng: random.Random) -> object:
    """A value of any kind, duplicates and NULLs frequent."""
    pick = rng.random()
    if pick < 0.15:
        return None
    if pick < 0.35:
        return rng.choice(_INTS) if rng.random() < 0.5 else rng.randint(-3, 3)
    if pick < 0.45:
        return rng.randint(MIN_ROWID, MAX_ROWID)
    if pick < 0.60:
        return rng.choice(_FLOATS) if rng.random() < 0.7 else rng.uniform(-1e6, 1e6)
    if pick < 0.85:
        if rng.random() < 0.8:
            return rng.choice(_TEXTS)
        return "".join(rng.choice("aAbBzZ ü1.") for _ in range(rng.randint(1, 12)))
    if rng.random() < 0.7:
        return rng.choice(_BLOBS)
    return rng.randbytes(rng.randint(1, 40))


def random_rowid(rng: random.Random, largest: int | None, existing: Sequence[int]) -> object:
    """An explicit rowid: sequential, random, negative, at the bounds, in use, or a value
    that is (or is not) an integer after affinity."""
    pick = rng.random()
    if pick < 0.2:
        return (largest or 0) + 1 if (largest or 0) < MAX_ROWID else 1
    if pick < 0.35:
        return rng.randint(1, 1000)
    if pick < 0.45:
        return rng.randint(MIN_ROWID, MAX_ROWID)
    if pick < 0.55:
        return -rng.randint(1, 1 << rng.randint(1, 63))
    if pick < 0.7:
        return rng.choice([MAX_ROWID, MAX_ROWID - 1, MIN_ROWID, MIN_ROWID + 1, 0, -1])
    if pick < 0.82 and existing:
        return rng.choice(existing)
    return rng.choice(["12", " 13 ", "1e2", 14.0, 15.5, "x", "9223372036854775808", b"1"])


# -- results of one statement on each side -------------------------------------------------


def _kind_of_ours(exc: Exception) -> str:
    if isinstance(exc, ConstraintError):
        return "constraint"
    if isinstance(exc, SchemaError) and "datatype mismatch" in str(exc):
        return "mismatch"
    raise exc


def _kind_of_sqlite(exc: sqlite3.Error) -> str:
    message = str(exc)
    if isinstance(exc, sqlite3.IntegrityError):
        return "mismatch" if "datatype mismatch" in message else "constraint"
    if isinstance(exc, sqlite3.OperationalError) and "full" in message:
        return "constraint"  # AUTOINCREMENT has used the largest rowid
    raise exc


def norm(value: object) -> object:
    """A value with its type, compared exactly (1 != 1.0, 0.0 != -0.0)."""
    if isinstance(value, float):
        return ("real", repr(value))
    return (type(value).__name__, value)


def norm_rows(rows: Sequence[Sequence[object]]) -> list[tuple[object, ...]]:
    return [tuple(norm(v) for v in row) for row in rows]


# -- one run ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    seed: int
    page_size: int
    ops: int

    def replay(self) -> str:
        return (
            f"FUZZ_SEED={self.seed} FUZZ_PAGE_SIZE={self.page_size} FUZZ_OPS={self.ops} "
            ".venv/bin/pytest tests/test_storage_write_differential.py::test_replay -x"
        )


@dataclass
class Stats:
    ops: Counter[str] = field(default_factory=Counter)
    statements: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    commits: int = 0
    rollbacks: int = 0
    checks: int = 0
    threshold_payloads: int = 0
    """Records made exactly the size of an overflow threshold (or one off it)."""
    largest_rowid: int = 0
    most_pages: int = 0
    most_rows: int = 0


class Mismatch(AssertionError):
    pass


class Fuzz:
    """Our engine and sqlite3's twin, driven in step by one seeded generator."""

    def __init__(self, config: RunConfig, directory: Path, log: list[str]) -> None:
        self.config = config
        self.rng = random.Random(config.seed * 1_000_003 + config.page_size)
        rng = self.rng
        self.layout = PageLayout(config.page_size, config.page_size)
        self.ours_path = directory / "ours.db"
        self.twin_path = directory / "twin.db"
        self.io = UnixIO()
        self.db = block(
            Database.open(
                self.io,
                os.fspath(self.ours_path),
                writable=True,
                page_size=config.page_size,
                cache_pages=rng.choice([8, 64, 2048]),
            ),
            self.io,
        )
        twin = sqlite3.connect(self.twin_path, isolation_level=None)
        twin.execute(f"PRAGMA page_size={config.page_size}")
        twin.execute("PRAGMA journal_mode=WAL")
        twin.execute("PRAGMA synchronous=OFF")  # the twin is only compared with
        self.twin = twin
        self.tx: WriteTransaction | None = None
        self.indexes: list[IndexSpec] = [*INDEXES, *AUTOMATIC]
        self.committed_indexes = list(self.indexes)
        self.committed_counts: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.stats = Stats()
        self.log = log

    # -- transactions --

    def begin(self) -> None:
        assert self.tx is None
        self.tx = block(self.db.begin(), self.io)
        self.twin.execute("BEGIN")
        self.committed_indexes = list(self.indexes)

    def end(self, commit: bool) -> None:
        tx = self.tx
        assert tx is not None
        self.tx = None
        if commit:
            durable = self.rng.random() < 0.5
            self.log.append("COMMIT" if durable else "COMMIT (durable=False)")
            block(tx.commit(durable=durable), self.io)
            if not durable and self.rng.random() < 0.5:
                block(self.db.sync_log(), self.io)
            self.twin.execute("COMMIT")
            self.stats.commits += 1
        else:
            self.log.append("ROLLBACK")
            block(tx.rollback(), self.io)
            if self.twin.in_transaction:
                self.twin.execute("ROLLBACK")
            self.indexes = self.committed_indexes
            self.stats.rollbacks += 1

    def ours(self) -> WriteTransaction:
        assert self.tx is not None
        return self.tx

    # -- applying one statement to both --

    def both(
        self,
        what: str,
        ours: Callable[[], object],
        theirs: Callable[[], object],
    ) -> tuple[str, object]:
        """Run a statement on both sides; they must agree on success (and the value) or
        on the kind of refusal."""
        self.log.append(what)
        self.stats.statements += 1
        try:
            ours_result: tuple[str, object] = ("ok", ours())
        except (ConstraintError, SchemaError) as exc:
            ours_result = (_kind_of_ours(exc), str(exc))
        try:
            their_result: tuple[str, object] = ("ok", theirs())
        except sqlite3.Error as exc:
            their_result = (_kind_of_sqlite(exc), str(exc))
        if ours_result[0] != their_result[0] or (
            ours_result[0] == "ok" and ours_result[1] != their_result[1]
        ):
            raise Mismatch(f"{what}: ours {ours_result!r}, sqlite3 {their_result!r}")
        if ours_result[0] != "ok":
            self.stats.refused[ours_result[0]] += 1
            if self.tx is not None and not self.twin.in_transaction:
                # SQLITE_FULL (AUTOINCREMENT out of rowids) ends sqlite3's transaction; ours
                # only refuses the statement. Both start again from the last commit.
                self.log.append("sqlite3 rolled its transaction back: so do we")
                self.end(commit=False)
                self.check()
                self.begin()
        return ours_result

    def rowids(self, table: str) -> list[int]:
        return [r for (r,) in self.twin.execute(f"SELECT rowid FROM {table} ORDER BY rowid")]

    def insert(self, table: str, values: dict[str, object]) -> None:
        names = list(values)
        sql = (
            f"INSERT INTO {table}({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
            if names
            else f"INSERT INTO {table} DEFAULT VALUES"
        )
        params = [values[n] for n in names]
        alias = ALIAS.get(table)
        auto = alias is None or values.get(alias) is None
        largest = self.twin.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
        what = f"insert {table} {_show(values)}"
        tx = self.ours()
        if auto and largest == MAX_ROWID and table != "q":
            # sqlite3 then tries random rowids; ours are another (reproducible) sequence, so
            # the twin takes the rowid ours chose, which must have been free.
            chosen: list[int] = []
            explicit = ["rowid", *(n for n in names if n != alias)]

            def ours() -> int:
                rowid = block(tx.insert(table, values), self.io)
                chosen.append(rowid)
                return rowid

            def theirs() -> object:
                if not chosen:  # ours refused the row: so must sqlite3, whatever its rowid
                    return self.twin.execute(sql, params).lastrowid
                return self.twin.execute(
                    f"INSERT INTO {table}({', '.join(explicit)}) "
                    f"VALUES ({', '.join('?' * len(explicit))})",
                    [chosen[0], *(values[n] for n in explicit[1:])],
                ).lastrowid

            self.both(what + " (the largest rowid is in use)", ours, theirs)
            return
        self.both(
            what,
            lambda: block(tx.insert(table, values), self.io),
            lambda: self.twin.execute(sql, params).lastrowid,
        )

    def update(self, table: str, rowid: int, values: dict[str, object]) -> None:
        if not values:
            return
        sets = ", ".join(f"{n} = ?" for n in values)
        tx = self.ours()
        self.both(
            f"update {table} rowid={rowid} {_show(values)}",
            lambda: block(tx.update(table, rowid, values), self.io),
            lambda: (
                self.twin.execute(
                    f"UPDATE {table} SET {sets} WHERE rowid = ?", [*values.values(), rowid]
                ).rowcount
                == 1
            ),
        )

    def delete(self, table: str, rowid: int) -> None:
        tx = self.ours()
        self.both(
            f"delete {table} rowid={rowid}",
            lambda: block(tx.delete(table, rowid), self.io),
            lambda: (
                self.twin.execute(f"DELETE FROM {table} WHERE rowid = ?", [rowid]).rowcount == 1
            ),
        )

    def ddl(self, sql: str) -> bool:
        """Run a schema statement on both; True if it succeeded."""
        tx = self.ours()
        kind, _ = self.both(
            sql,
            lambda: block(tx.execute_ddl(sql), self.io) is not None,
            lambda: self.twin.execute(sql) is not None,
        )
        return kind == "ok"

    # -- generated statements --

    def row_values(self, table: str) -> dict[str, object]:
        rng = self.rng
        columns = [c for c in COLUMNS[table] if c != ALIAS.get(table)]
        chosen = [c for c in columns if rng.random() < 0.75]
        values = {c: random_value(rng) for c in chosen}
        if table == "s" and "k" in values and values["k"] is None and rng.random() < 0.7:
            values["k"] = rng.choice(_TEXTS)  # NOT NULL: refusals, but not too many
        if table == "t" and "u" in values and rng.random() < 0.5:
            values["u"] = None  # NULLs never clash in a UNIQUE index
        return values

    def op_insert(self) -> None:
        rng = self.rng
        table = rng.choices(["t", "s", "q"], [6, 2, 1])[0]
        values = self.row_values(table)
        alias = ALIAS.get(table)
        if alias is not None and rng.random() < 0.35:
            rowids = self.rowids(table)
            values[alias] = random_rowid(rng, rowids[-1] if rowids else None, rowids)
        self.insert(table, values)

    def op_update(self) -> None:
        rng = self.rng
        table = rng.choices(["t", "s", "q"], [6, 2, 1])[0]
        rowids = self.rowids(table)
        rowid = rng.choice(rowids) if rowids and rng.random() < 0.9 else rng.randint(-5, 2000)
        values = self.row_values(table)
        for name in list(values):
            if rng.random() < 0.4:
                del values[name]
        alias = ALIAS.get(table)
        if alias is not None and rng.random() < 0.2:
            values[alias] = (
                None
                if rng.random() < 0.1
                else random_rowid(rng, rowids[-1] if rowids else None, rowids)
            )
        if not values:
            values = {COLUMNS[table][-1]: random_value(rng)}
        self.update(table, rowid, values)

    def op_delete(self) -> None:
        rng = self.rng
        table = rng.choices(["t", "s", "q"], [6, 2, 1])[0]
        rowids = self.rowids(table)
        rowid = rng.choice(rowids) if rowids and rng.random() < 0.9 else rng.randint(-5, 2000)
        self.delete(table, rowid)

    def op_bulk(self) -> None:
        """Many small rows at once: trees several levels deep."""
        rng = self.rng
        table = rng.choices(["t", "s"], [3, 1])[0]
        for _ in range(rng.randint(10, 60)):
            values = self.row_values(table)
            if table == "s":
                values["k"] = f"bulk {rng.randrange(10**9)}"
            values.pop("u", None)
            self.insert(table, values)

    def op_delete_range(self) -> None:
        """Delete a run of neighbouring rows: pages empty out and merge."""
        rng = self.rng
        table = rng.choices(["t", "s", "q"], [4, 2, 1])[0]
        rowids = self.rowids(table)
        if not rowids:
            return
        start = rng.randrange(len(rowids))
        for rowid in rowids[start : start + rng.randint(5, 80)]:
            self.delete(table, rowid)

    def op_drain(self) -> None:
        """Delete every row of a table, in random order."""
        table = self.rng.choice(list(TABLES))
        rowids = self.rowids(table)
        self.rng.shuffle(rowids)
        for rowid in rowids:
            self.delete(table, rowid)
        assert self.twin.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)

    def op_big(self) -> None:
        """A payload at an overflow threshold of the page size, or 5-20 pages long."""
        rng = self.rng
        layout = self.layout
        column, index = rng.choice([("e", "t_e"), ("a", "t_a"), ("u", "t_u"), ("f", "t_f_id")])
        spec = next(i for i in INDEXES if i.name == index)
        rowids = self.rowids("t")
        updating = bool(rowids) and rng.random() < 0.35
        if updating:
            rowid = rng.choice(rowids)
        else:
            rowid = (rowids[-1] + 1) if rowids and rowids[-1] < MAX_ROWID else rng.randint(1, 99)
        others = {c: random_value(rng) for c in ("b", "c", "d") if rng.random() < 0.5}
        others["u"] = None
        text = column in ("a", "u") or (column == "f" and rng.random() < 0.5)
        alphabet = "abcdefghijklmnopqrstuvwxyz" if rng.random() < 0.8 else "aü日"

        def make(n: int) -> object:
            if text:
                return (alphabet * (n // len(alphabet) + 1))[:n]
            return bytes((i * 7 + n) & 0xFF for i in range(n))

        kind = rng.choice(["table", "index", "huge"])
        if kind == "huge":
            value = make(layout.page_size * rng.randint(5, 20) + rng.randint(-3, 3))
        else:
            base = layout.max_local_table if kind == "table" else layout.max_local_index
            target = rng.choice(
                [base, base + rng.choice([-1, 1]), layout.min_local, base + layout.usable_size - 4]
            )
            target += rng.choice([-1, 0, 1])
            affinities = self.affinities("t")

            def size(v: object) -> int:
                if kind == "table":
                    row = {"a": "dflt", "d": 7, **others, column: v}
                    record = [
                        None if c == "id" else column_value(row.get(c), affinities[c])
                        for c in COLUMNS["t"]
                    ]
                else:
                    row = {"id": rowid, **others, column: v}
                    record = [column_value(row.get(c), affinities[c]) for c, _, _ in spec.columns]
                    record.append(rowid)
                return len(encode_record(record))

            n = max(0, target - size(make(0)))
            for _ in range(6):
                got = size(make(n))
                if got == target:
                    self.stats.threshold_payloads += 1
                    break
                n = max(0, n + target - got)
            value = make(n)
        values: dict[str, object] = {**others, column: value}
        if updating:
            self.update("t", rowid, values)
        else:
            if rng.random() < 0.5:
                values["id"] = rowid
            self.insert("t", values)

    def affinities(self, table: str) -> dict[str, Any]:
        schema_table = self.ours().schema.table(table)
        return {c.name: c.affinity for c in schema_table.columns}

    def op_index_churn(self) -> None:
        """Create or drop an index mid-run (a UNIQUE one fails on duplicates: both sides)."""
        spec = self.rng.choice(CHURN)
        if spec in self.indexes:
            if self.ddl(f"DROP INDEX {spec.name}"):
                self.indexes.remove(spec)
        elif self.ddl(spec.create_sql()):
            self.indexes.append(spec)

    def op_read_committed(self) -> None:
        """Readers of the database see the last commit while the transaction writes."""
        for table, count in self.committed_counts.items():
            got = block(self.db.count(table), self.io)
            if got != count:
                raise Mismatch(f"count({table}) during a transaction: {got}, committed {count}")

    # -- checks after a transaction ended --

    def select(self, con: sqlite3.Connection, sql: str) -> list[tuple[object, ...]]:
        return norm_rows(con.execute(sql).fetchall())

    def queries(self) -> Iterator[tuple[str, str]]:
        for table in TABLES:
            yield table, f"SELECT rowid, * FROM {table} ORDER BY rowid"
        for spec in self.indexes:
            columns = ", ".join(c for c, _, _ in spec.columns)
            yield (
                spec.name,
                f"SELECT {columns}, rowid FROM {spec.table} INDEXED BY {spec.name} "
                f"ORDER BY {spec.order_by()}",
            )
        yield "sqlite_sequence", "SELECT name, seq FROM sqlite_sequence ORDER BY name"
        yield "schema", "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name"

    def check(self) -> None:
        """Everything our file holds, read by sqlite3, by our checker and by our reader,
        against the twin."""
        assert self.tx is None
        self.stats.checks += 1
        twin = self.twin
        expected = {name: self.select(twin, sql) for name, sql in self.queries()}
        with closing(sqlite3.connect(self.ours_path, timeout=0)) as con:
            assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            for name, sql in self.queries():
                got = self.select(con, sql)
                if got != expected[name]:
                    raise Mismatch(
                        f"sqlite3 reads {name} differently: {_diff(got, expected[name])}"
                    )
        # The connection is closed: our next begin may take the lock.
        problems = block(check_database(self.db), self.io)
        if problems:
            raise Mismatch("check_database: " + "; ".join(p.describe() for p in problems))
        stats = self.stats
        for table in TABLES:
            rows = block(self.db.scan(table), self.io)
            got = norm_rows(rows)
            if got != expected[table]:
                raise Mismatch(f"db.scan({table!r}): {_diff(got, expected[table])}")
            self.committed_counts[table] = len(rows)
            stats.most_rows = max(stats.most_rows, len(rows))
            stats.largest_rowid = max(
                [stats.largest_rowid, *(r[0] for r in rows if isinstance(r[0], int))]
            )
        stats.most_pages = max(stats.most_pages, self.db.page_count)
        for spec in self.indexes:
            got = norm_rows(block(self.db.index_scan(spec.name), self.io))
            want = self.select(
                twin,
                f"SELECT rowid, * FROM {spec.table} INDEXED BY {spec.name} "
                f"ORDER BY {spec.order_by()}",
            )
            if got != want:
                raise Mismatch(f"db.index_scan({spec.name!r}): {_diff(got, want)}")

    # -- the run --

    def setup(self) -> None:
        self.begin()
        for sql in [*TABLES.values(), *(spec.create_sql() for spec in INDEXES)]:
            if not self.ddl(sql):
                raise Mismatch(f"{sql} was refused")
        self.end(commit=True)
        self.check()

    def run(self) -> None:
        rng = self.rng
        self.setup()
        done = 0
        ops: list[tuple[Callable[[], None], float]] = [
            (self.op_insert, 40),
            (self.op_bulk, 2.5),
            (self.op_update, 22),
            (self.op_delete, 15),
            (self.op_delete_range, 1.5),
            (self.op_big, 6 if self.config.page_size < 65536 else 2),
            (self.op_drain, 0.3),
            (self.op_index_churn, 1.5),
            (self.op_read_committed, 1),
        ]
        functions = [f for f, _ in ops]
        weights = [w for _, w in ops]
        # Every run empties a table and writes a large payload at least once.
        forced = {rng.randrange(self.config.ops): self.op_drain}
        forced.setdefault(rng.randrange(self.config.ops), self.op_big)
        rolled_back = rng.randrange(3)  # one of the first transactions is rolled back
        transactions = 0
        while done < self.config.ops:
            self.begin()
            for _ in range(rng.randint(1, 40)):
                op = forced.get(done) or rng.choices(functions, weights)[0]
                self.stats.ops[op.__name__] += 1
                op()
                done += 1
                if done >= self.config.ops:
                    break
            self.end(commit=rng.random() < 0.85 and transactions != rolled_back)
            transactions += 1
            if rng.random() < 0.15:
                self.log.append("checkpoint")
                block(self.db.checkpoint(), self.io)
            self.check()

    def sqlite_writes_and_vacuums(self) -> None:
        """sqlite3, in another process, writes our file and runs VACUUM; the twin does the
        same; we reopen and must read what sqlite3 reads."""
        self.db.close()
        writes = self.sqlite_writes()
        script = "\n".join(
            [
                "import sqlite3, sys",
                "con = sqlite3.connect(sys.argv[1], isolation_level=None)",
                "con.execute('BEGIN')",
                *(f"con.execute({sql!r}, {params!r})" for sql, params in writes),
                "con.execute('COMMIT')",
                "con.execute('VACUUM')",
                "assert con.execute('PRAGMA integrity_check').fetchone() == ('ok',)",
                "con.close()",
            ]
        )
        done = subprocess.run(
            [sys.executable, "-c", script, os.fspath(self.ours_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise Mismatch(f"sqlite3 could not write our file: {done.stderr}")
        twin = self.twin
        twin.execute("BEGIN")
        for sql, params in writes:
            twin.execute(sql, params)
        twin.execute("COMMIT")
        twin.execute("VACUUM")
        self.db = block(Database.open(self.io, os.fspath(self.ours_path), writable=True), self.io)
        self.log.append("sqlite3 wrote and vacuumed; reopened")
        self.check()
        # And we write on after sqlite3's VACUUM.
        self.begin()
        for _ in range(20):
            self.op_insert()
        self.op_delete()
        self.op_update()
        self.end(commit=True)
        self.check()

    def sqlite_writes(self) -> list[tuple[str, list[object]]]:
        """What the sqlite3 process writes: statements and their parameters, with rowids
        and UNIQUE values no run uses."""
        used = set(self.rowids("t"))
        free = [r for r in range(424242, 424262) if r not in used][:2]
        return [
            (
                "INSERT OR IGNORE INTO t(id, a, b, d, e, u) VALUES (?, ?, ?, ?, ?, ?)",
                [free[0], "from sqlite", 5, "sqlite-only", b"\x01" * 3000, "sqlite-only"],
            ),
            ("INSERT OR IGNORE INTO t(id, a) VALUES (?, ?)", [free[1], "explicit"]),
            (
                "INSERT OR IGNORE INTO s(k, v, w, x) VALUES (?, ?, ?, ?)",
                ["sqlite-only", "12", b"w" * 9000, 0.25],
            ),
            ("DELETE FROM t WHERE rowid IN (SELECT rowid FROM t ORDER BY rowid LIMIT 3)", []),
            ("DELETE FROM s WHERE rowid = (SELECT min(rowid) FROM s)", []),
            ("UPDATE t SET f = 'sqlite ' || id WHERE id % 3 = 0", []),
        ]

    def close(self) -> None:
        self.db.close()
        self.twin.close()


def _show(values: dict[str, object]) -> str:
    def short(v: object) -> str:
        if isinstance(v, (str, bytes)) and len(v) > 24:
            return f"<{type(v).__name__} of {len(v)}>"
        return repr(v)

    return "{" + ", ".join(f"{k}: {short(v)}" for k, v in values.items()) + "}"


def _diff(got: list[tuple[object, ...]], want: list[tuple[object, ...]]) -> str:
    if len(got) != len(want):
        extra = [r for r in got if r not in want][:3]
        missing = [r for r in want if r not in got][:3]
        return f"{len(got)} rows, expected {len(want)}; extra {extra!r}, missing {missing!r}"
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        if a != b:
            return f"row {i}: {str(a)[:300]} != expected {str(b)[:300]}"
    return "equal"


@contextmanager
def _replayable(config: RunConfig, log: list[str]) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        recent = "\n  ".join(log[-15:])
        exc.add_note(
            f"differential fuzz failed: seed={config.seed} page_size={config.page_size} "
            f"ops={config.ops}\nreplay: {config.replay()}\nlast statements:\n  {recent}"
        )
        raise


def run_fuzz(config: RunConfig, directory: Path, *, vacuum: bool = True) -> Stats:
    log: list[str] = []
    with _replayable(config, log):
        fuzz = Fuzz(config, directory, log)
        try:
            fuzz.run()
            if vacuum:
                fuzz.sqlite_writes_and_vacuums()
        finally:
            fuzz.close()
    return fuzz.stats


# -- the tests ----------------------------------------------------------------------------

PAGE_SIZES = (512, 1024, 4096, 65536)
_OPS = {512: 300, 1024: 300, 4096: 250, 65536: 120}


@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_write_path_matches_sqlite(tmp_path: Path, seed: int, page_size: int) -> None:
    stats = run_fuzz(RunConfig(seed, page_size, _OPS[page_size]), tmp_path)
    assert stats.statements >= _OPS[page_size]
    assert stats.commits >= 2
    assert stats.rollbacks >= 1
    assert stats.checks == stats.commits + stats.rollbacks + 1  # after each, and the VACUUM
    assert stats.refused["constraint"] >= 1  # both sides refused the same rows
    assert stats.ops["op_drain"] >= 1
    assert stats.ops["op_big"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("page_size", PAGE_SIZES)
@pytest.mark.parametrize("seed", range(100, 140))
def test_write_path_matches_sqlite_many_seeds(tmp_path: Path, seed: int, page_size: int) -> None:
    ops = _OPS[page_size] * 3
    stats = run_fuzz(RunConfig(seed, page_size, ops), tmp_path)
    assert stats.statements >= ops


@pytest.mark.xfail(
    strict=True,
    reason="a Database kept open between reads does not see commits that sqlite3 made in WAL "
    "mode and checkpointed when its last connection closed: SQLite does not move the change "
    "counter in WAL mode and deletes the -wal file on that close, and we hold no lock between "
    "reads (SQLite keeps a SHARED lock while open) nor take part in the -shm protocol, so "
    "nothing tells the next read that its cached pages are stale",
)
def test_a_reader_kept_open_sees_what_sqlite3_committed_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with closing(sqlite3.connect(path)) as con:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("CREATE TABLE t(a)")
        con.execute("INSERT INTO t VALUES (1)")
        con.commit()
    io = UnixIO()
    db = block(Database.open(io, os.fspath(path)), io)
    assert block(db.scan("t"), io) == [(1, 1)]
    with closing(sqlite3.connect(path)) as con:
        con.execute("UPDATE t SET a = 2")
        con.commit()
    assert not os.path.exists(f"{path}-wal")  # checkpointed and deleted on close
    try:
        assert block(db.scan("t"), io) == [(1, 2)]
    finally:
        db.close()


@pytest.mark.skipif("FUZZ_SEED" not in os.environ, reason="set FUZZ_SEED to replay one run")
def test_replay(tmp_path: Path) -> None:
    config = RunConfig(
        int(os.environ["FUZZ_SEED"]),
        int(os.environ.get("FUZZ_PAGE_SIZE", "4096")),
        int(os.environ.get("FUZZ_OPS", "300")),
    )
    stats = run_fuzz(config, tmp_path)
    assert stats.statements >= config.ops
    print(stats)
