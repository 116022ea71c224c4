"""The pytest plugin of the simulator (registered as the ``ioresult_sim`` entry point in
``pytest11``, so installing the package enables it).

Theory of operation:
- `sim_seed` is an int fixture: 0 by default, or the value of ``--sim-seed``. The marker
  ``@pytest.mark.sim_seeds(n, start=0)`` parametrizes it over ``start .. start+n-1``
  (test ids ``[seed0]``, ``[seed1]``, ...); ``--sim-seed=N`` narrows every such test to
  seed N, so a failure replays with exactly the command it printed.
- `sim_faults` is a `FaultConfig` fixture (no faults); override it in a test module or a
  ``conftest.py`` to inject faults. `sim_io` is a fresh `SimulatorIO(sim_seed, sim_faults)`,
  closed after the test.
- When a test that used `sim_seed` fails, its report gets a "simulation" section with the
  seed, the command that replays it, and the last events of the `sim_io` trace; the end of
  the run lists every failed seed again.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from core.sim.backend import SimulatorIO
from core.sim.faults import FaultConfig

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_runtest_makereport",
    "pytest_terminal_summary",
    "sim_faults",
    "sim_io",
    "sim_seed",
]

_SEED = pytest.StashKey[int]()
_IO = pytest.StashKey[SimulatorIO]()
_FAILED = pytest.StashKey[list[str]]()
_TRACE_LINES = 20


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ioresult-sim", "deterministic simulation (ioresult)")
    group.addoption(
        "--sim-seed",
        action="store",
        type=int,
        default=None,
        metavar="N",
        help="run simulation tests with this one seed only (replays a failure)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sim_seeds(n, start=0): run the test once per simulator seed start..start+n-1 "
        "(through the sim_seed and sim_io fixtures)",
    )
    config.stash[_FAILED] = []


def _seeds_from_marker(marker: pytest.Mark) -> list[int]:
    if len(marker.args) != 1 or set(marker.kwargs) - {"start"}:
        raise pytest.UsageError(
            f"sim_seeds takes one count and an optional start=, got args={marker.args} "
            f"kwargs={marker.kwargs}"
        )
    count = marker.args[0]
    start = marker.kwargs.get("start", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise pytest.UsageError(f"sim_seeds needs a count >= 1, got {count!r}")
    if not isinstance(start, int) or isinstance(start, bool):
        raise pytest.UsageError(f"sim_seeds start must be an int, got {start!r}")
    return list(range(start, start + count))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("sim_seeds")
    if marker is None:
        return
    seeds = _seeds_from_marker(marker)
    forced: int | None = metafunc.config.getoption("sim_seed")
    if forced is not None:
        seeds = [forced]
    metafunc.parametrize("sim_seed", seeds, ids=[f"seed{s}" for s in seeds])


@pytest.fixture
def sim_seed(request: pytest.FixtureRequest) -> int:
    """The simulator seed of this test: ``--sim-seed`` if given, else 0 (``sim_seeds``
    parametrizes it)."""
    forced: int | None = request.config.getoption("sim_seed")
    seed = 0 if forced is None else forced
    request.node.stash[_SEED] = seed
    return seed


@pytest.fixture
def sim_faults() -> FaultConfig:
    """The faults `sim_io` injects: none. Override this fixture to inject some."""
    return FaultConfig()


@pytest.fixture
def sim_io(
    request: pytest.FixtureRequest, sim_seed: int, sim_faults: FaultConfig
) -> Iterator[SimulatorIO]:
    """A fresh `SimulatorIO(sim_seed, sim_faults)`, closed after the test."""
    io = SimulatorIO(sim_seed, sim_faults)
    request.node.stash[_SEED] = sim_seed
    request.node.stash[_IO] = io
    yield io
    io.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    seed = item.stash.get(_SEED, None)
    if seed is None and isinstance(item, pytest.Function):
        # Parametrized by sim_seeds, the value replaces the fixture, which never runs.
        value = item.funcargs.get("sim_seed")
        seed = value if isinstance(value, int) else None
    if report.failed and seed is not None:
        replay = f"pytest '{item.nodeid}' --sim-seed={seed}"
        text = f"seed: {seed}\nreplay: {replay}"
        io = item.stash.get(_IO, None)
        if io is not None:
            text += f"\n{io.describe()}\nlast events:\n{io.trace.format(last=_TRACE_LINES)}"
        report.sections.append(("simulation", text))
        failed = item.config.stash.get(_FAILED, None)
        if failed is not None and replay not in failed:
            failed.append(replay)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    failed = terminalreporter.config.stash.get(_FAILED, None)
    if failed:
        terminalreporter.section("simulation seeds that failed")
        for line in failed:
            terminalreporter.write_line(line)
