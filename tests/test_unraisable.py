"""Exceptions with nowhere to go reach `sys.unraisablehook`, whichever hook is installed.

The interpreter's own hook accepts only its own argument type and raises `TypeError` for
anything else, which would escape into exactly the thread or loop callback that must never
see an exception; pytest replaces that hook, so these tests put it back on purpose.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest

from bridge import AsyncFileIO
from core import Completion
from core.io import OpenFlags
from core.unraisable import Unraisable, report_unraisable


def _bad(_: Completion) -> None:
    raise ValueError("waiter failed")


def test_with_the_interpreters_hook_a_failing_callback_is_printed_not_raised(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    c = Completion.new_write()
    c.add_done_callback(_bad)
    c.complete(1)  # raised TypeError out of here before
    assert c.succeeded()
    err = capsys.readouterr().err
    assert "Exception in done-callback" in err
    assert "ValueError: waiter failed" in err
    assert "Traceback (most recent call last)" in err


def test_a_callback_failing_on_a_worker_thread_stays_there(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    escaped: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: escaped.append(args.exc_value))
    c = Completion.new_write()
    c.add_done_callback(_bad)
    worker = threading.Thread(target=c.complete, args=(1,))
    worker.start()
    worker.join()
    assert escaped == []
    assert c.succeeded()
    assert "ValueError: waiter failed" in capsys.readouterr().err


def test_a_hook_of_our_own_gets_the_hooks_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[Unraisable] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    exc = ValueError("x")
    report_unraisable(exc, "Exception in test", "the object")
    (report,) = reported
    assert (report.exc_type, report.exc_value, report.err_msg, report.object) == (
        ValueError,
        exc,
        "Exception in test",
        "the object",
    )


def test_a_hook_that_refuses_the_report_falls_back_to_printing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def strict(_: object) -> None:
        raise TypeError("wants the interpreter's own type")

    monkeypatch.setattr(sys, "unraisablehook", strict)
    report_unraisable(ValueError("x"), "Exception in test", "the object")
    err = capsys.readouterr().err
    assert "Exception in test: 'the object'" in err
    assert "ValueError: x" in err


def test_without_stderr_nothing_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    monkeypatch.setattr(sys, "stderr", None)
    report_unraisable(ValueError("x"), "Exception in test", object())


def test_an_object_whose_repr_fails_is_still_reported(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    report_unraisable(ValueError("x"), "Exception in test", Broken())
    assert "Exception in test: <Broken object>" in capsys.readouterr().err


def test_a_failing_callback_on_the_loop_leaves_the_loop_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A done-callback that raises while an `AsyncFileIO` finishes completions on the loop
    is reported, and the loop's other work carries on."""
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)
    path = tmp_path / "data"
    path.write_bytes(b"x" * 4096)

    async def main() -> bytes:
        loop_errors: list[object] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: loop_errors.append(ctx))
        async with AsyncFileIO(nowait=False) as io:  # every read goes to the pool or ring
            f = io.open_file(path, OpenFlags.READ_ONLY)
            c = Completion.new_read(bytearray(4096))
            done = asyncio.Event()
            c.add_done_callback(_bad)
            c.add_done_callback(lambda _: done.set())
            f.pread(0, c)
            await done.wait()
            f.close()
        assert loop_errors == []
        return bytes(c.buffer)  # type: ignore[arg-type]

    assert asyncio.run(main()) == b"x" * 4096
    assert "ValueError: waiter failed" in capsys.readouterr().err
