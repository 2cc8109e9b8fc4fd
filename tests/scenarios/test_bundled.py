"""Every bundled scenario runs in full with its own seed and matches its golden summary.

The summary holds the counts a behaviour change would move (telemetry accounting, device
states, reconnections), not values that hang on floating-point details of a numpy release.
After an intended change, regenerate with ``MEDTWIN_UPDATE_GOLDEN=1 pytest tests/scenarios``
and review the diff of ``tests/scenarios/golden/`` like code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from twin.runner import load, run_scenario
from twin.scenario import bundled_scenarios

GOLDEN = Path(__file__).parent / "golden"


def summary(report: dict) -> dict:
    counters = {k: v for k, v in report["counters"].items()
                if k.startswith(("telemetry.", "events.", "broker.", "ota.", "commands.",
                                 "security.", "strips."))}
    return {
        "scenario": report["scenario"],
        "seed": report["seed"],
        "devices": report["devices"],
        "sim_seconds": report["sim_seconds"],
        "telemetry": report["telemetry"],
        "devices_by_state": report["devices_by_state"],
        "platform": report["platform"],
        "counters": counters,
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name, _ in bundled_scenarios()])
def test_bundled_scenario_matches_its_golden_summary(name: str, tmp_path: Path):
    report = run_scenario(load(name), tmp_path / name).report
    got = summary(report)
    path = GOLDEN / f"{name}.json"
    if os.environ.get("MEDTWIN_UPDATE_GOLDEN"):
        path.write_text(json.dumps(got, indent=2) + "\n")
    assert path.exists(), f"no golden summary for {name}: run with MEDTWIN_UPDATE_GOLDEN=1"
    assert got == json.loads(path.read_text())
    t = report["telemetry"]
    assert t["stored"] + t["rejected"] + t["lost"] + t["pending"] == t["published"]
    if report["mode"] == "live":  # the report says which broker carried how many messages
        [broker] = report["brokers"]
        assert broker["kind"] == "embedded" and broker["delivered"] >= t["stored"] > 0


def test_every_bundled_scenario_has_a_golden_summary():
    names = {name for name, _ in bundled_scenarios()}
    assert names == {p.stem for p in GOLDEN.glob("*.json")}
