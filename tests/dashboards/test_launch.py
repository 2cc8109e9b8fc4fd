"""Launching from the Scenarios page gives the same report as ``twin run`` (wall clock aside)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import launch
from tests.dashboards.conftest import app_on, report_of
from twin.runner import load, run_scenario

WALL_CLOCK = ("wall_seconds", "realtime_factor")


def _without_wall_clock(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in WALL_CLOCK}


def _wait_for_report(out: Path, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (out / "report.json").is_file():
            try:
                return report_of(out)
            except json.JSONDecodeError:  # being written
                pass
        time.sleep(0.2)
    log = (out / launch.LOG).read_text() if (out / launch.LOG).exists() else "no log"
    raise AssertionError(f"no report in {out} after {timeout} s; log:\n{log}")


def _launch_from_page(root: Path, monkeypatch: pytest.MonkeyPatch, *, defences_off=()):
    monkeypatch.setenv("MEDTWIN_RUNS_ROOT", str(root))
    at = app_on(root / "nothing-open", "Scenarios")
    at.selectbox(key="launch_scenario").set_value("baseline").run()
    at.number_input(key="launch_devices_baseline").set_value(40)
    at.text_input(key="launch_duration_baseline").set_value("2m")
    at.number_input(key="launch_seed_baseline").set_value(7)
    for name in defences_off:
        at.checkbox(key=f"launch_def_baseline_{name}").uncheck()
    next(b for b in at.button if b.label == "Launch run").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    return at


def test_launched_run_matches_twin_run_of_the_same_scenario_and_seed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "runs"
    at = _launch_from_page(root, monkeypatch)
    launched = _wait_for_report(root / "baseline-1")
    direct = run_scenario(load("baseline").with_overrides(devices=40, duration=120, seed=7),
                          tmp_path / "direct").report
    assert _without_wall_clock(launched) == _without_wall_clock(direct)
    at.run()  # the progress fragment now offers to open the finished run
    assert any(b.label == "Open this run" for b in at.button)


def test_a_defence_switched_off_in_the_form_is_off_in_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "runs"
    _launch_from_page(root, monkeypatch, defences_off=("replay_window",))
    out = root / "baseline-1"
    report = _wait_for_report(out)
    defences = report["security"]["defences"]
    assert defences["replay_window"] is False
    assert all(on for name, on in defences.items() if name != "replay_window")
    written = yaml.safe_load((out / launch.SCENARIO_FILE).read_text())
    assert written["defences"]["replay_window"] is False and written["name"] == "baseline"


def test_next_out_numbers_runs_per_scenario(tmp_path: Path):
    assert launch.next_out(tmp_path, "baseline").name == "baseline-1"
    assert launch.next_out(tmp_path, "baseline").name == "baseline-2"
    assert launch.next_out(tmp_path, "outage").name == "outage-1"


def test_a_failing_run_reports_its_error(tmp_path: Path):
    item = launch.launch("baseline", tmp_path, duration="-5m", sim_seconds=60)
    item.process.wait(timeout=60)
    p = launch.progress(item)
    assert p.state == "failed" and "duration" in p.message


def test_bad_form_input_is_refused_before_launching(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MEDTWIN_RUNS_ROOT", str(tmp_path / "runs"))
    at = app_on(tmp_path / "nothing-open", "Scenarios")
    at.text_input(key="launch_duration_baseline").set_value("ten minutes")
    next(b for b in at.button if b.label == "Launch run").click().run()
    assert at.error and "Cannot launch" in at.error[0].value
    assert not (tmp_path / "runs").exists()
