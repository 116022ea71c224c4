"""The synchronous core: operations are explicit state machines whose `step()` returns
`Done(value)` or `IO(completion)`; drivers (`block` here, `bridge.drive` on an event loop)
wait for the completion and step again. Nothing here knows an event loop.

`COMPILED` is True when the hot modules run compiled by mypyc (an installed wheel built
with a C compiler), False when everything runs as the plain Python source.
"""

from importlib.machinery import EXTENSION_SUFFIXES as _EXTENSION_SUFFIXES

import core.state_machine as _kernel
from core.completion import Completion, CompletionCallback, CompletionGroup, DoneCallback
from core.driver import Abortable, Operation, Steppable, as_step, block
from core.errors import CompletionError, ErrorKind, InternalError, IOResultError, StateMachineError
from core.result import IO, Done, IOResult, io_yield_one, restore_on_io
from core.state_machine import (
    Continue,
    ContinueType,
    Machine,
    StateMachine,
    Transition,
    TransitionResult,
)

COMPILED: bool = (_kernel.__file__ or "").endswith(tuple(_EXTENSION_SUFFIXES))
"""True when the kernel (and with it every hot module) is a mypyc-compiled extension."""

__all__ = [
    "COMPILED",
    "IO",
    "Abortable",
    "Completion",
    "CompletionCallback",
    "CompletionError",
    "CompletionGroup",
    "Continue",
    "ContinueType",
    "Done",
    "DoneCallback",
    "ErrorKind",
    "IOResult",
    "IOResultError",
    "InternalError",
    "Machine",
    "Operation",
    "StateMachine",
    "StateMachineError",
    "Steppable",
    "Transition",
    "TransitionResult",
    "as_step",
    "block",
    "io_yield_one",
    "restore_on_io",
]
