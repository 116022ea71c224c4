"""The synchronous core: operations are explicit state machines whose `step()` returns
`Done(value)` or `IO(completion)`; drivers (`block` here, `bridge.drive` on an event loop)
wait for the completion and step again. Nothing here knows an event loop.
"""

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

__all__ = [
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
