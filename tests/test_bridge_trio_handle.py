"""How `AsyncFileIO` schedules on a trio run: `TrioLoopHandle.call_soon` runs callbacks in
order in a system task woken without a system call, survives a failing callback, and hands
what is queued at the end of the run back to trio."""

from __future__ import annotations

import socket
import sys

import pytest
import trio

from bridge._trio import TrioLoopHandle


def test_call_soon_runs_in_order_on_the_next_batch() -> None:
    ran: list[int] = []

    async def main() -> None:
        handle = TrioLoopHandle()
        for i in range(3):
            handle.call_soon(ran.append, i)
        assert ran == []  # never at once
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        assert ran == [0, 1, 2]
        handle.call_soon(ran.append, 3)  # the runner is parked: a reschedule wakes it
        handle.call_soon(ran.append, 4)
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        assert ran == [0, 1, 2, 3, 4]

    trio.run(main)


def test_what_a_callback_queues_runs_in_a_later_batch() -> None:
    """As `call_soon` from a callback on asyncio runs in the next pass: a chain of callbacks
    each queueing the next takes a batch of tasks per link, never one turn for all."""
    batches = 0
    seen: list[int] = []

    async def main() -> None:
        nonlocal batches
        handle = TrioLoopHandle()
        done = trio.Event()

        def link(depth: int) -> None:
            seen.append(batches)
            if depth < 10:
                handle.call_soon(link, depth + 1)
            else:
                done.set()

        async def count_batches() -> None:
            nonlocal batches
            while not done.is_set():
                batches += 1
                await trio.lowlevel.checkpoint()  # runs once per batch

        async with trio.open_nursery() as nursery:
            nursery.start_soon(count_batches)
            handle.call_soon(link, 0)

    trio.run(main)
    assert len(seen) == 11
    assert seen[-1] - seen[0] >= 9  # each link in a batch of its own


def test_call_soon_makes_no_system_call_to_wake_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    sends: list[bytes] = []
    real_send = socket.socket.send

    def counting_send(self: socket.socket, data: bytes, *args: int) -> int:
        sends.append(data)
        return real_send(self, data, *args)

    ran: list[int] = []

    async def main() -> None:
        handle = TrioLoopHandle()
        handle.call_soon(ran.append, 0)  # starts the runner
        await trio.sleep(0.01)
        monkeypatch.setattr(socket.socket, "send", counting_send)
        for i in range(1, 50):
            handle.call_soon(ran.append, i)
            await trio.lowlevel.checkpoint()
            await trio.lowlevel.checkpoint()
        monkeypatch.undo()

    trio.run(main)
    assert ran == list(range(50))
    assert sends == []  # `run_sync_soon` would have written to trio's wake-up socket


def test_a_failing_callback_is_reported_and_the_rest_run(monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))
    ran: list[str] = []

    def fail(_: object) -> None:
        raise ValueError("callback failed")

    async def main() -> None:
        handle = TrioLoopHandle()
        handle.call_soon(fail, None)
        handle.call_soon(ran.append, "after")
        await trio.sleep(0.01)
        handle.call_soon(ran.append, "later")
        await trio.sleep(0.01)

    trio.run(main)
    assert ran == ["after", "later"]
    assert len(reported) == 1 and isinstance(reported[0], ValueError)


def test_what_is_queued_as_the_run_ends_still_runs() -> None:
    ran: list[str] = []
    handles: list[TrioLoopHandle] = []

    async def queue_at_shutdown() -> None:
        try:
            await trio.sleep_forever()
        finally:
            # The run is cancelling its system tasks: the runner may be gone already.
            handles[0].call_soon(ran.append, "at shutdown")

    async def main() -> None:
        handle = TrioLoopHandle()
        handles.append(handle)
        handle.call_soon(ran.append, "first")
        await trio.sleep(0.01)
        trio.lowlevel.spawn_system_task(queue_at_shutdown)
        await trio.sleep(0.01)

    trio.run(main)
    assert ran == ["first", "at shutdown"]
