"""The WAL checksum and a checkpoint's reads, side by side in one run.

    python benchmarks/bench_wal.py            # full run
    python benchmarks/bench_wal.py --quick    # fewer rounds

1. The checksum of one frame's page (4 KiB and 64 KiB): the word loop the reader used
   before (kept here verbatim) against `wal_checksum` (packed-integer halving).
2. `WalScan` of a 2,000-frame log of 4 KiB pages, with each of the two checksums.
3. `Checkpoint` of that log (about half its frames are the latest of their page) on
   `UnixIO`, reading runs of nearby frames (the default) against one `pread` per frame.
   The files live on tmpfs (/dev/shm) where it exists, so fsync costs nothing and the
   figures are about the reads and writes.

Contenders alternate (A B, B A, ...) for several rounds; figures are medians.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import sys
import tempfile
from pathlib import Path

# Appended, not prepended: an installed build (the compiled wheel) wins over the checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

import core.storage.wal as wal_module
from benchmarks._common import Contender, alternate, parse_args, print_table, ratio, timed
from core import block
from core.io import OpenFlags, UnixIO
from core.storage.wal import WalScan, WalSnapshot
from core.storage.wal_checksum import wal_checksum
from core.storage.wal_write import AppendCommit, Checkpoint, WalAppender

_MASK = 0xFFFFFFFF


def loop_checksum(
    data: bytes | bytearray, start: int, end: int, s0: int, s1: int, big_endian: bool
) -> tuple[int, int]:
    """The reader's checksum before this change, verbatim."""
    count = (end - start) // 4
    words = struct.unpack_from(f"{'>' if big_endian else '<'}{count}I", data, start)
    it = iter(words)
    for a, b in zip(it, it, strict=True):
        s0 = (s0 + a + s1) & _MASK
        s1 = (s1 + b + s0) & _MASK
    return s0, s1


def checksums(rounds: int) -> None:
    rng = random.Random(1)
    rows = []
    for size in (4096, 65536):
        pages = [rng.randbytes(size) for _ in range(16)]
        for page in pages:
            assert wal_checksum(page, 0, size, 1, 2, False) == loop_checksum(
                page, 0, size, 1, 2, False
            )
        per_round = (max(1, 2_000_000 // size) // len(pages) + 1) * len(pages)

        def run(
            fn: object, pages: list[bytes] = pages, size: int = size, n: int = per_round
        ) -> float:
            assert callable(fn)

            def work() -> None:
                for _ in range(n // len(pages)):
                    for page in pages:
                        fn(page, 0, size, 1, 2, False)

            return timed(work, n)

        results = alternate(
            [
                Contender("loop", lambda run=run: run(loop_checksum)),
                Contender("fold", lambda run=run: run(wal_checksum)),
            ],
            rounds,
        )
        loop, fold = results["loop"].median * 1e6, results["fold"].median * 1e6
        rows.append((f"{size // 1024} KiB", loop, fold, ratio(loop, fold)))
    print_table(
        "WAL checksum of one page (us per page)",
        ["page", "word loop", "wal_checksum", "speed-up"],
        rows,
    )


def _scratch() -> Path:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return Path(tempfile.mkdtemp(prefix="bench_wal_", dir=base))


def _build_log(io: UnixIO, folder: Path, frames: int, page_size: int) -> WalSnapshot:
    """A database of 1,000 pages and a log of `frames` frames over it: commits of 20
    pages, half of them rewriting pages written before."""
    rng = random.Random(2)
    (folder / "db").write_bytes(bytes(1000 * page_size))
    appender = WalAppender.new_log(page_size, seed=1)
    with io.open_file(folder / "db-wal", OpenFlags.CREATE) as wal:
        written = 0
        while written < frames:
            numbers = rng.sample(range(1, 1001), 20)
            prepared = appender.prepare([(n, rng.randbytes(page_size)) for n in numbers], 1000)
            block(AppendCommit(wal, prepared), io)
            appender.commit(prepared)
            written += 20
    return appender.snapshot


def scan(rounds: int) -> None:
    io = UnixIO()
    folder = _scratch()
    try:
        snapshot = _build_log(io, folder, 2000, 4096)

        def run(checksum: object) -> float:
            wal_module.wal_checksum = checksum  # type: ignore[assignment]
            try:
                with io.open_file(folder / "db-wal", OpenFlags.READ_ONLY) as wal:

                    def work() -> None:
                        s = WalScan(wal, 4096, None)
                        while (c := s.advance()) is not None:
                            io.wait_for_completion(c)
                        assert s.snapshot == snapshot

                    return timed(work, 1)
            finally:
                wal_module.wal_checksum = wal_checksum

        results = alternate(
            [
                Contender("loop", lambda: run(loop_checksum)),
                Contender("fold", lambda: run(wal_checksum)),
            ],
            rounds,
        )
        loop, fold = results["loop"].median * 1e3, results["fold"].median * 1e3
        print_table(
            "WalScan of 2,000 frames of 4 KiB (ms per scan)",
            ["word loop", "wal_checksum", "speed-up"],
            [(loop, fold, ratio(loop, fold))],
        )
    finally:
        shutil.rmtree(folder)
        io.close()


class _FramePerRead(Checkpoint):
    """The checkpoint reading one frame per `pread`."""

    __slots__ = ()

    def _plan(self) -> list[list[tuple[int, int, list[tuple[int, int]]]]]:
        return [
            [(frame, 1, [(frame, page)]) for frame, page in run[2]]
            for batch in super()._plan()
            for run in batch
        ]


def checkpoint(rounds: int) -> None:
    io = UnixIO()
    folder = _scratch()
    try:
        snapshot = _build_log(io, folder, 2000, 4096)
        log = (folder / "db-wal").read_bytes()
        pages = len([p for p in snapshot.frames if p <= snapshot.db_size])

        def run(kind: type[Checkpoint]) -> float:
            (folder / "db").write_bytes(bytes(1000 * 4096))
            (folder / "db-wal").write_bytes(log)
            with io.open_file(folder / "db") as db, io.open_file(folder / "db-wal") as wal:
                return timed(lambda: block(kind(db, wal, snapshot, 4096), io), pages)

        results = alternate(
            [
                Contender("runs", lambda: run(Checkpoint)),
                Contender("frames", lambda: run(_FramePerRead)),
            ],
            rounds,
        )
        runs, frames = results["runs"].median * 1e6, results["frames"].median * 1e6
        print_table(
            f"Checkpoint of 2,000 frames ({pages} pages copied), us per page",
            ["runs of frames", "one pread per frame", "ratio"],
            [(runs, frames, ratio(frames, runs))],
        )
    finally:
        shutil.rmtree(folder)
        io.close()


def main() -> None:
    args = parse_args(__doc__ or "")
    rounds = args.rounds or (5 if args.quick else 15)
    checksums(rounds)
    scan(max(3, rounds // 2))
    checkpoint(max(3, rounds // 2))


if __name__ == "__main__":
    main()
