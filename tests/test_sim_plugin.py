"""The pytest plugin: fixtures, the sim_seeds marker, --sim-seed, and replay lines on failure."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
# Plugins these inner runs do not need, and which cost seconds to start.
QUIET = ("-p", "no:hypothesispytest", "-p", "no:anyio", "-p", "no:cacheprovider")

TESTS = """
import pytest
from core import block
from core.ops import WriteBuffers, ReadWholeFile
from core.sim import FaultConfig, SimulatorIO

@pytest.mark.sim_seeds(5)
def test_roundtrip(sim_io, sim_seed):
    assert isinstance(sim_io, SimulatorIO) and sim_io.seed == sim_seed
    f = sim_io.open_file("f", flags=__import__("core.io").io.OpenFlags.CREATE)
    block(WriteBuffers(f, 0, [b"x" * sim_seed]), sim_io)
    assert block(ReadWholeFile(f), sim_io) == b"x" * sim_seed
    assert sim_seed != 3, "seed three is unlucky"

def test_default_seed(sim_seed, sim_io, sim_faults):
    assert sim_seed == sim_io.seed
    assert sim_faults == FaultConfig()

@pytest.mark.sim_seeds(2, start=10)
def test_start(sim_seed):
    assert sim_seed == 10
"""


def test_marker_parametrizes_and_a_failure_prints_its_replay(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_demo=TESTS)
    result = pytester.runpytest("-v", *QUIET)
    result.assert_outcomes(passed=6, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_roundtrip?seed0? PASSED*",
            "*test_roundtrip?seed3? FAILED*",
            "*test_start?seed10? PASSED*",
            "*test_start?seed11? FAILED*",
            "*- simulation -*",
            "seed: 3",
            "replay: pytest 'test_demo.py::test_roundtrip[[]seed3[]]' --sim-seed=3",
            "SimulatorIO(seed=3*",
            "last events:",
            "*#0 submit pwritev 'f' off=0 len=3*",
            "*- simulation -*",
            "seed: 11",
            "replay: pytest 'test_demo.py::test_start[[]seed11[]]' --sim-seed=11",
            "*simulation seeds that failed*",
            "pytest 'test_demo.py::test_roundtrip[[]seed3[]]' --sim-seed=3",
            "pytest 'test_demo.py::test_start[[]seed11[]]' --sim-seed=11",
        ]
    )
    # The printed command replays exactly that seed, and only it.
    replay = pytester.runpytest("-v", "test_demo.py::test_roundtrip[seed3]", "--sim-seed=3", *QUIET)
    replay.assert_outcomes(failed=1)
    replay.stdout.fnmatch_lines(["*test_roundtrip?seed3? FAILED*"])
    other = pytester.runpytest("-k", "roundtrip", "--sim-seed=2", "-v", *QUIET)
    other.assert_outcomes(passed=1)
    other.stdout.fnmatch_lines(["*test_roundtrip?seed2? PASSED*"])


def test_faults_fixture_override_and_bad_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_faulty="""
import pytest
from core import CompletionError, Completion
from core.sim import FaultConfig

@pytest.fixture
def sim_faults():
    return FaultConfig(submit_error=1.0)

def test_every_submission_fails(sim_io):
    sim_io.create_file("f", b"abc")
    with pytest.raises(CompletionError):
        sim_io.open_file("f").pread(0, Completion.new_read(bytearray(1)))
""",
        test_badmarker="""
import pytest

@pytest.mark.sim_seeds(0)
def test_bad(sim_seed):
    pass
""",
    )
    result = pytester.runpytest("--continue-on-collection-errors", *QUIET)
    result.stdout.fnmatch_lines(["*sim_seeds needs a count >= 1, got 0*"])
    result.assert_outcomes(passed=1, errors=1)
