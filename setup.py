"""Builds `ioresult`, compiling the hot modules with mypyc where it can.

The Python source is the one source of truth: every module below also runs unchanged as
plain Python. A wheel built from source compiles them; it falls back to plain Python when
mypyc or a C compiler is missing, a build fails, or `IORESULT_PURE=1` is set. An editable
install is always plain Python, because a compiled module next to its `.py` file would
shadow it. docs/performance-compiled.md lists what compiles and why the rest does not.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

# Left interpreted: `core/errors.py` (the bridge's errors inherit from both an ioresult
# error and a builtin one, which a compiled base's layout forbids),
# `core/io/ring_syscalls.py` (ctypes, where tests stand in for the kernel),
# `core/io/uring.py` (`UringIO` hands itself to `weakref.finalize`, and a compiled class
# takes no weak references), the text layer (`core/files/text*.py`:
# `TextFile`'s methods take CPython's argument checks, e.g. "write() argument must be str",
# which a compiled signature would replace with mypyc's own TypeError; and an interpreted
# `TextFile` cannot subclass a compiled `TextState`), `bridge/_fileio.py` (`AsyncFileIO`
# hands itself to `weakref.finalize`; its files, `bridge/_async_file.py`, compile),
# `bridge/_defaults.py`
# (the loop tracks only a real async generator), `bridge/_drive_common.py` (`one_turn`
# must stay a generator `types.coroutine` can flag), `bridge/_drive_asyncio.py` (a
# compiled coroutine dropped unfinished never runs its `finally` blocks, where a drive
# that awaits cleans up; `bridge/_drive.py`, which takes the first step, compiles),
# and everything not on a hot path: among them `core/storage/errors.py` and
# `core/storage/limits.py` (errors deriving from the interpreted `core/errors.py`),
# `core/storage/ddl.py` (the SQL parser) and `check.py`.
COMPILED_MODULES = [
    # The model: results, completions and groups, the kernel, `block`.
    "core/result.py",
    "core/completion.py",
    "core/state_machine.py",
    "core/driver.py",
    # The backends.
    "core/io/common.py",
    "core/io/memory.py",
    "core/io/unix.py",
    "core/io/ring.py",
    "core/io/uring_engine.py",
    # The storage engine's read path: pager, cache, B-tree cursors, record codec, queries.
    "core/storage/header.py",
    "core/storage/page.py",
    "core/storage/node.py",
    "core/storage/cache.py",
    "core/storage/pager.py",
    "core/storage/wal.py",
    "core/storage/shared.py",
    "core/storage/btree.py",
    "core/storage/record.py",
    "core/storage/collation.py",
    "core/storage/schema.py",
    "core/storage/locking.py",
    "core/storage/database.py",
    "core/storage/transaction.py",
    "core/storage/queries.py",
    "core/storage/index_scan.py",
    # The storage engine's write side: statements, page edits, record and page encoding,
    # the WAL's appends and checkpoints, transactions.
    "core/storage/statement.py",
    "core/storage/tx_reads.py",
    "core/storage/row_write.py",
    "core/storage/changes.py",
    "core/storage/tree_edit.py",
    "core/storage/balance.py",
    "core/storage/encode.py",
    "core/storage/commit.py",
    "core/storage/wal_write.py",
    "core/storage/wal_checksum.py",
    "core/storage/checkpoint.py",
    "core/storage/ddl_write.py",
    "core/storage/journal_mode.py",
    "core/storage/write_transaction.py",
    # The file objects: their calls, the buffered layer, and the read operations.
    "core/files/call.py",
    "core/files/raw.py",
    "core/files/support.py",
    "core/files/buffer_state.py",
    "core/files/buffered.py",
    "core/files/buffered_reads.py",
    "core/files/buffered_writes.py",
    "core/files/buffered_random_access.py",
    "core/ops/read.py",
    # `drive`'s first step and the loop's step budget, and `bridge.open`'s file objects
    # (their coroutines keep nothing to clean up in `finally`).
    "bridge/_drive.py",
    "bridge/_pass_budget.py",
    "bridge/_asyncio_wake.py",
    "bridge/aiofile.py",
    # What both engines of `AsyncFileIO` share (requests, the finisher, the asyncio loop
    # handle, whose one coroutine keeps nothing to clean up in `finally`), and the io_uring
    # engine (no coroutines).
    "bridge/_fileio_common.py",
    "bridge/_uring_engine.py",
    # `AsyncFileIO`'s files: the inline read of a page-cache hit, and submission.
    "bridge/_async_file.py",
]


def _editable() -> bool:
    return any(arg in ("editable_wheel", "develop") for arg in sys.argv)


def _ext_modules() -> list[Any]:
    if os.environ.get("IORESULT_PURE", "") not in ("", "0") or _editable():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("ioresult: mypyc is not installed; building plain Python", file=sys.stderr)
        return []
    try:
        return list(mypycify(COMPILED_MODULES, opt_level="3", debug_level="0"))
    except (Exception, SystemExit) as exc:  # a type error mypyc refuses, say
        print(f"ioresult: mypyc failed ({exc!r}); building plain Python", file=sys.stderr)
        return []


class OptionalBuildExt(build_ext):
    """Builds the compiled modules, or none of them if any fails: each module's stub
    needs the one shared library, so a partial build would not import."""

    def run(self) -> None:
        # Never reuse a library left in build/ by an earlier build: it may be older than
        # the source.
        self.force = True
        try:
            super().run()
        except Exception as exc:  # no compiler, a compile error: ship plain Python
            print(f"ioresult: compiling failed ({exc}); building plain Python", file=sys.stderr)
            for ext in self.extensions:
                path = self.get_ext_fullpath(ext.name)
                if os.path.exists(path):
                    os.remove(path)


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
