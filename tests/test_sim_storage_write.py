"""The storage engine's write path under the simulator: a power loss at every I/O, faults,
re-entrancy.

- Crash safety: a workload (a table with an index, transactions of inserts, updates and
  deletes, some with overflow payloads, DDL, checkpoints) runs with every I/O deferred,
  and a crash strikes at each tick in turn (each step of the workload and each single I/O
  completion; `core.sim.crashes`) during `begin`, `commit`, `sync_log` and checkpoints, in
  each crash mode the simulator has: unsynced writes lost; kept in part, whole writes in a
  random order; torn, 512-byte sectors kept in part. The machine reboots (a fresh
  simulator holding what survived), the database is opened again and read back whole
  (every table, every index in its order): it must hold the state after one of the
  commits from the last one promised durable up to the one under way, never anything
  else. sqlite3 reads the same files (`PRAGMA integrity_check` and the same rows).
- Recovery: a second crash during the reopen and the transaction after it.
- Group commit: commits made with `durable=False` are promised only once `sync_log()` (or
  a checkpoint, or a later durable commit) returned; a crash may take them, newest first.
- `explore` on each write operation, from a warm and a cold page cache; planted
  re-entrancy bugs are caught.
- Injected I/O faults during commit and checkpoint: a clean error, the transaction over,
  the database readable, the lock given back.

A failure names the workload seed, the crash mode and tick, and how to replay it
(`replay_crash`); seeded tests replay with `--sim-seed=N`.
"""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from core import IO, CompletionError, Done, ErrorKind, block
from core.driver import Operation
from core.sim import Chain, FaultConfig, ScheduleMismatchError, SimulatorIO, explore, run_op
from core.sim.crashes import CrashRun, crash_points, reboot, run_to_crash
from core.sim.scenarios import SCENARIOS, Case, Scenario
from core.sim.soak import run_soak
from core.sim.workload import (
    INDEXES,
    TABLES,
    Act,
    LogicalState,
    Progress,
    ReadState,
    RunWorkload,
    Workload,
    make_workload,
)
from core.storage import (
    CorruptDatabaseError,
    Database,
    Insert,
    Schema,
    StorageError,
    TransactionState,
    WriteTransaction,
)
from core.storage.changes import Changes

PATH = "db"
MODES = {
    "lost": FaultConfig(),
    "torn": FaultConfig(crash_keep_unsynced=0.5, crash_sector=512),
    "subset": FaultConfig(crash_keep_unsynced=0.5),
}
"""The crash modes: unsynced writes lost; torn (each 512-byte sector of an unsynced write
kept or not, in a random order); a random subset of unsynced writes kept whole."""
WRITE_PHASES = ("begin", "commit", "sync_log", "checkpoint")
"""The actions whose ticks are crash points: every one that writes (`begin` writes a new
database's first page, and checkpoints when the log is long)."""


# -- running a workload with a crash ------------------------------------------------------


def small_workload(seed: int, page_size: int, **settings: Any) -> Workload:
    """A few transactions of a handful of statements each, ending with a checkpoint."""
    return make_workload(
        random.Random(seed), transactions=4, statements=6, page_size=page_size, **settings
    )


def _label(progress: Progress, workload: Workload) -> Callable[[], str]:
    actions = workload.actions

    def label() -> str:
        index = progress.action
        if index >= len(actions):
            return "end"
        name = actions[index].act.value
        # A begin on an empty file writes its first page: see the xfail test below.
        db = progress.db
        return "create" if name == "begin" and db is not None and db.header is None else name

    return label


@dataclasses.dataclass
class Life:
    """One run of a workload until it ends or a crash strikes."""

    workload: Workload
    io: SimulatorIO
    progress: Progress
    run: CrashRun[int]

    @property
    def where(self) -> str:
        run = self.run
        label = run.labels[-1] if run.labels else "start"
        return f"tick {run.ticks} ({label}, {self.progress})"


def live(
    workload: Workload,
    seed: int,
    faults: FaultConfig,
    crash_at: int | None,
    files: dict[str, bytes] | None = None,
) -> Life:
    """Run `workload` on a new simulator (seed `seed`, every I/O deferred) holding `files`,
    crashing at tick `crash_at`."""
    io = SimulatorIO(seed, faults)
    for name, data in (files or {}).items():
        io.create_file(name, data)
    progress = Progress()
    op = RunWorkload(io, workload, progress)
    run = run_to_crash(op, io, crash_at, label=_label(progress, workload))
    return Life(workload, io, progress, run)


def recover(io: SimulatorIO) -> tuple[SimulatorIO, LogicalState]:
    """Reboot after `io` crashed, open the database for writing and read it back."""
    after = reboot(io)
    db = block(Database.open(after, PATH, writable=True), after)
    state = block(ReadState(db), after)
    db.close()
    return after, state


def sqlite_state(files: dict[str, bytes], folder: Path) -> tuple[str, LogicalState]:
    """sqlite3's `PRAGMA integrity_check` and its reading of the database (the files as
    the simulator holds them, written to `folder`), as a `LogicalState`."""
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with closing(sqlite3.connect(folder / PATH)) as con:
        con.execute("PRAGMA synchronous=OFF")  # its checkpoint at close need not reach the disk
        check = "; ".join(row[0] for row in con.execute("PRAGMA integrity_check"))
        names = con.execute("SELECT type, name FROM sqlite_schema ORDER BY name").fetchall()
        tables = []
        indexes = []
        for kind, name in names:
            if kind == "table" and not name.startswith("sqlite_"):
                rows = con.execute(f"SELECT rowid, * FROM {name} ORDER BY rowid").fetchall()
                tables.append((name, tuple(rows)))
            elif kind == "index":
                index = INDEXES[name]
                columns = [TABLES[index.table].columns[p] for p in index.columns]
                order = ", ".join([*columns, "rowid"])
                rowids = con.execute(
                    f"SELECT rowid FROM {index.table} INDEXED BY {name} ORDER BY {order}"
                ).fetchall()
                indexes.append((name, tuple(r[0] for r in rowids)))
    return check, LogicalState(tuple(tables), tuple(indexes))


class Checker:
    """Checks crash after crash; collects what went wrong, with how to replay it."""

    def __init__(self, tmp_path: Path, sqlite_every: int) -> None:
        self.tmp_path = tmp_path
        self.sqlite_every = sqlite_every
        self.problems: list[str] = []
        self.checked = 0
        self.sqlite_checked = 0
        self.found: list[int] = []
        """For each check, which commit's state the database held."""

    def after_crash(self, life: Life, replay: str) -> tuple[SimulatorIO, LogicalState] | None:
        """Recover from `life`'s crash and check the state; None if that failed."""
        self.checked += 1
        try:
            after, state = recover(life.io)
        except Exception as exc:
            self.fail(life, f"reopening raised {exc!r}", replay)
            return None
        problem = life.progress.check(life.workload, state, crashed=True)
        if problem is not None:
            self.fail(life, problem, replay)
            return None
        allowed = life.progress.allowed(crashed=True)
        self.found.append(max(i for i in allowed if life.workload.states[i] == state))
        if self.sqlite_every and self.checked % self.sqlite_every == 0:
            self.sqlite_checked += 1
            check, theirs = sqlite_state(after.snapshot(), self.tmp_path / f"c{self.checked}")
            if check != "ok" or theirs != state:
                self.fail(life, f"sqlite3 says {check!r} and reads {theirs.describe()}", replay)
        return after, state

    def fail(self, life: Life, problem: str, replay: str) -> None:
        self.problems.append(f"{life.where}: {problem}\n    replay: {replay}")

    def assert_clean(self) -> None:
        shown = "\n  ".join(self.problems[:5])
        assert not self.problems, f"{len(self.problems)} of {self.checked} crashes:\n  {shown}"


def replay_crash(
    seed: int, page_size: int, mode: str, crash_at: int, **settings: Any
) -> tuple[Life, str | None]:
    """Run `small_workload(seed, page_size, **settings)` on a simulator of seed `seed`
    with a `mode` crash at tick `crash_at`; the run (its simulator's trace:
    `life.io.trace.format()`) and what is wrong after recovery (None if nothing)."""
    workload = small_workload(seed, page_size, **settings)
    life = live(workload, seed, MODES[mode], crash_at)
    try:
        _, state = recover(life.io)
    except Exception as exc:
        return life, f"reopening raised {exc!r}"
    return life, life.progress.check(workload, state, crashed=True)


def _labels(
    workload: Workload, seed: int, files: dict[str, bytes] | None = None
) -> tuple[str, ...]:
    """The label of each tick of a run without a crash."""
    dry = live(workload, seed, FaultConfig(), None, files)
    assert dry.run.outcome is not None and dry.run.outcome.error is None, dry.run.outcome
    return dry.run.labels


def _points(
    workload: Workload,
    seed: int,
    phases: tuple[str, ...] = WRITE_PHASES,
    files: dict[str, bytes] | None = None,
) -> list[int]:
    """The ticks of a run without a crash whose label is in `phases`."""
    return crash_points(_labels(workload, seed, files), phases)


def _covers(workload: Workload) -> set[str]:
    """What of interest a workload does."""
    found = set()
    for a in workload.actions:
        payload = a.values.get("payload")
        if isinstance(payload, bytes) and len(payload) > workload.page_size:
            found.add("overflow")
        if a.act in (Act.UPDATE, Act.DELETE) and a.expect is True:
            found.add(a.act.value)
        if a.act is Act.DDL and a.sql.startswith("CREATE INDEX"):
            found.add("index")
        if a.act is Act.CHECKPOINT:
            found.add("checkpoint")
        if a.act is Act.COMMIT and not a.durable:
            found.add("group commit")
        if a.act is Act.SYNC_LOG:
            found.add("sync_log")
    return found


SMALL = [(20, 512), (27, 4096)]
"""Small workloads (seed, page size): each creates a table with an index, makes inserts,
updates and deletes, some with overflow payloads, and checkpoints."""


# -- the bugs the crash tests found ------------------------------------------------------------


def _two_commits(page_size: int) -> tuple[SimulatorIO, int]:
    """A database whose second commit, an overflowing row, is written but not synced;
    and the WAL offset where that commit's frames start."""
    io = SimulatorIO(0, inline=1.0)
    db = block(Database.open(io, PATH, writable=True, page_size=page_size), io)
    tx = block(db.begin(), io)
    block(tx.execute_ddl("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)"), io)
    block(tx.insert("t", {"b": b"first"}), io)
    block(tx.commit(), io)
    start = len(io.file_contents(PATH + "-wal"))
    tx = block(db.begin(), io)
    block(tx.insert("t", {"b": bytes(range(256)) * 60}), io)
    block(tx.commit(durable=False), io)
    return io, start


def test_a_crash_that_tears_a_page_in_the_middle_of_a_commit_drops_the_commit(
    tmp_path: Path,
) -> None:
    # A power loss during the commit's append: the disk wrote the frame headers and the
    # commit frame, but one 512-byte sector of an earlier frame's page never landed. The
    # frames after it still chain on from its stored checksum; the log must end there.
    io, start = _two_commits(4096)
    wal = bytearray(io.file_contents(PATH + "-wal"))
    frame = 24 + 4096
    assert (len(wal) - start) // frame == 5  # page 1, the leaf, three overflow pages
    lost = (start + 3 * frame + 24) // 512 * 512 + 512  # inside the fourth frame's page
    assert start + 3 * frame + 24 < lost and lost + 512 < start + 4 * frame
    wal[lost : lost + 512] = bytes(512)
    files = {PATH: io.file_contents(PATH), PATH + "-wal": bytes(wal)}
    after = SimulatorIO(1, inline=1.0)
    for name, data in files.items():
        after.create_file(name, data)
    db = block(Database.open(after, PATH), after)
    assert block(db.scan("t"), after) == [(1, 1, b"first")]
    check, theirs = sqlite_state(files, tmp_path / "sqlite")
    assert check == "ok" and theirs.tables == (("t", ((1, 1, b"first"),)),)


@pytest.mark.xfail(
    strict=True,
    raises=CorruptDatabaseError,
    reason="a new database's first page is written in place (SQLite would journal it): a "
    "crash that tears it at sector boundaries, or a torn write, leaves a file this engine "
    "cannot open, nor sqlite3 when the header's sector is the one lost "
    "(write_transaction.py, Begin._work, _Init.CHECK and _Init.WRITE)",
)
def test_a_crash_that_tears_the_first_page_of_a_new_database_leaves_it_empty() -> None:
    workload = small_workload(27, 4096)
    for seed in range(20):
        points = _points(workload, seed, ("create",))
        assert points
        for k in points:
            life = live(workload, seed, MODES["torn"], k)
            _, state = recover(life.io)  # raises CorruptDatabaseError for some seed
            assert life.progress.check(workload, state, crashed=True) is None


# -- a crash at every I/O --------------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize(("seed", "page_size"), SMALL)
def test_a_crash_at_every_io_of_commit_and_checkpoint(
    seed: int, page_size: int, mode: str, tmp_path: Path
) -> None:
    workload = small_workload(seed, page_size)
    assert {"overflow", "update", "delete", "index", "checkpoint"} <= _covers(workload)
    phases = WRITE_PHASES if mode == "torn" else (*WRITE_PHASES, "create")
    points = _points(workload, seed, phases)
    assert len(points) > 40
    checker = Checker(tmp_path, sqlite_every=4)
    for k in points:
        life = live(workload, seed, MODES[mode], k)
        assert life.run.crashed
        checker.after_crash(life, f"replay_crash({seed}, {page_size}, {mode!r}, {k})")
    checker.assert_clean()
    assert checker.sqlite_checked >= len(points) // 4
    # Crashes were found before and after commits: the check is not vacuous.
    assert len(set(checker.found)) == workload.commits + 1


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("seed", range(8))
def test_a_crash_at_every_io_of_more_workloads_checked_by_sqlite(
    seed: int, mode: str, tmp_path: Path
) -> None:
    seed += 100
    page_size = (512, 1024, 4096)[seed % 3]
    settings = {"auto_checkpoint": 6, "cache_pages": 8} if seed % 2 else {}
    workload = small_workload(seed, page_size, **settings)
    checker = Checker(tmp_path, sqlite_every=1)
    for k in _points(workload, seed, WRITE_PHASES):
        life = live(workload, seed, MODES[mode], k)
        checker.after_crash(life, f"replay_crash({seed}, {page_size}, {mode!r}, {k}, **{settings})")
    checker.assert_clean()


# -- recovery: a crash during the reopen and the transaction after it ------------------------


def _second_life(state: LogicalState, page_size: int, seed: int) -> Workload:
    """Open the recovered database, one transaction on it, a checkpoint."""
    return make_workload(
        random.Random(seed),
        transactions=1,
        statements=4,
        page_size=page_size,
        rollbacks=0.0,
        checkpoints=0.0,
        start=state,
    )


def _crash_twice(
    checker: Checker,
    workload: Workload,
    seed: int,
    mode: str,
    first: int,
    seconds: Callable[[list[int]], list[int]],
) -> None:
    life = live(workload, seed, MODES[mode], first)
    replay = f"replay_crash({seed}, {workload.page_size}, {mode!r}, {first})"
    recovered = checker.after_crash(life, replay)
    if recovered is None:
        return
    after, state = recovered
    files = after.snapshot()
    again = _second_life(state, workload.page_size, first)
    phases = ("open", *WRITE_PHASES) if mode == "torn" else ("open", "create", *WRITE_PHASES)
    points = _points(again, seed + 1, phases, files)
    assert points
    for k in seconds(points):
        second = live(again, seed + 1, MODES[mode], k, files)
        checker.after_crash(second, f"{replay}, then a crash at tick {k} of the next life")


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_second_crash_during_recovery_or_the_commit_after_it(mode: str, tmp_path: Path) -> None:
    seed, page_size = SMALL[0]
    workload = small_workload(seed, page_size)
    labels = _labels(workload, seed)
    firsts = crash_points(labels, WRITE_PHASES)
    rng = random.Random(f"{mode} {seed}")
    checker = Checker(tmp_path, sqlite_every=5)
    for first in firsts[::2]:
        _crash_twice(checker, workload, seed, mode, first, lambda points: [rng.choice(points)])
    # And one first crash, in the middle of the last commit, followed by every second one.
    last_commit = crash_points(labels, ("commit",))[-2]
    _crash_twice(checker, workload, seed, mode, last_commit, lambda points: points)
    checker.assert_clean()
    assert checker.checked > len(firsts) // 2 + 20


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize(("seed", "page_size"), SMALL)
def test_every_second_crash_after_every_first_crash(
    seed: int, page_size: int, mode: str, tmp_path: Path
) -> None:
    workload = small_workload(seed, page_size)
    checker = Checker(tmp_path, sqlite_every=7)
    for first in _points(workload, seed):
        _crash_twice(checker, workload, seed, mode, first, lambda points: points)
    checker.assert_clean()


# -- group commit ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_group_commits_are_promised_only_once_the_log_is_synced(mode: str, tmp_path: Path) -> None:
    seed = 10
    workload = make_workload(
        random.Random(seed), transactions=5, statements=5, page_size=1024, group_commit=True
    )
    assert {"group commit", "sync_log", "checkpoint", "overflow"} <= _covers(workload)
    checker = Checker(tmp_path, sqlite_every=6)
    lost_unpromised = 0
    exact_after_sync = 0
    for k in _points(workload, seed):
        life = live(workload, seed, MODES[mode], k)
        progress = life.progress
        if checker.after_crash(life, f"group commit seed {seed}, {mode!r}, tick {k}") is None:
            continue
        found = checker.found[-1]
        assert found >= progress.promised  # what sync_log (or a durable commit) promised
        lost_unpromised += found < progress.committed
        done = workload.actions[progress.action - 1].act
        if done is Act.SYNC_LOG and not progress.committing:
            assert found == progress.committed
            exact_after_sync += 1
    checker.assert_clean()
    if mode == "lost":
        # Commits that returned Done without the sync were lost: the promise is only
        # kept by sync_log, and the check tells the two apart.
        assert lost_unpromised > 5
    assert exact_after_sync > 0


# -- random workloads, many seeds --------------------------------------------------------------


def _random_workload(seed: int) -> tuple[Workload, list[str]]:
    rng = random.Random(seed)
    settings = {
        "transactions": rng.randint(3, 8),
        "statements": rng.randint(3, 12),
        "page_size": rng.choice((512, 1024, 4096)),
        "cache_pages": rng.choice((2048, 8)),
        "group_commit": rng.random() < 0.3,
        "auto_checkpoint": rng.choice((1000, 8)),
        "verify": 0.3,
    }
    modes = [rng.choice(sorted(MODES)) for _ in range(4)]
    return make_workload(rng, **settings), modes  # type: ignore[arg-type]


def _crash_random_points(sim_seed: int, tmp_path: Path) -> Checker:
    workload, modes = _random_workload(sim_seed)
    rng = random.Random(sim_seed)
    points = _points(workload, sim_seed)
    checker = Checker(tmp_path, sqlite_every=1)
    for mode in modes:
        k = rng.choice(points)
        checker.after_crash(live(workload, sim_seed, MODES[mode], k), f"{mode!r} tick {k}")
    return checker


@pytest.mark.sim_seeds(6)
def test_random_workloads_crash_anywhere(sim_seed: int, tmp_path: Path) -> None:
    checker = _crash_random_points(sim_seed, tmp_path)
    checker.assert_clean()
    assert checker.sqlite_checked == 4


@pytest.mark.slow
@pytest.mark.sim_seeds(400, start=1000)
def test_random_workloads_crash_anywhere_many_seeds(sim_seed: int, tmp_path: Path) -> None:
    _crash_random_points(sim_seed, tmp_path).assert_clean()


# -- explore: every write operation, from a warm and a cold page cache ------------------------

BASE = make_workload(
    random.Random(5),
    transactions=2,
    statements=8,
    page_size=512,
    checkpoints=0.0,
    rollbacks=0.0,
    final_checkpoint=False,
)
"""The database the explorer starts from: two commits, still in the log."""
BASE_STATE = BASE.states[-1]
BASE_ROWIDS = [row[0] for row in dict(BASE_STATE.tables)["t"]]


def _build_base(io: SimulatorIO, *, cold: bool, begin: bool) -> dict[str, Any]:
    """The base database on `io`: its writer's handle (warm: it cached every page it
    wrote) or a new one with a small cache (cold), with a transaction begun if `begin`."""
    progress = Progress()
    block(RunWorkload(io, dataclasses.replace(BASE, actions=BASE.actions[:-1]), progress), io)
    db = progress.db
    assert db is not None
    if cold:
        db.close()
        db = block(Database.open(io, PATH, writable=True, cache_pages=16), io)
    held: dict[str, Any] = {"db": db}
    if begin:
        held["tx"] = block(db.begin(), io)
    return held


def _setups(held: dict[str, Any], *, begin: bool = True) -> tuple[Callable[..., None], ...]:
    def warm(io: SimulatorIO) -> None:
        PLANS.clear()
        held.update(_build_base(io, cold=False, begin=begin))

    def cold(io: SimulatorIO) -> None:
        PLANS.clear()
        held.update(_build_base(io, cold=True, begin=begin))

    return warm, cold


def _then_commit_and_read(
    io: SimulatorIO, held: dict[str, Any], statement: Callable[[WriteTransaction], Any]
) -> Operation[list[Any]]:
    """The statement, then a commit, then the whole database read back: the outcome shows
    what the statement did."""
    tx = held["tx"]
    return Chain(
        [
            lambda _: statement(tx),
            lambda _: tx.commit(),
            lambda _: ReadState(held["db"]),
        ],
        wrap=io.with_yields,
    )


def _same(a: list[Any], b: list[Any]) -> bool:
    def plain(value: Any) -> Any:
        if isinstance(value, Schema):
            return sorted(t.name for t in value.tables), sorted(i.name for i in value.indexes)
        if isinstance(value, WriteTransaction):
            return value.state
        return value

    return [plain(v) for v in a] == [plain(v) for v in b]


STATEMENTS: dict[str, Callable[[WriteTransaction], Any]] = {
    "insert": lambda tx: tx.insert(
        "t", {"name": "zed", "score": 1.5, "payload": bytes(range(256)) * 9}
    ),
    "insert explicit rowid": lambda tx: tx.insert("t", {"id": 777, "name": "ada"}),
    "update": lambda tx: tx.update("t", BASE_ROWIDS[0], {"name": "moved", "payload": bytes(3000)}),
    "update missing": lambda tx: tx.update("t", 99_999, {"name": "x"}),
    "delete": lambda tx: tx.delete("t", BASE_ROWIDS[len(BASE_ROWIDS) // 2]),
    "create index": lambda tx: tx.execute_ddl("CREATE INDEX t_score ON t(score)"),
    "create table": lambda tx: tx.execute_ddl(TABLES["u"].sql),
    "drop index": lambda tx: tx.execute_ddl("DROP INDEX t_name"),
}


@pytest.mark.parametrize("name", sorted(STATEMENTS))
def test_explore_passes_each_statement_from_a_warm_and_a_cold_cache(name: str) -> None:
    held: dict[str, Any] = {}
    warm, cold = _setups(held)
    report = explore(
        lambda io: _then_commit_and_read(io, held, STATEMENTS[name]),
        setup=warm,
        variants={"cold page cache": cold},
        seeds=2,
        max_points=40,
        equal=_same,
    )
    assert report.outcome.error is None, report.outcome.describe()
    state = report.outcome.value[-1]  # type: ignore[index]
    assert isinstance(state, LogicalState)
    assert (state == BASE_STATE) is (name == "update missing")


def _commit_ops(io: SimulatorIO, held: dict[str, Any], how: str) -> Operation[list[Any]]:
    db = held["db"]
    tx = held.get("tx")
    links: list[Callable[[list[Any]], Operation[Any]]] = {
        "commit": [lambda _: tx.commit()],
        "commit(durable=False), sync_log": [
            lambda _: tx.commit(durable=False),
            lambda _: db.sync_log(),
        ],
        "rollback": [lambda _: tx.rollback()],
        "checkpoint": [lambda _: db.checkpoint()],
        "begin": [lambda _: db.begin()],
        "begin that checkpoints": [lambda _: _with_auto_checkpoint(db), lambda _: db.begin()],
    }[how]
    return Chain([*links, lambda _: ReadState(db)], wrap=io.with_yields)


def _with_auto_checkpoint(db: Database) -> Operation[None]:
    def step() -> Done[None]:
        db.auto_checkpoint = 1
        return Done(None)

    return step


class _Staged:
    """Setups with two statements staged in the transaction."""

    def __init__(self, held: dict[str, Any], begin: bool) -> None:
        self.warm, self.cold = _setups(held, begin=begin)
        self.held = held
        self.begin = begin

    def stage(self, io: SimulatorIO) -> None:
        if self.begin:
            tx = self.held["tx"]
            block(STATEMENTS["insert"](tx), io)
            block(STATEMENTS["delete"](tx), io)

    def warm_setup(self, io: SimulatorIO) -> None:
        self.warm(io)
        self.stage(io)

    def cold_setup(self, io: SimulatorIO) -> None:
        self.cold(io)
        self.stage(io)


@pytest.mark.parametrize(
    "how",
    [
        "commit",
        "commit(durable=False), sync_log",
        "rollback",
        "checkpoint",
        "begin",
        "begin that checkpoints",
    ],
)
def test_explore_passes_commit_checkpoint_and_begin(how: str) -> None:
    held: dict[str, Any] = {}
    staged = _Staged(held, begin=how.startswith(("commit", "rollback")))
    report = explore(
        lambda io: _commit_ops(io, held, how),
        setup=staged.warm_setup,
        variants={"cold page cache": staged.cold_setup},
        seeds=2,
        max_points=40,
        equal=_same,
    )
    assert report.outcome.error is None, report.outcome.describe()
    state = report.outcome.value[-1]  # type: ignore[index]
    assert (state == BASE_STATE) is (how not in ("commit", "commit(durable=False), sync_log"))


def test_explore_passes_the_first_begin_and_commit_of_a_new_database() -> None:
    workload = small_workload(27, 4096)
    first = next(i for i, a in enumerate(workload.actions) if a.act is Act.COMMIT)
    short = dataclasses.replace(
        workload, actions=(*workload.actions[: first + 1], workload.actions[-1])
    )

    def make_op(io: SimulatorIO) -> Operation[int]:
        return RunWorkload(io, short, wrap=io.with_yields)

    # A new log's salts come from the clock at the first commit: compare outcomes only.
    report = explore(make_op, seeds=3, max_points=24, check_files=False)
    assert report.outcome.value == 1


@pytest.mark.parametrize("seed", range(3))
def test_explore_passes_whole_workloads_read_back_through_the_writer(seed: int) -> None:
    workload = make_workload(
        random.Random(seed), transactions=3, statements=4, page_size=1024, verify=1.0
    )
    report = explore(
        lambda io: RunWorkload(io, workload, wrap=io.with_yields),
        seeds=2,
        max_points=20,
        check_files=False,
    )
    assert report.outcome.value == workload.commits


# -- planted re-entrancy bugs ------------------------------------------------------------------

PLANS: list[int] = []
"""Shared state the planted statements count in (each setup empties it)."""


class CountsItsPlans(Insert):
    """An insert that bumps a counter before the reads that make it plan again, and uses
    the count in its result: a mutation before a yield (planted)."""

    def _plan(self, changes: Changes) -> int:
        PLANS.append(1)  # BUG: once per plan, and a cold page makes it plan again
        return super()._plan(changes) * 1000 + len(PLANS)


class CountsItsAdvances(Insert):
    """The same bump in `_advance`, before the step that may return `IO` (planted)."""

    def _advance(self) -> Any:
        PLANS.append(1)  # BUG: once per transition, and each page read adds one
        result = super()._advance()
        if type(result) is Done:
            return Done(result.value * 1000 + len(PLANS))
        return result


class CountsItsSteps(Insert):
    """The bump at the entry of `step`: counted again on every re-entry after a yield
    (planted)."""

    def step(self) -> Done[int] | IO:
        PLANS.append(1)  # BUG: a re-entry after its I/O counts again
        result = super().step()
        if type(result) is Done:
            return Done(result.value * 1000 + len(PLANS))
        return result


def _planted(kind: type[Insert], held: dict[str, Any]) -> Callable[[SimulatorIO], Insert]:
    def make_op(io: SimulatorIO) -> Insert:
        return kind(held["tx"], "t", {"name": "zed", "payload": bytes(2000)})

    return make_op


@pytest.mark.parametrize("kind", [CountsItsPlans, CountsItsAdvances], ids=lambda k: k.__name__)
def test_a_mutation_before_a_replan_is_caught_from_a_cold_cache(kind: type[Insert]) -> None:
    held: dict[str, Any] = {}
    warm, cold = _setups(held)
    # Every schedule from one starting point plans as often as the inline run: the
    # restarts come from pages not in memory, not from when I/O completes...
    for setup in (warm, cold):
        explore(_planted(kind, held), setup=setup, seeds=2, max_points=16)
    # ...so the explorer compares starting points that differ only in what is cached.
    with pytest.raises(ScheduleMismatchError, match="setup variant 'cold page cache'") as found:
        explore(
            _planted(kind, held),
            setup=warm,
            variants={"cold page cache": cold},
            seeds=2,
            max_points=40,
        )
    assert "outcome differs" in str(found.value)
    assert "variants['cold page cache']" in found.value.replay
    # The real insert passes the same check.
    report = explore(
        _planted(Insert, held), setup=warm, variants={"cold page cache": cold}, seeds=2
    )
    assert report.outcome.value == max(BASE_ROWIDS) + 1


def test_a_mutation_at_each_reentry_is_caught_by_the_schedules() -> None:
    held: dict[str, Any] = {}
    _, cold = _setups(held)
    with pytest.raises(ScheduleMismatchError, match="defer I/O #") as found:
        explore(_planted(CountsItsSteps, held), setup=cold, seeds=2, max_points=16)
    assert found.value.seed is not None and "replay" in str(found.value)
    explore(_planted(Insert, held), setup=cold, seeds=2, max_points=16)


# -- injected faults during commit and checkpoint ----------------------------------------------


@pytest.fixture(scope="module")
def base_files() -> dict[str, bytes]:
    """The base database, durable, as files (its last two commits still in the log)."""
    io = SimulatorIO(0, inline=1.0)
    _build_base(io, cold=False, begin=False)
    return io.snapshot()


def _open(files: dict[str, bytes], seed: int) -> tuple[SimulatorIO, Database]:
    io = SimulatorIO(seed, inline=0.3, max_latency_us=50)
    for name, data in files.items():
        io.create_file(name, data)
    return io, block(Database.open(io, PATH, writable=True, cache_pages=32), io)


def _read(io: SimulatorIO, db: Database) -> LogicalState:
    return block(ReadState(db), io)


COMMIT_FAULTS = {
    "write_error": FaultConfig(write_error=0.5),
    "submit_error": FaultConfig(submit_error=0.4),
    "torn_write": FaultConfig(torn_write=0.5),
    "sync_error": FaultConfig(sync_error=0.5),
}


@pytest.mark.parametrize("fault", sorted(COMMIT_FAULTS))
def test_a_fault_during_commit_ends_the_transaction_cleanly(
    fault: str, base_files: dict[str, bytes]
) -> None:
    tally = {"ok": 0, "failed": 0}
    for seed in range(30):
        io, db = _open(base_files, seed)
        tx = block(db.begin(), io)
        rowid = block(STATEMENTS["insert"](tx), io)
        block(STATEMENTS["delete"](tx), io)
        io.faults = COMMIT_FAULTS[fault]
        outcome = run_op(tx.commit(durable=seed % 3 != 0), io)
        io.faults = FaultConfig()
        io.run_until_idle()
        state = _read(io, db)
        if outcome.error is None:
            tally["ok"] += 1
            assert tx.state is TransactionState.COMMITTED
            assert rowid in {row[0] for row in dict(state.tables)["t"]}
            continue
        tally["failed"] += 1
        error = outcome.error
        assert isinstance(error, CompletionError), f"seed {seed}: {error!r}"
        assert error.kind in (ErrorKind.IO, ErrorKind.SHORT_WRITE), f"seed {seed}: {error!r}"
        assert tx.state is TransactionState.FAILED
        with pytest.raises(StorageError, match="failed"):
            block(tx.insert("t", {"name": "late"}), io)
        with pytest.raises(StorageError, match="failed"):
            block(tx.commit(), io)
        assert not db.writing  # the lock was given back
        if fault in ("sync_error", "submit_error"):
            # When the sync failed (or was refused) the frames are in the log: as
            # documented, the commit may show (see the xfail test below), all or nothing.
            shown = state != BASE_STATE
            assert not shown or rowid in {row[0] for row in dict(state.tables)["t"]}
        else:
            assert state == BASE_STATE, f"seed {seed}: {state.describe()}"
        # A new transaction works, and is durable.
        tx = block(db.begin(), io)
        block(tx.update("t", BASE_ROWIDS[1], {"name": "later"}), io)
        block(tx.commit(), io)
        expected = _read(io, db)
        assert expected != state
        io.crash()
        _, recovered = recover(io)
        assert recovered == expected, f"seed {seed}"
    assert tally["ok"] > 0 and tally["failed"] > 5, tally


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="a commit whose final WAL sync failed has its frames in the log: the next read "
    "rescans the log and shows the commit, though it was never durable and a crash can "
    "still take it (commit.py: 'may or may not be in the log'); SQLite's readers would not "
    "see it, through the -shm index this engine does without",
)
def test_after_a_failed_sync_readers_see_the_last_durable_state(
    base_files: dict[str, bytes],
) -> None:
    io, db = _open(base_files, 0)
    tx = block(db.begin(), io)
    block(STATEMENTS["insert"](tx), io)
    io.faults = FaultConfig(sync_error=1.0)
    with pytest.raises(CompletionError):
        block(tx.commit(), io)
    io.faults = FaultConfig()
    assert _read(io, db) == BASE_STATE


CHECKPOINT_FAULTS = {
    **COMMIT_FAULTS,
    "read_error": FaultConfig(read_error=0.3),
    "truncate_error": FaultConfig(truncate_error=0.5),
}


@pytest.mark.parametrize("fault", sorted(CHECKPOINT_FAULTS))
def test_a_fault_during_checkpoint_changes_nothing(
    fault: str, base_files: dict[str, bytes], tmp_path: Path
) -> None:
    tally = {"ok": 0, "failed": 0}
    for seed in range(25):
        io, db = _open(base_files, seed)
        io.faults = CHECKPOINT_FAULTS[fault]
        outcome = run_op(db.checkpoint(), io)
        io.faults = FaultConfig()
        io.run_until_idle()
        if outcome.error is None:
            tally["ok"] += 1
        else:
            tally["failed"] += 1
            assert isinstance(outcome.error, CompletionError), f"seed {seed}: {outcome.error!r}"
        assert not db.writing
        assert _read(io, db) == BASE_STATE, f"seed {seed}"
        again = block(Database.open(io, PATH), io)
        assert _read(io, again) == BASE_STATE
        again.close()
        # The lock is free: a transaction and a checkpoint without faults go through.
        tx = block(db.begin(), io)
        block(STATEMENTS["insert"](tx), io)
        block(tx.commit(), io)
        expected = _read(io, db)
        block(db.checkpoint(), io)
        assert io.file_contents(PATH + "-wal") == b""
        io.crash()
        _, recovered = recover(io)
        assert recovered == expected
        if seed % 5 == 0:
            check, theirs = sqlite_state(io.snapshot(), tmp_path / f"s{seed}")
            assert check == "ok" and theirs == expected
    assert tally["failed"] > 5, tally


# -- the soak's write scenario -----------------------------------------------------------------

WRITE = next(s for s in SCENARIOS if s.name == "WriteTransactions")


def test_the_soak_runs_write_transactions_under_faults_and_crashes() -> None:
    report = run_soak(range(150), scenarios=[WRITE])
    assert report.violations == [], report.format()
    assert report.operations["WriteTransactions"] > 250
    assert report.ok > 50 and sum(report.clean_errors.values()) > 50
    assert report.crashes_mid_operation > 20 and report.database_checks > 250
    assert "databases read back" in report.format()


class _ThenLoseTheLog:
    """Run `op`; once it is done, empty the WAL behind the engine's back (planted)."""

    def __init__(self, op: Operation[Any], io: SimulatorIO) -> None:
        self.op = op
        self.io = io

    def step(self) -> Done[Any] | IO:
        result = self.op.step()  # type: ignore[union-attr]
        if type(result) is Done and PATH + "-wal" in self.io.files():
            self.io.create_file(PATH + "-wal", b"")
        return result


def test_the_soak_write_oracle_catches_lost_commits() -> None:
    def lossy(rng: random.Random, files: Any) -> Case:
        case = WRITE.build(rng, files)
        return dataclasses.replace(case, make_op=lambda io: _ThenLoseTheLog(case.make_op(io), io))

    report = run_soak(range(40), scenarios=[Scenario("WriteTransactions", lossy)])
    assert any("allowed: after commits" in v for v in report.violations), report.format()
    assert all("--seed" in v for v in report.violations)


# -- the crash driver itself -------------------------------------------------------------------


def test_run_to_crash_counts_every_step_and_completion() -> None:
    workload = small_workload(27, 4096)
    dry = live(workload, 3, FaultConfig(), None)
    assert dry.run.outcome is not None and dry.run.outcome.value == workload.commits
    assert len(dry.run.labels) == dry.run.ticks
    submitted = dry.io.stats.submitted
    assert dry.run.ticks > submitted  # one tick per I/O completion, plus the steps
    for k in (1, dry.run.ticks // 2, dry.run.ticks):
        life = live(workload, 3, FaultConfig(), k)
        assert life.run.crashed and life.run.ticks == k and life.run.outcome is None
        assert life.run.labels == dry.run.labels[:k]  # the same run up to the crash
    assert crash_points(["open", "commit", "begin", "commit"], ("commit",)) == [2, 4]
    after = reboot(life.io)
    assert after.snapshot() == life.io.snapshot() and after.seed == life.io.seed + 1
