"""Cost per read of the io_uring binding itself: our `ctypes` ring against the PyPI
`liburing` package (C liburing behind a Zig extension), side by side in one run.

Each contender reads 4 KiB pages of a 16 MiB file, page cache hot (so the kernel finishes
every read inside the submitting call and what is left is the binding's own cost), in
batches of 1 and 32: write the batch's entries, one `io_uring_enter` that submits them and
waits for all of them, then read every completion entry (user_data and result) and free the
slots. A raw `os.pread` loop is the yardstick. Both rings are set up alike
(`SINGLE_ISSUER | DEFER_TASKRUN`). Contenders alternate; medians.

`liburing` is optional (it is not one of the project's dependencies): without it the script
measures ours and says so. To measure it, install it next to this checkout, for instance in
a scratch environment: `python -m venv /tmp/lu && /tmp/lu/bin/pip install liburing`, then
`/tmp/lu/bin/python benchmarks/bench_ring_binding.py` (the core needs nothing else).

Run: python benchmarks/bench_ring_binding.py [--quick] [--rounds N]
"""

from __future__ import annotations

import ctypes
import os
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Appended, not prepended: an installed build (the compiled wheel) wins over the checkout.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from _common import Contender, alternate, parse_args, print_table, ratio, timed

from core.io.ring import OP_READ, Ring

try:
    import liburing
except ImportError:  # pragma: no cover - an optional peer
    liburing = None

PAGE = 4096
FILE_SIZE = 16 << 20
BATCHES = (1, 32)


def ours(fd: int, offsets: list[int], batch: int) -> Callable[[], float]:
    ring = Ring(64, owner="bench")
    buffers = [bytearray(PAGE) for _ in range(batch)]
    anchors = [ctypes.c_char.from_buffer(b) for b in buffers]  # the kernel writes there
    addrs = [ctypes.addressof(a) for a in anchors]

    def run() -> float:
        assert len(anchors) == batch  # kept alive with this closure

        def work() -> None:
            queue, enter, reap = ring.queue, ring.enter, ring.reap
            for i in range(0, len(offsets), batch):
                part = offsets[i : i + batch]
                for k, off in enumerate(part):
                    queue(OP_READ, fd, off, addrs[k], PAGE, k + 1)
                enter(len(part))
                for _key, res in reap():
                    if res < 0:
                        raise OSError(-res, os.strerror(-res))

        return timed(work, len(offsets))

    return run


def theirs(fd: int, offsets: list[int], batch: int) -> Callable[[], float]:
    assert liburing is not None
    lu: Any = liburing
    ring = lu.Ring()
    cqe = lu.Cqe()
    flags = lu.IORING_SETUP_SINGLE_ISSUER | lu.IORING_SETUP_DEFER_TASKRUN
    lu.io_uring_queue_init(64, ring, flags)
    buffers = [bytearray(PAGE) for _ in range(batch)]

    def run() -> float:
        assert cqe is not None  # kept alive with this closure

        def work() -> None:
            get_sqe, prep_read = lu.io_uring_get_sqe, lu.io_uring_prep_read
            submit_and_wait, ready = lu.io_uring_submit_and_wait, lu.io_uring_cq_ready
            peek, advance = lu.io_uring_peek_cqe, lu.io_uring_cq_advance
            for i in range(0, len(offsets), batch):
                part = offsets[i : i + batch]
                for k, off in enumerate(part):
                    sqe = get_sqe(ring)
                    prep_read(sqe, fd, buffers[k], off)
                    sqe.user_data = k + 1
                submit_and_wait(ring, len(part))
                n = ready(ring)
                peek(ring, cqe)
                for j in range(n):
                    entry = cqe[j]
                    _ = entry.user_data, entry.res  # res raises for a negative result
                advance(ring, n)

        return timed(work, len(offsets))

    return run


def main() -> None:
    args = parse_args(__doc__ or "")
    rounds = args.rounds or (7 if args.quick else 25)
    reads = 4_000 if args.quick else 20_000
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        path = os.path.join(tmp, "ring.bin")
        with open(path, "wb") as f:
            f.write(random.Random(0).randbytes(FILE_SIZE))
        with open(path, "rb") as f:  # into the page cache
            f.read()
        rng = random.Random(1)
        offsets = [rng.randrange(FILE_SIZE // PAGE) * PAGE for _ in range(reads)]
        fd = os.open(path, os.O_RDONLY)

        def raw() -> float:
            def work() -> None:
                pread = os.pread
                for off in offsets:
                    pread(fd, PAGE, off)

            return timed(work, len(offsets))

        contenders = [Contender("raw", raw)]
        labels = {"raw": ("raw os.pread loop", "-", 1)}
        for batch in BATCHES:
            contenders.append(Contender(f"ours{batch}", ours(fd, offsets, batch)))
            labels[f"ours{batch}"] = (
                "core.io.ring (ctypes, ours)",
                "5.6+ (6.1+ as set up here)",
                batch,
            )
            if liburing is not None:
                contenders.append(Contender(f"liburing{batch}", theirs(fd, offsets, batch)))
                labels[f"liburing{batch}"] = (
                    f"PyPI liburing {liburing.__version__} (Zig over C liburing)",
                    "6.14+ (its README)",
                    batch,
                )
        results = alternate(contenders, rounds)
        med = {name: r.median for name, r in results.items()}
        rows = [
            [what, kernel, batch, med[name] * 1e6, ratio(med[name], med["raw"])]
            for name, (what, kernel, batch) in labels.items()
        ]
        print_table(
            f"4 KiB reads, page cache hot, {reads} reads per run, {rounds} rounds, medians",
            ["binding", "kernel", "reads per enter", "us per read", "vs raw pread"],
            rows,
        )
        if liburing is None:
            print("\n(liburing is not installed here: only our ring was measured)")
        else:
            print_table(
                "liburing's time per read / ours (above 1: ours is cheaper)",
                ["reads per enter", "ratio"],
                [[b, ratio(med[f"liburing{b}"], med[f"ours{b}"])] for b in BATCHES],
            )
        os.close(fd)


if __name__ == "__main__":
    main()
