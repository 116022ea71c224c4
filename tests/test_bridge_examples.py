"""The example scripts run to the end and print what they promise."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = [
    "wrote 1048576 bytes",
    "read a range: ok",
    "read the whole file: ok",
    "copied 1048576 bytes",
    "timed out: DriveTimeoutError",
    "done",
]


@pytest.mark.parametrize(
    ("script", "cancelled"),
    [
        ("asyncio_file_ops.py", "cancelled: CancelledError"),
        ("uvloop_file_ops.py", "cancelled: CancelledError"),
        ("trio_file_ops.py", "cancelled: Cancelled"),
    ],
)
def test_example_runs(script: str, cancelled: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="error")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines == [*EXPECTED[:4], cancelled, *EXPECTED[4:]]


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "examples.storage_writes"],
        [str(ROOT / "examples" / "storage_writes.py"), "threads"],
    ],
)
def test_storage_writes_example_runs(command: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="error")
    proc = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    first, syncs, rolled_back, sqlite = proc.stdout.splitlines()
    assert first == "64 tasks committed a row each: 64 rows"
    found = re.fullmatch(r"WAL syncs: (\d+) for 64 commits \(engine: (threads|uring)\)", syncs)
    assert found is not None, syncs
    assert 1 <= int(found[1]) <= 64
    if "threads" in command:
        assert found[2] == "threads"
    assert rolled_back == "rolled back on ConstraintError: 64 rows"
    assert sqlite == "sqlite3: integrity_check ok, 64 tasks"
