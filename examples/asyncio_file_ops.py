"""Core file operations on plain asyncio, through `bridge.drive` over `AsyncFileIO`.

Run: python examples/asyncio_file_ops.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile

from bridge import AsyncFileIO, DriveTimeoutError, drive
from core.io import OpenFlags
from core.ops import CopyFile, ReadRange, ReadWholeFile, WriteBuffers


async def main() -> None:
    payload = os.urandom(1 << 20)
    with tempfile.TemporaryDirectory() as tmp:
        async with AsyncFileIO() as io:
            src = io.open_file(os.path.join(tmp, "src.bin"), OpenFlags.CREATE)
            dst = io.open_file(os.path.join(tmp, "dst.bin"), OpenFlags.CREATE)

            written = await drive(WriteBuffers(src, 0, [payload[:4096], payload[4096:]]), io)
            print(f"wrote {written} bytes")
            assert await drive(ReadRange(src, 1000, 100), io) == payload[1000:1100]
            print("read a range: ok")
            assert await drive(ReadWholeFile(src), io) == payload
            print("read the whole file: ok")
            print(f"copied {await drive(CopyFile(src, dst), io)} bytes")

            # Cancellation: the copy's first I/O (a truncate) waits on a worker; cancel it
            # there. The driver aborts the I/O, lets the worker's call settle, re-raises.
            task = asyncio.create_task(drive(CopyFile(src, dst), io))
            await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                print("cancelled: CancelledError")

            # Timeout: with a zero timeout any operation that has to wait gives up.
            try:
                await drive(CopyFile(src, dst), io, timeout=0)
            except DriveTimeoutError as exc:  # also a TimeoutError
                print(f"timed out: {type(exc).__name__}")

            # The backend is still fine after both.
            assert await drive(ReadRange(src, 0, 16), io) == payload[:16]
    print("done")


if __name__ == "__main__":
    asyncio.run(main())
