"""Completion: set-once outcome, callback before visibility, errors, yields, threads."""

from __future__ import annotations

import sys
import threading

import pytest

from core import Completion, CompletionError, ErrorKind, IOResultError
from tests.helpers import eio


def test_complete_sets_result_once() -> None:
    c = Completion.new_write()
    assert not c.finished() and not c.succeeded() and not c.failed()
    assert c.get_error() is None
    c.complete(7)
    c.complete(9)
    c.error(eio())
    c.abort()
    assert c.finished() and c.succeeded() and not c.failed()
    assert c.result() == 7


def test_error_wins_when_first() -> None:
    c = Completion.new_sync()
    err = eio("f", 10)
    c.error(err)
    c.complete(0)
    assert c.failed() and c.get_error() is err
    with pytest.raises(CompletionError) as info:
        c.result()
    assert info.value is err


def test_abort_finishes_with_aborted() -> None:
    c = Completion.new_trunc()
    c.abort()
    c.complete(0)
    error = c.get_error()
    assert error is not None and error.kind is ErrorKind.ABORTED


def test_result_of_unfinished_completion_raises() -> None:
    with pytest.raises(IOResultError, match="has not finished"):
        Completion.new_write().result()


def test_read_keeps_buffer_and_result() -> None:
    buf = bytearray(4)
    c = Completion.new_read(buf)
    assert c.buffer is buf
    c.complete(3)
    assert c.result() == 3


def test_a_bytes_read_makes_its_buffer_only_when_asked() -> None:
    c = Completion.new_read_bytes(4)
    assert c.takes_bytes() == 4
    buffer = c.buffer
    assert buffer == bytearray(4) and c.buffer is buffer
    assert c.takes_bytes() == -1  # a backend asked for the buffer: it reads into it
    assert isinstance(buffer, bytearray)
    buffer[:3] = b"abc"
    c.complete(3)
    assert c.read_bytes() == b"abc"


def test_a_bytes_read_hands_over_the_backends_bytes() -> None:
    c = Completion.new_read_bytes(8)
    data = b"hello"
    c.complete_with_bytes(data)
    assert c.result() == 5
    assert c.read_bytes() is data  # no copy
    assert c.takes_bytes() == -1
    assert bytes(c.buffer or b"") == b"hello"  # the buffer shows what was read


def test_complete_with_bytes_after_an_abort_changes_nothing() -> None:
    c = Completion.new_read_bytes(3)
    c.abort()
    c.complete_with_bytes(b"abc")
    with pytest.raises(CompletionError) as info:
        c.read_bytes()
    assert info.value.kind is ErrorKind.ABORTED
    assert c.buffer == bytearray(3)  # not the late bytes


def test_read_bytes_copies_what_a_buffer_read_returned() -> None:
    buf = bytearray(b"abcdef")
    c = Completion.new_read(buf)
    c.complete(4)
    assert c.read_bytes() == b"abcd"
    whole = Completion.new_read(buf)
    whole.complete(6)
    assert whole.read_bytes() == b"abcdef"
    assert Completion.new_read_bytes(0).takes_bytes() == 0
    assert Completion.new_read(bytearray(2)).takes_bytes() == -1
    assert Completion.new_write().takes_bytes() == -1


def test_read_bytes_raises_for_unfinished_failed_and_non_reads() -> None:
    with pytest.raises(IOResultError, match="has not finished"):
        Completion.new_read_bytes(1).read_bytes()
    failed = Completion.new_read_bytes(1)
    err = eio("f", 0)
    failed.error(err)
    with pytest.raises(CompletionError) as info:
        failed.read_bytes()
    assert info.value is err
    write = Completion.new_write()
    write.complete(1)
    assert write.buffer is None
    with pytest.raises(IOResultError, match="needs a read completion"):
        write.read_bytes()


def test_callback_runs_once_before_outcome_is_visible() -> None:
    seen: list[tuple[object, bool]] = []
    holder: list[Completion] = []

    def callback(outcome: int | CompletionError) -> None:
        seen.append((outcome, holder[0].finished()))

    c = Completion.new_read(bytearray(1), callback)
    holder.append(c)
    c.complete(1)
    c.complete(2)
    assert seen == [(1, False)]
    assert c.finished()


def test_callback_receives_the_error() -> None:
    seen: list[object] = []
    c = Completion.new_write(seen.append)  # type: ignore[arg-type]
    err = eio()
    c.error(err)
    assert seen == [err]


def test_callback_can_replace_success_with_an_error() -> None:
    replacement = CompletionError(ErrorKind.SHORT_READ, expected=4, actual=2)
    c = Completion.new_read(bytearray(4), lambda outcome: replacement)
    c.complete(2)
    assert c.failed() and c.get_error() is replacement


def test_callback_that_raises_becomes_the_error() -> None:
    def callback(outcome: int | CompletionError) -> None:
        raise KeyError("boom")

    c = Completion.new_write(callback)
    c.complete(5)
    error = c.get_error()
    assert error is not None and error.kind is ErrorKind.CALLBACK
    assert isinstance(error.__cause__, KeyError)
    assert "KeyError" in str(error)


def test_callback_that_raises_on_a_worker_thread_does_not_escape() -> None:
    def callback(outcome: int | CompletionError) -> None:
        raise RuntimeError("in worker")

    c = Completion.new_write(callback)
    escaped: list[BaseException] = []

    def worker() -> None:
        try:
            c.complete(1)
        except BaseException as exc:  # pragma: no cover - the failure this test catches
            escaped.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert escaped == []
    assert c.failed()


def test_explicit_yield_is_finished_and_marked() -> None:
    c = Completion.new_yield()
    assert c.finished() and c.succeeded() and c.is_explicit_yield()
    assert c.result() == 0
    assert not Completion.new_write().is_explicit_yield()


def test_add_done_callback_before_and_after_finish() -> None:
    calls: list[Completion] = []
    c = Completion.new_write()
    c.add_done_callback(calls.append)
    assert calls == []
    c.complete(1)
    assert calls == [c]
    c.add_done_callback(calls.append)  # already finished: called at once
    assert calls == [c, c]
    c.complete(2)
    assert len(calls) == 2


def test_done_callback_sees_finished_state() -> None:
    states: list[bool] = []
    c = Completion.new_write()
    c.add_done_callback(lambda done: states.append(done.finished()))
    c.abort()
    assert states == [True]


def test_remove_done_callback() -> None:
    calls: list[Completion] = []
    c = Completion.new_write()
    c.add_done_callback(calls.append)
    assert c.remove_done_callback(calls.append)
    assert not c.remove_done_callback(calls.append)
    c.complete(0)
    assert calls == []


def test_done_callback_exception_goes_to_unraisablehook(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    c = Completion.new_write()

    def bad(_: Completion) -> None:
        raise ValueError("waiter failed")

    c.add_done_callback(bad)
    c.complete(1)
    assert c.succeeded()
    assert len(reported) == 1
    report = reported[0]
    assert isinstance(report.exc_value, ValueError)  # type: ignore[attr-defined]
    assert "done-callback" in report.err_msg  # type: ignore[attr-defined]


def test_repr_names_kind_and_state() -> None:
    c = Completion.new_read(bytearray(1))
    assert "read" in repr(c) and "pending" in repr(c)
    c.complete(1)
    assert "done: 1" in repr(c)


def test_finishing_from_a_worker_while_polling() -> None:
    """A worker finishes; the poller never sees finished() before the buffer is filled."""
    for _ in range(200):
        buf = bytearray(8)

        def fill(outcome: int | CompletionError, buf: bytearray = buf) -> None:
            buf[:] = b"ABCDEFGH"

        c = Completion.new_read(buf, fill)
        t = threading.Thread(target=c.complete, args=(8,))
        t.start()
        while not c.finished():
            pass
        assert bytes(buf) == b"ABCDEFGH"
        assert c.result() == 8
        t.join()


def test_racing_finishers_exactly_one_wins() -> None:
    for _ in range(100):
        calls: list[object] = []
        waiter_calls: list[Completion] = []
        c = Completion.new_write(calls.append)  # type: ignore[arg-type]
        barrier = threading.Barrier(4)

        def finisher(i: int, c: Completion = c, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            if i % 2:
                c.complete(i)
            else:
                c.abort()

        def registrar(
            c: Completion = c,
            barrier: threading.Barrier = barrier,
            waiter_calls: list[Completion] = waiter_calls,
        ) -> None:
            barrier.wait()
            c.add_done_callback(waiter_calls.append)

        threads = [threading.Thread(target=finisher, args=(i,)) for i in range(3)]
        threads.append(threading.Thread(target=registrar))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(calls) == 1
        assert waiter_calls == [c]  # registered concurrently, never lost, never doubled
        assert c.finished()


def test_error_message_names_fields() -> None:
    err = CompletionError(
        ErrorKind.SHORT_READ, "page", path="db", offset=4096, errno=5, expected=4096, actual=10
    )
    text = str(err)
    for part in ("short read: page", "path='db'", "offset=4096", "errno=5 EIO"):
        assert part in text
    assert "expected=4096" in text and "actual=10" in text
    assert err.kind is ErrorKind.SHORT_READ and err.errno == 5 and err.path == "db"
    assert str(CompletionError(ErrorKind.ABORTED)) == "aborted"


def test_completion_error_pickles_with_its_fields() -> None:
    import pickle

    err = CompletionError(ErrorKind.IO, "x", errno=5, path="p", offset=3)
    back = pickle.loads(pickle.dumps(err))
    assert (back.kind, back.errno, back.path, back.offset, str(back)) == (
        err.kind,
        5,
        "p",
        3,
        str(err),
    )


def test_from_os_error_keeps_errno_and_path() -> None:
    exc = FileNotFoundError(2, "No such file or directory", "/nope")
    err = CompletionError.from_os_error(exc, "open")
    assert err.errno == 2 and err.path == "/nope" and err.__cause__ is exc
    assert "open failed" in str(err)


def test_an_abort_hook_runs_once_and_only_for_an_abort(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core import CompletionGroup

    seen: list[tuple[str, Completion]] = []
    c = Completion.new_read(bytearray(4))
    c.on_abort(lambda x: seen.append(("first", x)))
    c.on_abort(lambda x: seen.append(("second", x)))  # replaces the first
    c.abort()
    c.abort()
    assert seen == [("second", c)] and c.failed()

    for finish in (lambda d: d.complete(1), lambda d: d.error(eio())):
        done = Completion.new_write()
        done.on_abort(lambda x: seen.append(("never", x)))
        finish(done)
        done.abort()  # already finished: no hook
    removed = Completion.new_write()
    removed.on_abort(lambda x: seen.append(("never", x)))
    removed.on_abort(None)
    removed.abort()
    assert [name for name, _ in seen] == ["second"]

    group = CompletionGroup()
    children = [Completion.new_read(bytearray(1)) for _ in range(3)]
    for child in children:
        child.on_abort(lambda x: seen.append(("child", x)))
        group.add(child)
    group.build().abort()  # the group's abort aborts each child, hooks included
    assert [x for name, x in seen if name == "child"] == children

    reported: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    raising = Completion.new_sync()
    raising.on_abort(lambda x: 1 / 0)
    raising.abort()  # never raises into the caller
    assert raising.failed() and len(reported) == 1
