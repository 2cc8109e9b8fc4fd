"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.runner import RunOutput, load, run_scenario
from twin.scenario import Scenario


def _small(name: str = "baseline", **overrides: object) -> Scenario:
    return load(name).with_overrides(**overrides)  # type: ignore[arg-type]


@pytest.fixture
def small():
    """A bundled scenario with overrides applied: ``small("outage", devices=200)``."""
    return _small


@pytest.fixture
def run_small(tmp_path: Path):
    """Run a scenario into a fresh folder under tmp_path; returns the RunOutput."""
    counter = iter(range(1000))

    def _run(scenario: Scenario) -> RunOutput:
        return run_scenario(scenario, tmp_path / f"run{next(counter)}")

    return _run
