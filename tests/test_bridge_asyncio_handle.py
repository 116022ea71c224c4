"""How `AsyncFileIO` reaches an asyncio loop: `AsyncioLoopHandle.unit` names the task that
submits (a request's ordering unit), and `is_current` tells the loop's thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bridge._fileio_common import AsyncioLoopHandle


@pytest.mark.asyncio
async def test_the_unit_is_the_running_task_and_none_in_a_callback() -> None:
    loop = asyncio.get_running_loop()
    handle = AsyncioLoopHandle(loop)
    assert handle.unit() is asyncio.current_task()

    async def other() -> object:
        return handle.unit()

    task = asyncio.create_task(other())
    assert await task is task
    in_callback: list[object] = []
    done = asyncio.Event()

    def callback() -> None:
        in_callback.append(handle.unit())
        done.set()

    loop.call_soon(callback)
    await done.wait()
    assert in_callback == [None]  # no task runs a loop callback


@pytest.mark.asyncio
async def test_is_current_only_on_the_loops_thread() -> None:
    handle = AsyncioLoopHandle(asyncio.get_running_loop())
    assert handle.is_current()
    seen: list[bool] = []
    thread = threading.Thread(target=lambda: seen.append(handle.is_current()))
    thread.start()
    thread.join()
    assert seen == [False]
    other = asyncio.new_event_loop()
    try:
        assert not AsyncioLoopHandle(other).is_current()  # another loop, not running here
    finally:
        other.close()
