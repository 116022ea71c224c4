"""Every example script runs to the end and prints what it promises, both as a script
(`python examples/x.py`) and as a module (`python -m examples.x`), from the repository root
with nothing on PYTHONPATH, as a reader runs them."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
HOW = ["script", "module"]
FILE_OPS = [
    "wrote 1048576 bytes",
    "read a range: ok",
    "read the whole file: ok",
    "copied 1048576 bytes",
    "timed out: DriveTimeoutError",
    "done",
]


def _command(name: str, how: str, *args: str) -> list[str]:
    if how == "module":
        return [sys.executable, "-m", f"examples.{name}", *args]
    return [sys.executable, str(EXAMPLES / f"{name}.py"), *args]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONWARNINGS="error", **extra)
    env.pop("PYTHONPATH", None)
    return env


def _run(name: str, how: str, *args: str) -> list[str]:
    proc = subprocess.run(
        _command(name, how, *args),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout.splitlines()


def _file_ops(cancelled: str) -> Callable[[list[str]], None]:
    def check(lines: list[str]) -> None:
        assert lines == [*FILE_OPS[:4], cancelled, *FILE_OPS[4:]]

    return check


def _quickstart(lines: list[str]) -> None:
    assert lines == [
        "     MemoryIO: 10000 lines",
        "MemoryYieldIO: 10000 lines",
        "       UnixIO: 10000 lines",
    ]


def _sim_example(lines: list[str]) -> None:
    out = "\n".join(lines)
    assert "buggy version caught under: defer I/O #2" in out
    assert "correct version: same result under all" in out
    assert "all survived their crash" in out


def _storage_writes(lines: list[str]) -> None:
    first, syncs, rolled_back, sqlite = lines
    assert first == "64 tasks committed a row each: 64 rows"
    found = re.fullmatch(r"WAL syncs: (\d+) for 64 commits \(engine: (threads|uring)\)", syncs)
    assert found is not None, syncs
    assert 1 <= int(found[1]) <= 64
    assert rolled_back == "rolled back on ConstraintError: 64 rows"
    assert sqlite == "sqlite3: integrity_check ok, 64 tasks"


CHECKS: dict[str, Callable[[list[str]], None]] = {
    "asyncio_file_ops": _file_ops("cancelled: CancelledError"),
    "uvloop_file_ops": _file_ops("cancelled: CancelledError"),
    "trio_file_ops": _file_ops("cancelled: Cancelled"),
    "quickstart": _quickstart,
    "sim_example": _sim_example,
    "storage_writes": _storage_writes,
}
SERVERS = {"fastapi_app"}
"""Examples that serve until stopped: `test_server_example_runs` starts and stops them."""


def test_every_example_is_run_here() -> None:
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    assert scripts == set(CHECKS) | SERVERS


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs(name: str, how: str) -> None:
    CHECKS[name](_run(name, how))


def test_storage_writes_example_on_threads() -> None:
    lines = _run("storage_writes", "script", "threads")
    _storage_writes(lines)
    assert lines[1].endswith("(engine: threads)")


@pytest.fixture
def small_database(tmp_path: Path) -> Path:
    path = tmp_path / "small.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "one"), (2, "two")])
        conn.commit()
    return path


@pytest.fixture
def served() -> Iterator[list[subprocess.Popen[str]]]:
    """Servers started by a test; any still running at its end is killed."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize("how", HOW)
def test_server_example_runs(
    how: str, small_database: Path, served: list[subprocess.Popen[str]]
) -> None:
    """`examples/fastapi_app.py` serves the database it is given, answers, and stops cleanly
    on Ctrl+C (its lifespan closes everything)."""
    proc = subprocess.Popen(
        _command("fastapi_app", how, str(small_database)),
        cwd=ROOT,
        env=_env(PORT="0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    served.append(proc)
    assert proc.stdout is not None
    log: list[str] = []
    url = None
    for line in proc.stdout:  # uvicorn logs the port it bound
        log.append(line)
        found = re.search(r"Uvicorn running on (http://\S+)", line)
        if found:
            url = found[1]
            break
    assert url is not None, "".join(log)
    assert httpx.get(f"{url}/small/tables/t/count", timeout=30).json() == 2
    assert httpx.get(f"{url}/small/tables/t/rows/2", timeout=30).json() == [2, 2, "two"]
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    assert proc.wait(30) == 0, "".join(log) + rest
    assert "Application shutdown complete" in rest
    assert "Traceback" not in rest
