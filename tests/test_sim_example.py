"""The documented example runs and shows what the documentation says it shows."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

import pytest

from core import IOResultError

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "sim_example", ROOT / "examples" / "sim_example.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    example = _load()
    example.main()
    out = capsys.readouterr().out
    assert "buggy version caught under: defer I/O #2" in out
    assert "correct version: same result under all" in out
    assert "all survived their crash" in out


def test_example_parts() -> None:
    example = _load()
    caught, schedules = example.explore_both()
    assert "defer I/O" in caught and schedules > 20
    totals = example.soak(seeds=40)
    assert totals["seeds"] == 40 and totals["acknowledged"] > 0 and totals["failed"] > 0
    with pytest.raises(IOResultError, match="a record is 16 bytes"):
        example.AppendRecord(None, b"short")
