"""The `ioresult` command line, run as a user runs it (its entry point, in a subprocess),
on small databases written by sqlite3, including corrupt ones."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.rows import decode_cell
from examples.service.sample import create_sample_database

ROWS = 2000
SCRIPT = Path(sys.executable).with_name("ioresult")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return create_sample_database(tmp_path_factory.mktemp("cli") / "sample.db", rows=ROWS)


# rich's switches for a console that is not a terminal; a run without `terminal` clears them,
# so its stderr is a plain pipe whatever the environment of the test run says.
TERMINAL_SWITCHES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "NO_COLOR")


def ioresult(
    *args: str | Path, entry_point: bool = False, terminal: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the command line. With `terminal=N`, rich takes stderr for an interactive
    terminal N columns wide, as it does for a real one."""
    command = [str(SCRIPT)] if entry_point else [sys.executable, "-m", "bridge.cli"]
    env = {k: v for k, v in os.environ.items() if k not in TERMINAL_SWITCHES}
    if terminal is not None:
        env.update(TTY_COMPATIBLE="1", TTY_INTERACTIVE="1", COLUMNS=str(terminal))
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def screen_lines(stderr: str) -> list[str]:
    """What a terminal showed on the way: each redraw of the progress line, without the
    control sequences."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stderr)
    return [line for line in re.split(r"[\r\n]", plain) if line.strip()]


def _rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_entry_point_help() -> None:
    assert SCRIPT.exists(), "the ioresult script is not installed (pip install -e .)"
    result = ioresult("--help", entry_point=True)
    assert result.returncode == 0
    for word in ("schema", "export", "check", "--immutable", "Exit status"):
        assert word in result.stdout
    for command in ("schema", "export", "check"):
        sub = ioresult(command, "--help", entry_point=True)
        assert sub.returncode == 0
        assert "database" in sub.stdout
    export = ioresult("export", "--help").stdout
    assert "--format" in export and "--output" in export and "--no-progress" in export


def test_schema(sample: Path) -> None:
    result = ioresult("schema", sample)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"table books, {ROWS} rows" in out
    assert "WITHOUT ROWID table reviews" in out
    assert "index books_title (title COLLATE NOCASE)" in out
    assert "index books_year (year, price)" in out
    assert "NOCASE" in out


def test_export_csv_to_file_matches_sqlite(sample: Path, tmp_path: Path) -> None:
    target = tmp_path / "books.csv"
    result = ioresult("export", sample, "books", "--format", "csv", "-o", target, "--progress")
    assert result.returncode == 0, result.stderr
    assert f"wrote {ROWS} rows of books to {target}" in result.stderr
    assert "export books" in result.stderr  # the progress bar, forced on
    reader = csv.reader(io.StringIO(target.read_text()))
    assert next(reader) == ["id", "author_id", "title", "year", "price", "summary"]
    expected = [
        ["" if v is None else repr(v) if isinstance(v, float) else str(v) for v in row]
        for row in _rows(sample, "SELECT * FROM books ORDER BY id")
    ]
    assert list(reader) == expected


def test_export_ndjson_to_stdout_matches_sqlite(sample: Path) -> None:
    result = ioresult("export", sample, "reviews", "--format", "ndjson", "--page-rows", "7")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    objects = [json.loads(line) for line in result.stdout.splitlines()]
    columns = ["book_id", "reviewer", "stars", "body", "cover"]
    got = [tuple(decode_cell(o[c]) for c in columns) for o in objects]
    assert got == _rows(sample, "SELECT * FROM reviews ORDER BY book_id, reviewer")


def test_check_sound_database(sample: Path) -> None:
    result = ioresult("check", sample, entry_point=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"ok: {sample}: ")
    assert "no problems found" in result.stdout


def _corrupt_copy(sample: Path, tmp_path: Path, page: int, data: bytes, at: int = 0) -> Path:
    target = tmp_path / f"corrupt-{page}.db"
    shutil.copy(sample, target)
    with target.open("r+b") as f:
        f.seek((page - 1) * 4096 + at)
        f.write(data)
    return target


def test_check_reports_a_damaged_page(sample: Path, tmp_path: Path) -> None:
    ((root,),) = _rows(sample, "SELECT rootpage FROM sqlite_schema WHERE name = 'authors'")
    damaged = _corrupt_copy(sample, tmp_path, root, b"\x07")
    result = ioresult("check", damaged)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"table authors page {root}: unknown B-tree page type 7" in lines
    # Its rows are gone from the table walk, so the pages under it are never used, or
    # (for a leaf root) nothing else is; either way the index counts still agree or differ
    # as sqlite3 sees them, and the summary goes to stderr.
    assert "problem" in result.stderr and "found" in result.stderr


def test_check_reports_a_broken_index_page(sample: Path, tmp_path: Path) -> None:
    ((root,),) = _rows(sample, "SELECT rootpage FROM sqlite_schema WHERE name = 'books_year'")
    damaged = _corrupt_copy(sample, tmp_path, root, bytes(4096))
    result = ioresult("check", damaged, "--max-problems", "3")
    assert result.returncode == 1
    assert f"index books_year page {root}: unknown B-tree page type 0" in result.stdout
    assert len(result.stdout.splitlines()) <= 3


def test_corrupt_header_and_missing_files(sample: Path, tmp_path: Path) -> None:
    not_db = tmp_path / "not.db"
    not_db.write_bytes(b"hello, this is not a database" * 20)
    result = ioresult("check", not_db)
    assert result.returncode == 1
    assert result.stderr.startswith("ioresult check: error: the database is corrupt: ")
    assert result.stdout == ""

    result = ioresult("schema", tmp_path / "missing.db")
    assert result.returncode == 1
    assert result.stderr.strip() == f"ioresult schema: error: no such file: {tmp_path}/missing.db"

    result = ioresult("export", tmp_path, "t")
    assert result.returncode == 1
    assert "is a directory" in result.stderr


def test_usage_errors(sample: Path) -> None:
    result = ioresult("export", sample, "nope")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "ioresult export: error: no table 'nope'; the tables are: authors, books, reviews"
    )
    result = ioresult("export", sample, "books", "--format", "xml")
    assert result.returncode == 2
    assert "invalid choice: 'xml'" in result.stderr
    result = ioresult()
    assert result.returncode == 2
    assert "usage: ioresult" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["export", "{db}", "books", "--page-rows", "0"],
            "argument --page-rows: must be at least 1, got 0",
        ),
        (
            ["export", "{db}", "books", "--page-rows", "-3"],
            "argument --page-rows: must be at least 1, got -3",
        ),
        (
            ["export", "{db}", "books", "--page-rows", "many"],
            "argument --page-rows: not a whole number: 'many'",
        ),
        (
            ["check", "{db}", "--max-problems", "0"],
            "argument --max-problems: must be at least 1, got 0",
        ),
    ],
)
def test_bad_option_values_are_usage_errors(sample: Path, args: list[str], message: str) -> None:
    """The help says a usage error exits 2; an option value out of range is one."""
    result = ioresult(*(a.format(db=sample) for a in args))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("usage: ioresult ")
    assert result.stderr.rstrip().endswith(message)
    assert result.stdout == ""


def test_version() -> None:
    result = ioresult("--version", entry_point=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ioresult {importlib.metadata.version('ioresult')}"


def test_export_to_an_output_that_cannot_be_written(sample: Path, tmp_path: Path) -> None:
    """One line that says why, exit status 1 (the command failed), no traceback."""
    missing = tmp_path / "no" / "such" / "dir" / "books.csv"
    result = ioresult("export", sample, "books", "-o", missing)
    assert result.returncode == 1
    assert result.stderr == (
        f"ioresult export: error: cannot write {missing}: No such file or directory\n"
    )
    assert not missing.parent.exists()

    result = ioresult("export", sample, "books", "--output", tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"ioresult export: error: cannot write {tmp_path}: Is a directory\n"


def test_export_refuses_to_overwrite_its_database(sample: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(sample, copy)
    before = copy.read_bytes()
    result = ioresult("export", copy, "books", "-o", copy)
    assert result.returncode == 1
    assert result.stderr == (
        f"ioresult export: error: {copy} is the database being exported; choose another output\n"
    )
    assert copy.read_bytes() == before


@pytest.fixture(scope="module")
def numbers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table of 100,000 small rows: a total of six digits, as in the demo's sample."""
    path = tmp_path_factory.mktemp("cli") / "numbers.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE numbers (n INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO numbers VALUES (?)", ((i,) for i in range(100_000)))
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("columns", [80, 60])
def test_export_progress_shows_the_whole_total(numbers: Path, columns: int) -> None:
    """On a terminal of 80 (or 60) columns the bar and the description give way; the
    count of rows done out of the total is never cut."""
    result = ioresult("export", numbers, "numbers", "-o", os.devnull, terminal=columns)
    assert result.returncode == 0, result.stderr
    lines = screen_lines(result.stderr)
    # On 60 columns the description is the one cut ("expor…").
    assert lines[0].startswith("export numbers " if columns == 80 else "expor")
    assert "100000/100000 rows 100%" in lines[-2], lines  # the last line: "wrote ..."
    assert all(len(line) <= columns for line in lines), lines


def test_check_shows_progress_on_a_terminal_only(sample: Path) -> None:
    pages = sample.stat().st_size // 4096
    shown = ioresult("check", sample, terminal=80)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"ok: {sample}: {pages} pages")
    lines = screen_lines(shown.stderr)
    assert lines[0].startswith("check ")
    assert f"{pages}/{pages} pages 100%" in lines[-1]

    piped = ioresult("check", sample)
    assert piped.returncode == 0
    assert piped.stderr == ""
    assert piped.stdout == shown.stdout

    assert ioresult("check", sample, "--no-progress", terminal=80).stderr == ""


def test_schema_shows_progress_on_a_terminal_only(sample: Path) -> None:
    shown = ioresult("schema", sample, terminal=80)
    assert shown.returncode == 0, shown.stderr
    lines = screen_lines(shown.stderr)
    assert "counting rows 0/3 tables" in lines[0]
    assert re.search(r"counting rows of reviews 3/3 tables, [1-9]\d* pages read", lines[-1])
    assert f"table books, {ROWS} rows" in shown.stdout

    piped = ioresult("schema", sample)
    assert piped.returncode == 0
    assert piped.stderr == ""
    assert f"table books, {ROWS} rows" in piped.stdout
    # Nothing to count, nothing to show.
    assert ioresult("schema", sample, "--no-counts", terminal=80).stderr == ""


def test_export_into_a_closed_pipe(sample: Path) -> None:
    """`ioresult export ... | head -1`: the reader goes away early; exit quietly."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "export", str(sample), "books"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(60) == 0
    assert first.startswith(b"id,author_id")
    assert b"Traceback" not in stderr
