"""FaultConfig: documented knobs, zero by default, bad values refused by name."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import core.sim.faults as faults_module
from core import IOResultError
from core.sim import FaultConfig, SimConfigError, TornWriteResult


def test_defaults_are_a_perfect_disk() -> None:
    faults = FaultConfig()
    for field in dataclasses.fields(faults):
        if field.name != "torn_write_result":
            assert getattr(faults, field.name) == 0, field.name
    assert faults.torn_write_result is TornWriteResult.ERROR
    assert not faults.any_io_faults()


def test_every_knob_is_documented() -> None:
    source = FaultConfig.__doc__ or ""
    assert "SimConfigError" in source
    text = inspect.getsource(faults_module)
    for field in dataclasses.fields(FaultConfig):
        after = text.split(f"    {field.name}:", 1)[1]
        assert after.split("\n", 2)[1].strip().startswith('"""'), field.name


def test_uniform() -> None:
    faults = FaultConfig.uniform(0.25)
    assert faults.read_error == faults.submit_error == faults.torn_write == 0.25
    assert faults.crash_keep_unsynced == 0.5
    assert faults.any_io_faults()


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"read_error": 1.5}, "read_error"),
        ({"short_read": -0.1}, "short_read"),
        ({"submit_error": "often"}, "submit_error"),
        ({"sync_error": True}, "sync_error"),
        ({"torn_write_result": "error"}, "torn_write_result"),
        ({"crash_sector": -512}, "crash_sector"),
        ({"crash_sector": 0.5}, "crash_sector"),
        ({"crash_sector": True}, "crash_sector"),
    ],
)
def test_bad_values_are_refused_by_name(kwargs: dict[str, object], names: str) -> None:
    with pytest.raises(SimConfigError, match=names) as info:
        FaultConfig(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, IOResultError) and isinstance(info.value, ValueError)
    with pytest.raises(SimConfigError):
        FaultConfig.uniform(2.0)


def test_frozen() -> None:
    faults = FaultConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        faults.read_error = 0.5  # type: ignore[misc]
