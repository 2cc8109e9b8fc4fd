"""The Security page's monitor alerts (from the store's ``security_alerts``), OTA campaigns
(from report.json ``platform.ota``) and revocations (``security.revocations``), checked
against both; older runs say what is missing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dashboards import charts
from tests.dashboards.conftest import SECURITY_ALERTS, app_on, metrics, report_of
from tests.dashboards.test_clinical import figure, values
from twin.runner import load, run_scenario
from twin.scenario import Scenario


def test_security_alerts_match_the_store_by_rule_and_severity(monitored: Path):
    report = report_of(monitored)
    at = app_on(monitored, "Security")
    assert not at.exception
    m = metrics(at)
    assert int(m["security alerts"]) == len(SECURITY_ALERTS) == sum(
        report["security"]["alerts"].values())
    fig = figure(at, "monitor")
    shown: Counter[tuple[str, str]] = Counter()
    for trace in fig["data"]:
        assert trace["marker"]["color"] == charts.SEVERITY_COLOURS[trace["name"]]
        for rule, row in zip(values(trace["y"]), values(trace["customdata"]), strict=True):
            shown[(rule, trace["name"])] += row[0]
    assert shown == Counter((rule, sev) for _, _, rule, sev, _, _ in SECURITY_ALERTS)
    table = next(d.value for d in at.dataframe if "rule" in d.value.columns)
    assert dict(zip(table["rule"], table["alerts"], strict=True)) == report["security"]["alerts"]
    assert m["commands.quarantine"] == "2"  # report counters


def test_security_alerts_also_stack_on_the_timeline(monitored: Path):
    fig = figure(app_on(monitored, "Security"), "timeline")
    stacked = {t["name"]: sum(values(t["y"])) for t in fig["data"] if "security alert" in t["name"]}
    assert stacked == {f"security alert: {r}": n
                       for r, n in report_of(monitored)["security"]["alerts"].items()}


def _campaigns(at) -> tuple[dict[str, dict[str, int]], dict[str, dict]]:
    fig = figure(at, "ota")
    bars = {t["name"]: dict(zip(values(t["y"]), values(t["x"]), strict=True))
            for t in fig["data"]}
    states = {a["y"]: a for a in fig["layout"]["annotations"]}
    return bars, states


def test_a_paused_campaign_is_red_with_its_reverted_canaries(faulty_ota: Path):
    ota = report_of(faulty_ota)["platform"]["ota"]
    at = app_on(faulty_ota, "Security")
    assert not at.exception
    bars, states = _campaigns(at)
    for c in ota:
        label = f"{c['component']} (sequence {c['sequence']})"
        for outcome in ("installed", "reverted", "rejected", "pending"):
            assert bars[outcome][label] == c[outcome]
        assert bars["not offered"][label] == c["targets"] - c["offered"]
        assert c["state"] in states[label]["text"]
        assert states[label]["font"]["color"] == charts.CAMPAIGN_COLOURS[c["state"]]
    assert {c["state"] for c in ota} == {"paused"}
    assert all(states[k]["font"]["color"] == charts.COMPROMISED for k in states)
    assert "Paused" in at.warning[0].value


def test_a_completed_campaign_is_green_and_fully_installed(good_ota: Path):
    ota = report_of(good_ota)["platform"]["ota"]
    bars, states = _campaigns(app_on(good_ota, "Security"))
    assert ota and {c["state"] for c in ota} == {"completed"}
    for c in ota:
        label = f"{c['component']} (sequence {c['sequence']})"
        assert bars["installed"][label] == c["targets"]
        assert states[label]["font"]["color"] == charts.DEFENDED


def test_a_run_without_campaign_or_monitor_alerts_says_so(baseline: Path):
    at = app_on(baseline, "Security")
    captions = " ".join(c.value for c in at.caption)
    assert "No firmware campaign ran" in captions
    assert "raised no alert" in captions
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith(("-ota", "-monitor"))]


def test_an_older_run_says_monitor_and_campaigns_are_not_there(old_store: Path):
    at = app_on(old_store, "Security")
    assert not at.exception
    assert metrics(at)["security alerts"] == "n/a"
    notes = " ".join(i.value for i in at.info)
    assert "Security monitor alerts: not in this run yet" in notes
    assert "Firmware update campaigns: not in this run yet" in notes


@pytest.fixture(scope="module")
def revoked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("revoked") / "run"
    data = load("revocation").model_dump()
    data["revocations"] = [{"at": 120.0, "devices": [1, 7]}]
    data["fleet"]["devices"] = {"ecg_patch": 4, "bp_cuff": 4, "sweat_patch": 4}
    run_scenario(Scenario.model_validate({**data, "duration": 600.0}), out)
    return out


def test_revocations_show_what_the_platform_and_broker_did(revoked: Path):
    r = report_of(revoked)["security"]["revocations"]
    at = app_on(revoked, "Security")
    assert not at.exception
    m = metrics(at)
    assert (m["devices revoked"], m["CRL number"]) == ("2", "1")
    assert m["sessions dropped"] == f"{r['sessions_dropped']:,}"
    assert m["reconnects refused"] == f"{r['connects_refused']:,}" != "0"


def test_a_run_without_revocations_says_so(baseline: Path):
    captions = " ".join(c.value for c in app_on(baseline, "Security").caption)
    assert "No certificate was revoked in this run" in captions
