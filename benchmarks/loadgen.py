"""A lean HTTP/1.1 load generator: asyncio, keep-alive connections, fixed request lists.

`run_load(host, port, paths, concurrency)` opens `concurrency` keep-alive connections and
has each send its share of `paths`, one request at a time (a closed loop: the next request
leaves when the previous answer is complete), and returns the requests per second and the
latency of every request. Responses are read by Content-Length or chunked encoding; a
status other than 200 fails the run (a benchmark of errors measures nothing).

It is deliberately small (no HTTP library in the measured path): parsing costs a few
microseconds per response, far below the service's own time. Run on uvloop when present.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["LoadResult", "run_load"]


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One load run: requests done, seconds taken, and each request's latency (seconds)."""

    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        """The `p`-th percentile latency (0 < p <= 100), nearest rank."""
        ordered = sorted(self.latencies)
        rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[rank]


class BadResponse(Exception):
    """The server answered something other than 200, or broke the protocol."""


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; return its body length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = head[9:12]
    if status != b"200":
        raise BadResponse(f"status {status.decode(errors='replace')}: {head[:200]!r}")
    length = -1
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        if length < 0:
            raise BadResponse("a response with neither Content-Length nor chunked encoding")
        await reader.readexactly(length)
        return length
    total = 0
    while True:
        size = int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16)
        await reader.readexactly(size + 2)
        total += size
        if size == 0:
            return total


async def _worker(host: str, port: int, requests: Sequence[bytes], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        clock = time.perf_counter
        for request in requests:
            start = clock()
            writer.write(request)
            await _read_response(reader)
            latencies.append(clock() - start)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def _request(host: str, port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n\r\n".encode()


async def run_load(host: str, port: int, paths: Sequence[str], concurrency: int) -> LoadResult:
    """Send every path in `paths` over `concurrency` keep-alive connections (path i goes to
    connection i % concurrency). Raises `BadResponse` if any answer is not a 200."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    shares = [[_request(host, port, p) for p in paths[i::concurrency]] for i in range(concurrency)]
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*(_worker(host, port, share, latencies) for share in shares if share))
    seconds = time.perf_counter() - start
    return LoadResult(len(paths), seconds, latencies)
