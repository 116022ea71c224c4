"""Reporting an exception that has nowhere to go, as `sys.unraisablehook` reports them.

A done-callback that raises on a worker thread, or a loop callback of an engine, must not
raise into its caller; its exception goes to `sys.unraisablehook`. The interpreter's own
hook accepts only the interpreter's `UnraisableHookArgs`, which Python code cannot build
(handed anything else, it raises `TypeError`, into exactly the caller we protect). So with
that hook installed we print what it prints; any other hook (an application's, pytest's)
receives an object with the same attributes, and if it refuses it, we print instead.
"""

from __future__ import annotations

import builtins
import sys
import traceback
from types import TracebackType

__all__ = ["Unraisable", "report_unraisable"]


class Unraisable:
    """The attributes of `sys.UnraisableHookArgs`, for a hook installed by Python code."""

    __slots__ = ("err_msg", "exc_traceback", "exc_type", "exc_value", "object")

    exc_type: type[BaseException]
    exc_value: BaseException | None
    exc_traceback: TracebackType | None
    err_msg: str | None
    object: builtins.object

    def __init__(self, exc: BaseException, msg: str, obj: builtins.object) -> None:
        self.exc_type = type(exc)
        self.exc_value = exc
        self.exc_traceback = exc.__traceback__
        self.err_msg = msg
        self.object = obj


def report_unraisable(exc: BaseException, msg: str, obj: builtins.object) -> None:
    """Report `exc` (raised in `obj`'s callback, described by `msg`) without raising."""
    hook = sys.unraisablehook
    if hook is not sys.__unraisablehook__:
        try:
            hook(Unraisable(exc, msg, obj))
            return
        except Exception:
            pass  # a hook that refuses our object: print it instead
    _print(exc, msg, obj)


def _print(exc: BaseException, msg: str, obj: builtins.object) -> None:
    """What the interpreter's hook prints: the message, the object, the traceback."""
    stream = sys.stderr
    if stream is None:
        return  # no stderr (pythonw): the interpreter's hook is silent too
    try:
        try:
            where = repr(obj)
        except Exception:
            where = f"<{type(obj).__name__} object>"
        stream.write(f"{msg}: {where}\n")
        traceback.print_exception(exc, file=stream)
        stream.flush()
    except Exception:
        pass  # a closed or broken stderr: there is nowhere left to report to
