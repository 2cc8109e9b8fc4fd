"""Every page renders on a small run without exceptions, and its key figures match report.json."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.dashboards.conftest import PAGES, app_on, metrics, report_of


def _n(value: str) -> int:
    return int(value.replace(",", ""))


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_renders_without_exceptions(page: str, baseline: Path):
    at = app_on(baseline, page)
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value.startswith(page.split()[0]) or page == "Compare"


def test_fleet_figures_match_the_report(baseline: Path):
    report = report_of(baseline)
    m = metrics(app_on(baseline, "Fleet"))
    assert _n(m["devices"]) == report["devices"]
    assert _n(m["windows stored"]) == report["telemetry"]["stored"]
    assert _n(m["rejected"]) == report["telemetry"]["rejected"]
    assert _n(m["lost"]) == report["telemetry"]["lost"]
    assert _n(m["online"]) == report["devices_by_state"].get("streaming", 0)


def test_fleet_draws_grid_accounting_states_traffic_battery(baseline: Path):
    at = app_on(baseline, "Fleet")
    assert len(at.get("plotly_chart")) >= 5
    assert any("Firmware versions" in i.value for i in at.info)  # honest "not yet"


def test_security_figures_match_the_report(baseline: Path):
    report = report_of(baseline)
    m = metrics(app_on(baseline, "Security"))
    assert _n(m["attacks"]) == len(report["security"]["attacks"])
    assert _n(m["messages refused"]) == report["telemetry"]["rejected"]
    assert _n(m["clinical alerts"]) == sum(report["clinical"]["alerts"].values())
    if "alerts" in report["security"]:  # the security monitor's, by rule
        assert _n(m["security alerts"]) == sum(report["security"]["alerts"].values())
    at = app_on(baseline, "Security")
    text = " ".join(md.value for md in at.markdown)
    for goal in report["security"]["psa_scorecard"].values():
        assert goal["name"] in text
    for name in report["security"]["defences"]:
        assert name in text


def test_patient_page_plots_a_device_of_each_kind(baseline: Path):
    at = app_on(baseline, "Patient")
    for kind in ("ecg_patch", "bp_cuff", "sweat_patch"):
        at.radio[0].set_value(kind).run()
        assert not at.exception
        assert len(at.get("plotly_chart")) >= 2  # vitals and battery
        assert metrics(at)["state"] == "streaming"


def test_root_of_trust_counts_identities_and_says_puf_is_not_here_yet(baseline: Path):
    report = report_of(baseline)
    at = app_on(baseline, "Root of trust")
    assert _n(metrics(at)["distinct UEIDs"]) == report["devices"]
    assert any("PUF" in i.value and "not in this run yet" in i.value for i in at.info)


def test_scenarios_page_shows_every_bundled_scenario_and_its_teaching(baseline: Path):
    from twin.scenario import bundled_scenarios

    at = app_on(baseline, "Scenarios")
    labels = " ".join(e.label for e in at.expander)
    text = " ".join(md.value for md in at.markdown)
    for name, _ in bundled_scenarios():
        assert name in labels
    assert "Teaching." in text


def test_compare_puts_two_runs_side_by_side(baseline: Path, runs_root: Path):
    at = app_on(baseline, "Compare")
    assert not at.exception
    text = " ".join(md.value for md in at.markdown)
    assert "baseline" in text and "outage" in text
    assert len(at.get("plotly_chart")) >= 1


def test_outage_run_shows_devices_going_offline(runs_root: Path, monkeypatch):
    monkeypatch.setenv("MEDTWIN_RUNS_ROOT", str(runs_root))
    at = app_on(runs_root / "outage-small", "Fleet")
    assert not at.exception
    keys = {c.proto.id for c in at.get("plotly_chart")}
    assert len(keys) >= 6  # the offline-devices step chart is drawn only if some went offline


def test_a_run_in_progress_shows_its_progress(baseline: Path, tmp_path: Path):
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(baseline / "store.sqlite", live / "store.sqlite")  # no report.json yet
    for page in ("Fleet", "Security", "Patient"):
        at = app_on(live, page)
        assert not at.exception, [e.value for e in at.exception]
        bars = at.get("progress")
        assert bars and "Run in progress" in bars[0].proto.text
