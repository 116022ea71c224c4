"""Shared pieces of the file tests: call sequences (hypothesis strategies) and the runners that
play one sequence on Python's own file objects, on aiofiles, on the core (`block`) and on
`bridge.open`, recording every return value and every raised exception type.

No tests live here. The rules every runner applies, so that all sides see the same calls:
- A read in text mode, or `read1` in binary mode, right after a write with no flush between
  is preceded by a flush on every side: CPython's `read1` then reads stale bytes from the raw
  position (its bug, which we do not copy; see docs/files.md).
- `tell()` is skipped after `readlines(hint)` stopped early until the next seek: CPython then
  rebuilds the cookie from a snapshot that no longer matches and reads past a buffer.
- Exceptions compare by the first Python built-in (or `io`) class in their MRO and errno, so
  our `ClosedFileError` (a `ValueError` and an `IOResultError`) equals CPython's `ValueError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

Call = tuple[Any, ...]
"""One call: (method name, *arguments)."""

BINARY_READ_ONLY = ["rb"]
BINARY_MODES = ["rb", "rb+", "wb", "wb+", "ab", "ab+", "xb", "xb+"]
TEXT_MODES = ["r", "r+", "w", "w+", "a", "a+", "x+"]
NEWLINES = [None, "", "\n", "\r", "\r\n"]
ALPHABET = ["a", "b", "\n", "\r", "\r\n", "é", "€", "日", "ア", "x"]


def contents() -> st.SearchStrategy[bytes]:
    """Initial file contents: often empty or tiny, often longer than a small buffer."""
    lines = st.lists(st.binary(max_size=12), max_size=12).map(b"\n".join)
    return st.one_of(st.binary(max_size=8), lines, st.binary(min_size=20, max_size=120))


def alphabet_for(encoding: str) -> list[str]:
    """The characters of `ALPHABET` that `encoding` can encode."""
    return [c for c in ALPHABET if c.encode(encoding, "ignore").decode(encoding) == c]


def canonical(exc: BaseException) -> tuple[str, int | None]:
    """The first built-in or `io` class in the MRO, and the errno for an `OSError`."""
    name = type(exc).__name__
    for klass in type(exc).__mro__:
        if klass.__module__ in ("builtins", "io", "_io"):
            name = klass.__name__
            break
    return name, getattr(exc, "errno", None) if isinstance(exc, OSError) else None


@st.composite
def binary_calls(draw: st.DrawFn, max_calls: int = 25) -> list[Call]:
    """A sequence of calls on a binary file."""
    small = st.one_of(st.integers(0, 12), st.integers(0, 150))
    calls = []
    for _ in range(draw(st.integers(1, max_calls))):
        kind = draw(
            st.sampled_from(
                [
                    "read",
                    "read",
                    "read1",
                    "readinto",
                    "readline",
                    "readlines",
                    "write",
                    "write",
                    "writelines",
                    "seek",
                    "seek",
                    "tell",
                    "flush",
                    "truncate",
                    "peek",
                ]
            )
        )
        if kind == "read":
            calls.append(("read", draw(st.one_of(st.just(-1), small))))
        elif kind == "read1":
            calls.append(("read1", draw(st.one_of(st.just(-1), small))))
        elif kind == "readinto":
            calls.append(("readinto", draw(small)))
        elif kind == "readline":
            calls.append(("readline", draw(st.one_of(st.just(-1), small))))
        elif kind == "readlines":
            calls.append(("readlines", draw(st.one_of(st.just(-1), st.integers(1, 30)))))
        elif kind == "write":
            calls.append(("write", draw(st.binary(max_size=30).map(_add_newlines))))
        elif kind == "writelines":
            calls.append(("writelines", draw(st.lists(st.binary(max_size=8), max_size=3))))
        elif kind == "seek":
            whence = draw(st.integers(0, 2))
            offset = draw(st.integers(-3, 50) if whence == 0 else st.integers(-20, 20))
            calls.append(("seek", offset, whence))
        elif kind == "truncate":
            calls.append(("truncate", draw(st.one_of(st.none(), st.integers(0, 50)))))
        else:
            calls.append((kind,))
    return calls


def _add_newlines(data: bytes) -> bytes:
    return data.replace(b"\x00", b"\n")


@st.composite
def text_calls(draw: st.DrawFn, alphabet: list[str], max_calls: int = 25) -> list[Call]:
    """A sequence of calls on a text file; `("seek_cookie", i)` seeks to the i-th cookie
    `tell()` returned so far (0 when none)."""
    text = st.lists(st.sampled_from(alphabet), max_size=12).map("".join)
    calls = []
    for _ in range(draw(st.integers(1, max_calls))):
        kind = draw(
            st.sampled_from(
                [
                    "read",
                    "read",
                    "readline",
                    "readline",
                    "readlines",
                    "write",
                    "write",
                    "writelines",
                    "seek_cookie",
                    "seek_end",
                    "tell",
                    "tell",
                    "flush",
                    "truncate",
                ]
            )
        )
        if kind == "read":
            calls.append(("read", draw(st.one_of(st.just(-1), st.integers(0, 20)))))
        elif kind == "readline":
            calls.append(("readline", draw(st.one_of(st.just(-1), st.integers(0, 15)))))
        elif kind == "readlines":
            calls.append(("readlines", draw(st.one_of(st.just(-1), st.integers(1, 20)))))
        elif kind == "write":
            calls.append(("write", draw(text)))
        elif kind == "writelines":
            calls.append(("writelines", draw(st.lists(text, max_size=3))))
        elif kind == "seek_cookie":
            calls.append(("seek_cookie", draw(st.integers(0, 5))))
        elif kind == "truncate":
            calls.append(("truncate", draw(st.one_of(st.none(), st.integers(0, 40)))))
        else:
            calls.append((kind,))
    return calls


@dataclass
class Plan:
    """Applies the runner rules (see the module docstring) while a sequence plays."""

    text: bool
    dirty: bool = False
    poisoned: bool = False
    cookies: list[int] = field(default_factory=lambda: [0])

    def before(self, call: Call) -> tuple[bool, bool]:
        """(skip this call, flush first)."""
        name = call[0]
        if name == "tell" and self.poisoned:
            return True, False
        reads = ("read", "readline", "readlines") if self.text else ("read1",)
        return False, name in reads and self.dirty

    def after(self, call: Call, outcome: tuple[Any, ...]) -> None:
        """Track writes, flushes, cookies and early-stopped `readlines` (from the reference
        side's outcome)."""
        name = call[0]
        ok = outcome[0] == "ok"
        if name in ("write", "writelines") and ok:
            self.dirty = True
        if name == "flush" and ok:
            self.dirty = False
        if name == "tell" and ok:
            self.cookies.append(outcome[1])
        if name == "readlines" and call[1] > 0 and self.text:
            self.poisoned = True
        if name in ("seek_cookie", "seek_end") and ok:
            self.poisoned = False


def arguments(call: Call, plan: Plan) -> tuple[str, tuple[Any, ...]]:
    """The method and arguments a call stands for."""
    name = call[0]
    if name == "seek_cookie":
        return "seek", (plan.cookies[min(call[1], len(plan.cookies) - 1)], 0)
    if name == "seek_end":
        return "seek", (0, 2)
    return name, tuple(call[1:])


def play_sync(f: Any, calls: list[Call], plan: Plan, invoke: Callable[..., Any]) -> list[Any]:
    """Play `calls` on `f` (Python's file object, or a core file with `invoke` running each
    operation); return every outcome."""
    outcomes: list[Any] = []
    for call in calls:
        skip, flush_first = plan.before(call)
        if skip:
            continue
        if flush_first:
            invoke(f.flush)
        name, args = arguments(call, plan)
        outcome = _outcome_sync(f, name, args, invoke)
        plan.after(call, outcome)
        outcomes.append((call, outcome))
    return outcomes


def _outcome_sync(f: Any, name: str, args: tuple[Any, ...], invoke: Callable[..., Any]) -> Any:
    try:
        if name == "readinto":
            buf = bytearray(args[0])
            return ("ok", invoke(f.readinto, buf), bytes(buf))
        return ("ok", invoke(getattr(f, name), *args))
    except Exception as exc:
        return ("error", *canonical(exc))


async def play_async(f: Any, calls: list[Call], plan: Plan, sync_tell: bool = False) -> list[Any]:
    """Play `calls` on an async file object (aiofiles' or ours)."""
    outcomes: list[Any] = []
    for call in calls:
        skip, flush_first = plan.before(call)
        if skip:
            continue
        if flush_first:
            await f.flush()
        name, args = arguments(call, plan)
        try:
            if name == "readinto":
                buf = bytearray(args[0])
                outcome: Any = ("ok", await f.readinto(buf), bytes(buf))
            else:
                result = getattr(f, name)(*args)
                outcome = ("ok", await result if isinstance(result, Awaitable) else result)
        except Exception as exc:
            outcome = ("error", *canonical(exc))
        plan.after(call, outcome)
        outcomes.append((call, outcome))
    return outcomes


def initial_content(mode: str, data: bytes) -> bytes | None:
    """What the file holds before opening (None: it must not exist, for "x")."""
    if "x" in mode:
        return None
    return data
