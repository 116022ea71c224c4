"""Write workloads for the storage engine, with their oracle: random transactions run as one
operation, and the logical states a crash may leave.

Theory of operation:
- A `Workload` is a script of `Action`s (open, begin, insert, update, delete, DDL, commit,
  rollback, sync the log, checkpoint, read back, close) drawn from a seed by
  `make_workload`, together with `states`: the logical content (`LogicalState`: every
  table's rows and every index's order) after each commit, `states[0]` being the content
  it starts from. The oracle is a plain model of the tables kept beside the script, never
  the engine: a bug in one cannot hide a bug in the other.
- `RunWorkload` runs the script as one operation (so `block`, `run_op`, the explorer and
  the soak drive it, and a crash can strike between any two steps or completions) and
  keeps a `Progress`: which action runs, how many commits returned `Done`, how many of
  them are promised durable (a durable commit, a finished `sync_log()` for the commits
  before it, or a checkpoint), and whether a commit is under way.
- What may be found afterwards (`Progress.allowed`): after a crash, the state after any
  commit from the last promised one up to the last one started (a commit under way may or
  may not have made it; commits made with `durable=False` and not yet synced may be lost,
  but only from the newest back: the log's checksum chain keeps a prefix); without a
  crash, the last commit that returned `Done`, or the one after it if a commit failed
  (its frames may be in the log, as with SQLite).
- `ReadState` reads a database back into a `LogicalState` (every table scanned, every
  index scanned in its order), so the check is exact: rows, values, and index entries.
"""

from __future__ import annotations

import dataclasses
import enum
import random
from collections.abc import Mapping, Sequence
from typing import Any

from core.driver import Operation, abort_operation, as_step
from core.io.backend import IOBackend
from core.result import IO, Done
from core.state_machine import Continue, Machine, TransitionResult
from core.storage import ConstraintError, Database, Value, WriteTransaction

__all__ = [
    "INDEXES",
    "TABLES",
    "Act",
    "Action",
    "IndexDef",
    "LogicalState",
    "Model",
    "Progress",
    "ReadState",
    "RunWorkload",
    "TableDef",
    "Workload",
    "make_workload",
    "sort_key",
]

Row = tuple[Value, ...]
"""A row as `Database.scan` returns it: the rowid, then every column (the INTEGER PRIMARY
KEY column holds the rowid too)."""


@dataclasses.dataclass(frozen=True, slots=True)
class TableDef:
    """A table a workload may create: its SQL and its columns (the first is `id INTEGER
    PRIMARY KEY`)."""

    name: str
    sql: str
    columns: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class IndexDef:
    """An index a workload may create: its table, its SQL, the positions of its columns in
    the table, and whether it is UNIQUE."""

    name: str
    table: str
    sql: str
    columns: tuple[int, ...]
    unique: bool


TABLES = {
    "t": TableDef(
        "t",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, payload BLOB)",
        ("id", "name", "score", "payload"),
    ),
    "u": TableDef(
        "u", "CREATE TABLE u(id INTEGER PRIMARY KEY, v TEXT NOT NULL, w INT)", ("id", "v", "w")
    ),
}
"""Every table a workload creates: `t` from the first transaction on, `u` now and then."""

INDEXES = {
    "t_name": IndexDef("t_name", "t", "CREATE INDEX t_name ON t(name, score)", (1, 2), False),
    "t_score": IndexDef("t_score", "t", "CREATE INDEX t_score ON t(score)", (2,), False),
    "u_v": IndexDef("u_v", "u", "CREATE UNIQUE INDEX u_v ON u(v)", (1,), True),
}
"""Every index a workload creates: `t_name` with `t`, `u_v` with `u`, `t_score` now and then."""

_NAMES: tuple[str | None, ...] = ("ada", "bob", "cy", "dee", "Eve", "", "ünï", None)


def sort_key(value: Value) -> tuple[int, Any]:
    """SQLite's order of values under the BINARY collation: NULL, numbers, text (by code
    point, which is UTF-8 byte order), blobs."""
    if value is None:
        return (0, 0)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, value)


@dataclasses.dataclass(frozen=True, slots=True)
class LogicalState:
    """What a database holds, as a reader sees it: each table's rows in rowid order, and
    each index as the rowids of its entries in index order (both sorted by name)."""

    tables: tuple[tuple[str, tuple[Row, ...]], ...]
    indexes: tuple[tuple[str, tuple[int, ...]], ...]

    def describe(self) -> str:
        """A short summary (names, row counts, largest rowids), for failure messages."""
        parts = [
            f"{name}: {len(rows)} rows" + (f" (last rowid {rows[-1][0]!r})" if rows else "")
            for name, rows in self.tables
        ]
        parts.append("indexes " + (", ".join(name for name, _ in self.indexes) or "none"))
        return "; ".join(parts)


class Model:
    """The oracle's tables: rows by rowid per table, and the indexes that exist."""

    __slots__ = ("indexes", "tables")

    def __init__(self) -> None:
        self.tables: dict[str, dict[int, Row]] = {}
        self.indexes: set[str] = set()

    @classmethod
    def from_state(cls, state: LogicalState) -> Model:
        """The model of a database read back (its tables and indexes are from `TABLES` and
        `INDEXES`)."""
        model = cls()
        for name, rows in state.tables:
            model.tables[name] = {int(row[0]): row for row in rows}  # type: ignore[arg-type]
        model.indexes = {name for name, _ in state.indexes}
        return model

    def copy(self) -> Model:
        """An independent copy (a transaction works on one)."""
        other = Model()
        other.tables = {name: dict(rows) for name, rows in self.tables.items()}
        other.indexes = set(self.indexes)
        return other

    def state(self) -> LogicalState:
        """The content as a `LogicalState`."""
        tables = tuple(
            (name, tuple(rows[k] for k in sorted(rows)))
            for name, rows in sorted(self.tables.items())
        )
        indexes = []
        for name in sorted(self.indexes):
            index = INDEXES[name]
            rows = self.tables[index.table]
            keys = {
                rowid: (*(sort_key(row[p + 1]) for p in index.columns), rowid)
                for rowid, row in rows.items()
            }
            indexes.append((name, tuple(sorted(rows, key=keys.__getitem__))))
        return LogicalState(tables, tuple(indexes))


class Act(enum.Enum):
    """What an action does."""

    OPEN = "open"
    BEGIN = "begin"
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    DDL = "ddl"
    COMMIT = "commit"
    ROLLBACK = "rollback"
    SYNC_LOG = "sync_log"
    CHECKPOINT = "checkpoint"
    VERIFY = "verify"
    CLOSE = "close"


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    """One step of a workload. `expect` is the value a statement must return (a rowid, or
    whether the row existed); `fails` says it must raise `ConstraintError` instead."""

    act: Act
    table: str = ""
    rowid: int = 0
    values: Mapping[str, object] = dataclasses.field(default_factory=dict)
    sql: str = ""
    durable: bool = True
    expect: object = None
    fails: bool = False

    def __str__(self) -> str:
        match self.act:
            case Act.INSERT:
                return f"insert {self.table} {_short(self.values)} -> {self.expect}"
            case Act.UPDATE:
                return f"update {self.table} {self.rowid} {_short(self.values)} -> {self.expect}"
            case Act.DELETE:
                return f"delete {self.table} {self.rowid} -> {self.expect}"
            case Act.DDL:
                return self.sql
            case Act.COMMIT:
                return "commit" if self.durable else "commit(durable=False)"
            case _:
                return str(self.act.value)


def _short(values: Mapping[str, object]) -> str:
    shown = {k: (f"<{len(v)} bytes>" if isinstance(v, bytes) else v) for k, v in values.items()}
    return repr(shown)


@dataclasses.dataclass(frozen=True, slots=True)
class Workload:
    """A script of actions on the database at `path`, and the state after each commit
    (`states[0]`: before the first)."""

    path: str
    page_size: int
    cache_pages: int
    auto_checkpoint: int
    actions: tuple[Action, ...]
    states: tuple[LogicalState, ...]

    @property
    def commits(self) -> int:
        """How many commits the script makes."""
        return len(self.states) - 1

    def describe(self) -> str:
        """The script, one action a line, for failure messages."""
        head = (
            f"workload on {self.path!r}: page_size={self.page_size}, "
            f"cache_pages={self.cache_pages}, auto_checkpoint={self.auto_checkpoint}"
        )
        return "\n".join([head, *(f"  {i:3d} {a}" for i, a in enumerate(self.actions))])


def _payload(rng: random.Random, page_size: int) -> bytes:
    size = rng.choice((0, rng.randint(1, 40), page_size // 3, 2 * page_size + 7, 5 * page_size))
    return rng.randbytes(size)


def _unused_rowid(rng: random.Random, rows: Mapping[int, Row]) -> int:
    while True:
        rowid = rng.randint(1, 10_000)
        if rowid not in rows:
            return rowid


class _Writer:
    """Draws statements against a transaction's copy of the model."""

    def __init__(self, rng: random.Random, page_size: int) -> None:
        self.rng = rng
        self.page_size = page_size

    def ddl(self, m: Model) -> list[Action]:
        rng = self.rng
        choices = []
        if "u" not in m.tables:
            choices.append("create u")
        else:
            choices.append("drop u")
        choices.append("drop t_score" if "t_score" in m.indexes else "create t_score")
        match rng.choice(choices):
            case "create u":
                m.tables["u"] = {}
                m.indexes.add("u_v")
                return [
                    Action(Act.DDL, sql=TABLES["u"].sql),
                    Action(Act.DDL, sql=INDEXES["u_v"].sql),
                ]
            case "drop u":
                del m.tables["u"]
                m.indexes.discard("u_v")
                return [Action(Act.DDL, sql="DROP TABLE u")]
            case "create t_score":
                m.indexes.add("t_score")
                return [Action(Act.DDL, sql=INDEXES["t_score"].sql)]
            case _:
                m.indexes.discard("t_score")
                return [Action(Act.DDL, sql="DROP INDEX t_score")]

    def statement(self, m: Model) -> list[Action]:
        rng = self.rng
        if rng.random() < 0.06:
            return self.ddl(m)
        if "u" in m.tables and rng.random() < 0.3:
            return [self.on_u(m.tables["u"])]
        return [self.on_t(m.tables["t"])]

    def on_t(self, rows: dict[int, Row]) -> Action:
        rng = self.rng
        kind = rng.choices(("insert", "update", "delete"), (5, 3, 2))[0]
        if kind == "insert" or (not rows and kind != "delete"):
            name = rng.choice(_NAMES)
            score = rng.choice((None, round(rng.uniform(-50, 50), 2)))
            payload = _payload(rng, self.page_size)
            values: dict[str, Value] = {"name": name, "score": score, "payload": payload}
            if rng.random() < 0.15:
                rowid = _unused_rowid(rng, rows)
                values["id"] = rowid
            else:
                rowid = max(rows, default=0) + 1
            rows[rowid] = (rowid, rowid, name, score, payload)
            return Action(Act.INSERT, "t", values=values, expect=rowid)
        rowid = (
            rng.choice(sorted(rows)) if rows and rng.random() < 0.85 else _unused_rowid(rng, rows)
        )
        if kind == "delete":
            found = rows.pop(rowid, None) is not None
            return Action(Act.DELETE, "t", rowid, expect=found)
        old = rows.get(rowid)
        values = {}
        for column, make in (
            ("name", lambda: rng.choice(_NAMES)),
            ("score", lambda: rng.choice((None, round(rng.uniform(-50, 50), 2)))),
            ("payload", lambda: _payload(rng, self.page_size)),
        ):
            if rng.random() < 0.5:
                values[column] = make()
        if not values:
            values["name"] = rng.choice(_NAMES)
        if old is None:
            return Action(Act.UPDATE, "t", rowid, values=values, expect=False)
        row = list(old)
        for column, value in values.items():
            row[1 + TABLES["t"].columns.index(column)] = value
        new_rowid = rowid
        if rng.random() < 0.1:
            new_rowid = _unused_rowid(rng, rows)
            values["id"] = new_rowid
            del rows[rowid]
        row[0] = row[1] = new_rowid
        rows[new_rowid] = tuple(row)
        return Action(Act.UPDATE, "t", rowid, values=values, expect=True)

    def on_u(self, rows: dict[int, Row]) -> Action:
        rng = self.rng
        taken = {row[2] for row in rows.values()}
        kind = rng.choices(("insert", "update", "delete"), (5, 2, 1))[0]
        if kind == "insert" or not rows:
            roll = rng.random()
            if roll < 0.1 and taken:
                v = rng.choice(sorted(taken, key=str))  # a duplicate: UNIQUE refuses it
                return Action(Act.INSERT, "u", values={"v": v, "w": 1}, fails=True)
            if roll < 0.15:
                return Action(Act.INSERT, "u", values={"w": 2}, fails=True)  # NOT NULL
            v = self.fresh_v(taken)
            w = rng.randint(-(2**40), 2**40)
            rowid = max(rows, default=0) + 1
            rows[rowid] = (rowid, rowid, v, w)
            return Action(Act.INSERT, "u", values={"v": v, "w": w}, expect=rowid)
        rowid = rng.choice(sorted(rows))
        if kind == "delete":
            del rows[rowid]
            return Action(Act.DELETE, "u", rowid, expect=True)
        v = self.fresh_v(taken)
        old = rows[rowid]
        rows[rowid] = (rowid, rowid, v, old[3])
        return Action(Act.UPDATE, "u", rowid, values={"v": v}, expect=True)

    def fresh_v(self, taken: set[Value]) -> str:
        while True:
            v = f"v{self.rng.randint(0, 99_999)}"
            if v not in taken:
                return v


def make_workload(
    rng: random.Random,
    *,
    transactions: int = 4,
    statements: int = 6,
    page_size: int = 512,
    cache_pages: int = 2048,
    group_commit: bool = False,
    checkpoints: float = 0.25,
    rollbacks: float = 0.1,
    verify: float = 0.0,
    final_checkpoint: bool = True,
    auto_checkpoint: int = 1000,
    start: LogicalState | None = None,
    path: str = "db",
) -> Workload:
    """A random workload drawn from `rng`: open `path` (writable; a new file gets pages of
    `page_size`), then `transactions` transactions of up to `statements` statements each
    (the first creates `t` and `t_name` when the database has no `t`), each committed
    (durable, or with `group_commit` mostly not, with `sync_log()` now and then) or, with
    probability `rollbacks`, rolled back; a checkpoint after a transaction with
    probability `checkpoints` and at the end if `final_checkpoint`; a read back through
    the writer's own handle after a transaction with probability `verify`; then close.

    `start` is what the database holds (None: a new, empty one); the workload's model
    starts there.
    """
    model = Model() if start is None else Model.from_state(start)
    writer = _Writer(rng, page_size)
    actions: list[Action] = [Action(Act.OPEN)]
    states = [model.state()]
    unsynced = False
    for _ in range(transactions):
        actions.append(Action(Act.BEGIN))
        pending = model.copy()
        if "t" not in pending.tables:
            pending.tables["t"] = {}
            pending.indexes.add("t_name")
            actions.append(Action(Act.DDL, sql=TABLES["t"].sql))
            actions.append(Action(Act.DDL, sql=INDEXES["t_name"].sql))
        for _ in range(rng.randint(1, statements)):
            actions.extend(writer.statement(pending))
        if rng.random() < rollbacks:
            actions.append(Action(Act.ROLLBACK))
        else:
            durable = not group_commit or rng.random() < 0.25
            actions.append(Action(Act.COMMIT, durable=durable))
            model = pending
            states.append(model.state())
            unsynced = not durable
        if unsynced and rng.random() < 0.4:
            actions.append(Action(Act.SYNC_LOG))
            unsynced = False
        if rng.random() < checkpoints:
            actions.append(Action(Act.CHECKPOINT))
            unsynced = False
        if rng.random() < verify:
            actions.append(Action(Act.VERIFY))
    if unsynced and group_commit:
        actions.append(Action(Act.SYNC_LOG))
    if final_checkpoint:
        actions.append(Action(Act.CHECKPOINT))
    actions.append(Action(Act.CLOSE))
    return Workload(path, page_size, cache_pages, auto_checkpoint, tuple(actions), tuple(states))


class Progress:
    """How far a `RunWorkload` got (see the module docstring)."""

    __slots__ = ("action", "committed", "committing", "db", "promised", "tx")

    def __init__(self) -> None:
        self.action = 0
        """The index of the action running (or next)."""
        self.committed = 0
        """Commits that returned `Done`."""
        self.promised = 0
        """Commits promised durable."""
        self.committing = False
        """True from the start of a commit until it returned `Done` (or for good, if it
        failed)."""
        self.db: Database | None = None
        self.tx: WriteTransaction | None = None

    def allowed(self, *, crashed: bool) -> range:
        """The commits (indexes into `Workload.states`) whose state may be found now."""
        low = self.promised if crashed else self.committed
        return range(low, self.committed + 1 + int(self.committing))

    def check(self, workload: Workload, state: LogicalState, *, crashed: bool) -> str | None:
        """None if `state` is one the database may hold now, else what is wrong."""
        allowed = self.allowed(crashed=crashed)
        if any(workload.states[i] == state for i in allowed):
            return None
        found = [i for i, s in enumerate(workload.states) if s == state]
        where = f"the state after commit {found}" if found else "no state of the workload"
        return (
            f"{'after a crash' if crashed else 'afterwards'} the database holds {where} "
            f"({state.describe()}); allowed: after commits {allowed.start}.."
            f"{allowed.stop - 1} ({workload.states[allowed.stop - 1].describe()}); "
            f"stopped at action {self.action}"
        )

    def __repr__(self) -> str:
        return (
            f"Progress(action={self.action}, committed={self.committed}, "
            f"promised={self.promised}, committing={self.committing})"
        )


class RunWorkload(Machine[int]):
    """Run a `Workload` on `io` as one operation; `Done(commits made)`.

    Each action's operation is built when its turn comes and wrapped by `wrap` (e.g.
    `SimulatorIO.with_yields`). Raises what an action raises (a `ConstraintError` only
    where none is expected), and `AssertionError` when a statement returns another value
    than the oracle's or a read back differs from it.
    """

    __slots__ = ("_op", "_step", "_sync_target", "io", "progress", "workload", "wrap")

    def __init__(
        self,
        io: IOBackend,
        workload: Workload,
        progress: Progress | None = None,
        *,
        wrap: Any = None,
    ) -> None:
        super().__init__()
        self.io = io
        self.workload = workload
        self.progress = Progress() if progress is None else progress
        self.wrap = wrap
        self._op: Operation[Any] | None = None
        self._step: Any = None
        self._sync_target = 0

    def _advance(self) -> TransitionResult[int]:
        progress = self.progress
        actions = self.workload.actions
        if progress.action >= len(actions):
            return Done(progress.committed)
        action = actions[progress.action]
        if self._op is None:
            op = self._build(action)
            if self.wrap is not None:
                op = self.wrap(op)
            self._op = op
            self._step = as_step(op)
        try:
            result = self._step()
        except ConstraintError:
            if not action.fails:
                raise
            self._next()
            return Continue
        if type(result) is not Done:
            return result  # type: ignore[no-any-return]
        self._finish(action, result.value)
        self._next()
        return Continue

    def _next(self) -> None:
        self._op = None
        self._step = None
        self.progress.action += 1

    def _build(self, action: Action) -> Operation[Any]:
        progress = self.progress
        workload = self.workload
        if action.act is Act.OPEN:
            return Database.open(
                self.io,
                workload.path,
                writable=True,
                page_size=workload.page_size,
                cache_pages=workload.cache_pages,
            )
        db = progress.db
        assert db is not None
        match action.act:
            case Act.BEGIN:
                return db.begin()
            case Act.SYNC_LOG:
                self._sync_target = progress.committed
                return db.sync_log()
            case Act.CHECKPOINT:
                return db.checkpoint()
            case Act.VERIFY:
                return ReadState(db)
            case Act.CLOSE:
                return _Close(db)
            case _:
                pass
        tx = progress.tx
        assert tx is not None
        match action.act:
            case Act.INSERT:
                return tx.insert(action.table, action.values)
            case Act.UPDATE:
                return tx.update(action.table, action.rowid, action.values)
            case Act.DELETE:
                return tx.delete(action.table, action.rowid)
            case Act.DDL:
                return tx.execute_ddl(action.sql)
            case Act.COMMIT:
                progress.committing = True
                return tx.commit(durable=action.durable)
            case _:
                return tx.rollback()

    def _finish(self, action: Action, value: object) -> None:
        progress = self.progress
        match action.act:
            case Act.OPEN:
                assert isinstance(value, Database)
                value.auto_checkpoint = self.workload.auto_checkpoint
                progress.db = value
            case Act.BEGIN:
                assert isinstance(value, WriteTransaction)
                progress.tx = value
            case Act.INSERT | Act.UPDATE | Act.DELETE:
                if action.fails:
                    raise AssertionError(f"action {progress.action} ({action}) did not fail")
                if value != action.expect:
                    raise AssertionError(f"action {progress.action} ({action}) returned {value!r}")
            case Act.COMMIT:
                progress.committed += 1
                progress.committing = False
                progress.tx = None
                if action.durable:
                    progress.promised = progress.committed
            case Act.ROLLBACK:
                progress.tx = None
            case Act.SYNC_LOG:
                progress.promised = max(progress.promised, self._sync_target)
            case Act.CHECKPOINT:
                progress.promised = progress.committed
            case Act.VERIFY:
                assert isinstance(value, LogicalState)
                problem = progress.check(self.workload, value, crashed=False)
                if problem is not None:
                    raise AssertionError(f"read back through the writer's handle: {problem}")
            case _:
                pass

    def _rollback(self, error: BaseException, abandoned: bool) -> None:
        if abandoned and self._op is not None:
            abort_operation(self._op, error)


class _Close:
    """Close a database; `Done(None)` at once."""

    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        self.db = db

    def step(self) -> Done[None]:
        self.db.close()
        return Done(None)


class ReadState(Machine[LogicalState]):
    """Read a whole database back; `Done(LogicalState)` (tables other than `sqlite_`
    ones, every index). Raises what the reads raise."""

    __slots__ = ("_indexes", "_op", "_rows", "_tables", "db")

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self._op: Any = None
        self._tables: list[str] | None = None
        self._indexes: list[str] = []
        self._rows: dict[str, Sequence[Row]] = {}

    def _advance(self) -> TransitionResult[LogicalState]:
        if self._op is None:
            self._op = self._next_read()
            if self._op is None:
                return Done(self._state())
        result = self._op.step()
        if type(result) is IO:
            return result
        assert isinstance(result, Done)
        if self._tables is None:
            schema = result.value
            self._tables = sorted(t.name for t in schema.tables if not t.name.startswith("sqlite_"))
            self._indexes = sorted(i.name for i in schema.indexes)
        else:
            self._rows[self._reading()] = result.value
        self._op = None
        return Continue

    def _reading(self) -> str:
        assert self._tables is not None
        names = self._tables + [f"index {n}" for n in self._indexes]
        return names[len(self._rows)]

    def _next_read(self) -> Any:
        db = self.db
        if self._tables is None:
            return db.read_schema()
        done = len(self._rows)
        if done < len(self._tables):
            return db.scan(self._tables[done])
        done -= len(self._tables)
        if done < len(self._indexes):
            return db.index_scan(self._indexes[done])
        return None

    def _state(self) -> LogicalState:
        assert self._tables is not None
        tables = tuple((name, tuple(self._rows[name])) for name in self._tables)
        indexes = tuple(
            (name, tuple(int(row[0]) for row in self._rows[f"index {name}"]))  # type: ignore[arg-type]
            for name in self._indexes
        )
        return LogicalState(tables, indexes)
