"""The same core file operations as `asyncio_file_ops.py`, on uvloop: only the runner changes.

Run: python examples/uvloop_file_ops.py  (or python -m examples.uvloop_file_ops)
"""

from __future__ import annotations

import uvloop

if __package__:  # python -m examples.uvloop_file_ops
    from examples.asyncio_file_ops import main
else:  # python examples/uvloop_file_ops.py: the script's folder is on sys.path
    from asyncio_file_ops import main

if __name__ == "__main__":
    uvloop.run(main())
