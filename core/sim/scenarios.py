"""Scenarios: the operations core ships, each with random parameters and an oracle.

Theory of operation:
- A `Scenario` builds a `Case` from a random generator and the current contents of the
  files (`name -> bytes`). The case can build the operation on any simulator and says,
  independently of the simulator, what a correct run returns (`expected`, or that it must
  fail: `expect_error`), which files it may change and what they hold after a success
  (`after`), and which of them a success has made durable (`synced`).
- The soak (`core.sim.soak`) and the explorer tests run every registered scenario. To
  cover a new operation, write a builder and `register()` it (or pass it to the soak);
  nothing else needs to change.
- Oracles compute from plain bytes only, never from the simulator, so a simulator bug
  cannot hide an operation bug (or the other way round).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Mapping
from typing import Any

from core.driver import Operation
from core.io.backend import OpenFlags
from core.ops import CopyFile, ReadRange, ReadWholeFile, WriteBuffers
from core.sim.backend import SimulatorIO
from core.sim.errors import SimConfigError

__all__ = ["SCENARIOS", "Case", "Scenario", "register"]


@dataclasses.dataclass(frozen=True, slots=True)
class Case:
    """One operation with its oracle (see the module docstring)."""

    scenario: str
    params: str
    make_op: Callable[[SimulatorIO], Operation[Any]]
    expected: object = None
    expect_error: bool = False
    after: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    synced: frozenset[str] = frozenset()
    prefix_on_short_read: bool = False
    """True where a short read (`FaultConfig.short_read`) legitimately shortens the result
    to a prefix of `expected` (an operation that takes a short count for end of file)."""

    def __str__(self) -> str:
        return f"{self.scenario}({self.params})"


@dataclasses.dataclass(frozen=True, slots=True)
class Scenario:
    """A named builder: `build(rng, files) -> Case`."""

    name: str
    build: Callable[[random.Random, Mapping[str, bytes]], Case]


SCENARIOS: list[Scenario] = []
"""Every registered scenario; the soak picks among them."""


def register(scenario: Scenario) -> Scenario:
    """Add `scenario` to `SCENARIOS` and return it.

    Raises `SimConfigError` if a scenario of that name is already registered.
    """
    if any(s.name == scenario.name for s in SCENARIOS):
        raise SimConfigError(f"a scenario named {scenario.name!r} is already registered")
    SCENARIOS.append(scenario)
    return scenario


def apply_write(data: bytes, offset: int, payload: bytes) -> bytes:
    """`data` after writing `payload` at `offset` (zero-filling a gap), as a disk does."""
    if not payload:
        return data
    image = bytearray(data)
    end = offset + len(payload)
    if end > len(image):
        image.extend(bytes(end - len(image)))
    image[offset:end] = payload
    return bytes(image)


def _read_range(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    path = rng.choice(sorted(files))
    data = files[path]
    offset = rng.randint(0, len(data) + 64)
    length = rng.randint(0, 2048)
    exact = rng.random() < 0.5
    expected = data[offset : offset + length]

    def make_op(io: SimulatorIO) -> Operation[Any]:
        return ReadRange(io.open_file(path, OpenFlags.READ_ONLY), offset, length, exact=exact)

    return Case(
        "ReadRange",
        f"{path!r}, offset={offset}, length={length}, exact={exact}",
        make_op,
        expected=expected,
        expect_error=exact and len(expected) < length,
        prefix_on_short_read=not exact,
    )


def _read_whole(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    path = rng.choice(sorted(files))
    chunk = rng.choice([64, 500, 1024, 4096, 65536])

    def make_op(io: SimulatorIO) -> Operation[Any]:
        return ReadWholeFile(io.open_file(path, OpenFlags.READ_ONLY), chunk_size=chunk)

    return Case("ReadWholeFile", f"{path!r}, chunk_size={chunk}", make_op, expected=files[path])


def _write_buffers(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    path = rng.choice(sorted(files))
    data = files[path]
    offset = rng.randint(0, len(data) + 256)
    buffers = [rng.randbytes(rng.randint(0, 1500)) for _ in range(rng.randint(1, 4))]
    sync = rng.random() < 0.7
    payload = b"".join(buffers)

    def make_op(io: SimulatorIO) -> Operation[Any]:
        return WriteBuffers(io.open_file(path), offset, buffers, sync=sync)

    return Case(
        "WriteBuffers",
        f"{path!r}, offset={offset}, {len(buffers)} buffers of {len(payload)} bytes, sync={sync}",
        make_op,
        expected=len(payload),
        after={path: apply_write(data, offset, payload)},
        synced=frozenset({path}) if sync else frozenset(),
    )


def _copy_file(rng: random.Random, files: Mapping[str, bytes]) -> Case:
    src, dst = rng.sample(sorted(files), 2)
    chunk = rng.choice([256, 700, 1024, 4096])
    batch = rng.randint(1, 3)

    def make_op(io: SimulatorIO) -> Operation[Any]:
        return CopyFile(
            io.open_file(src, OpenFlags.READ_ONLY), io.open_file(dst), chunk_size=chunk, batch=batch
        )

    return Case(
        "CopyFile",
        f"{src!r} -> {dst!r}, chunk_size={chunk}, batch={batch}",
        make_op,
        expected=len(files[src]),
        after={dst: files[src]},
        synced=frozenset({dst}),
    )


register(Scenario("ReadRange", _read_range))
register(Scenario("ReadWholeFile", _read_whole))
register(Scenario("WriteBuffers", _write_buffers))
register(Scenario("CopyFile", _copy_file))
