"""Shared test configuration.

- Every `@pytest.mark.asyncio` test runs once per event loop: plain asyncio and uvloop,
  through pytest-asyncio's `pytest_asyncio_loop_factories` hook (no event-loop policies).
  A test can narrow that with `@pytest.mark.asyncio(loop_factories=["asyncio"])`.
- Each loop made here records what reaches its exception handler ("Future exception was
  never retrieved", "Task was destroyed but it is pending", errors in callbacks); a test
  fails if anything did.
- trio tests use anyio's plugin: `@pytest.mark.anyio` with an `anyio_backend` fixture of
  "trio" in the test module.
- `@pytest.mark.slow` tests are skipped unless `--run-slow` is given.
- `--fuzz-examples=N` runs the HTTP API fuzz (`test_service_fuzz.py`) with N requests per
  operation instead of its default, and lifts its per-test timeout to match;
  `--fuzz-seed=SEED` runs it from a seed of its own instead of derandomized.
- `file_engine` runs a test once per engine of `AsyncFileIO` ("threads", "uring"): it sets
  what `engine="auto"` picks, so every backend the test builds without naming an engine
  runs that engine. The "uring" case is skipped only where no ring can be set up.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from bridge._pass_budget import thread_budget

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dev dependency except on Windows
    uvloop = None

LOOP_ERRORS: list[dict[str, Any]] = []
"""Contexts passed to the exception handler of the loops made by the factories below."""


def _record_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    LOOP_ERRORS.append(context)


def new_asyncio_loop() -> asyncio.AbstractEventLoop:
    """A plain asyncio loop whose exception handler records into `LOOP_ERRORS`."""
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(_record_loop_error)
    return loop


def new_uvloop_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop whose exception handler records into `LOOP_ERRORS`."""
    assert uvloop is not None
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    loop.set_exception_handler(_record_loop_error)
    return loop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": new_asyncio_loop}
    if uvloop is not None:
        factories["uvloop"] = new_uvloop_loop
    return factories


@pytest.fixture(autouse=True)
def _no_loop_errors() -> Iterator[None]:
    LOOP_ERRORS.clear()
    yield
    errors = list(LOOP_ERRORS)
    LOOP_ERRORS.clear()
    assert not errors, f"the event loop reported errors: {errors}"


@pytest.fixture
def whole_pass() -> Iterator[None]:
    """No step budget per loop pass for drives on this thread (`PassBudget`, tested in
    test_bridge_loop_lag.py) for the test: a test that counts what one pass does must not
    see a slow or loaded machine spread the drives over several passes."""
    budget = thread_budget()
    seconds = budget.seconds
    budget.seconds = math.inf
    yield
    budget.seconds = seconds


@pytest.fixture(params=["threads", "uring", "uring-sqpoll"])
def file_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The engine `AsyncFileIO(engine="auto")` picks during the test: "uring-sqpoll" is
    the ring with a kernel thread polling it (`AsyncFileIO(sqpoll=...)`)."""
    from bridge import _fileio, _uring_engine

    engine: str = request.param
    if engine != "threads":
        reason = _uring_engine.unavailable_reason()
        if reason is not None:
            pytest.skip(reason)
    if engine == "uring-sqpoll":
        if not _fileio.AsyncFileIO.sqpoll_available():
            pytest.skip("the kernel refuses an SQPOLL thread to this process")
        monkeypatch.setattr(_fileio, "DEFAULT_SQPOLL", 0.05)
    monkeypatch.setattr(_fileio, "AUTO_URING", engine != "threads")
    return engine


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")
    parser.addoption(
        "--fuzz-examples",
        type=int,
        default=None,
        metavar="N",
        help="requests per operation in the HTTP API fuzz (tests/test_service_fuzz.py)",
    )
    parser.addoption(
        "--fuzz-seed",
        type=int,
        default=None,
        metavar="SEED",
        help="run the HTTP API fuzz from this seed instead of derandomized",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    examples = config.getoption("--fuzz-examples")
    if examples is not None:
        # A long fuzz run takes as long as it needs: about 10 ms a request, ten times that here.
        for item in items:
            if "fuzz_examples" in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.timeout(max(60, examples // 10)))
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow; run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
