"""The same core file operations as `asyncio_file_ops.py`, on uvloop: only the runner changes.

Run: python examples/uvloop_file_ops.py
"""

from __future__ import annotations

import uvloop
from asyncio_file_ops import main  # the script beside this one

if __name__ == "__main__":
    uvloop.run(main())
