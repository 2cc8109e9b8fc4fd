"""Fixtures for the dashboard tests: small real runs (made by ``twin.runner``) in a runs folder.

The runs are made once per session (a few seconds): a 60-device, 15-minute baseline (with
clinical episodes and their strips) and a 40-device outage run, under ``<tmp>/runs``, which
the tests make the dashboard's runs root. Runs for particular cases (a faulty OTA campaign,
no episodes, an older store, security alerts) live beside it, outside the runs root.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboards.run import RUNS_ROOT_ENV
from twin.runner import load, run_scenario
from twin.scenario.schema import Scenario

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")
PAGES = {
    "Fleet": "views/fleet.py",
    "Patient": "views/patient.py",
    "Security": "views/security.py",
    "Scenarios": "views/scenarios.py",
    "Compare": "views/compare.py",
    "Root of trust": "views/root_of_trust.py",
}


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder holding ``baseline-small`` and ``outage-small`` (finished runs)."""
    root = tmp_path_factory.mktemp("dash") / "runs"
    # Sweat episodes are rare (0.02 per device-hour): raised so each kind has strips to plot.
    run_scenario(_variant("baseline", 900, 60, fleet={
        **load("baseline").fleet.model_dump(),
        "cohort": {**load("baseline").fleet.cohort.model_dump(),
                   "episode_rates": {"dehydration": 40.0}}}), root / "baseline-small")
    run_scenario(load("outage").with_overrides(devices=40, duration=720), root / "outage-small")
    return root


@pytest.fixture
def baseline(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The small baseline run, with the runs root set for the app."""
    monkeypatch.setenv(RUNS_ROOT_ENV, str(runs_root))
    return runs_root / "baseline-small"


def _variant(name: str, duration: float, devices: int, **changes: Any) -> Scenario:
    """A bundled scenario, shrunk, with nested fields changed (``{"ota": {"faulty": True}}``)."""
    data = load(name).model_dump()
    for section, values in changes.items():
        data[section] = {**data[section], **values} if isinstance(values, dict) else values
    return Scenario.model_validate(data).with_overrides(devices=devices, duration=duration)


@pytest.fixture(scope="session")
def faulty_ota(runs_root: Path) -> Path:
    """A 60-device OTA run whose release fails its self test: every campaign pauses."""
    out = runs_root.parent / "extra" / "ota-faulty"
    run_scenario(_variant("ota", 900, 60, ota={"at": 300, "faulty": True}), out)
    return out


@pytest.fixture(scope="session")
def good_ota(runs_root: Path) -> Path:
    """A 40-device OTA run whose release installs everywhere: every campaign completes."""
    out = runs_root.parent / "extra" / "ota-good"
    run_scenario(_variant("ota", 600, 40, ota={"at": 120}), out)
    return out


@pytest.fixture(scope="session")
def no_episodes(runs_root: Path) -> Path:
    """A 30-device baseline with clinical episodes switched off (``episode_rate: 0``)."""
    data = _variant("baseline", 300, 30).model_dump()
    data["fleet"]["cohort"]["episode_rate"] = 0.0
    out = runs_root.parent / "extra" / "no-episodes"
    run_scenario(Scenario.model_validate(data), out)
    return out


def copy_run(run: Path, to: Path) -> Path:
    """A copy of a finished run (store checkpointed into one file, and its report)."""
    to.mkdir(parents=True)
    shutil.copy(run / "store.sqlite", to / "store.sqlite")
    shutil.copy(run / "report.json", to / "report.json")
    return to


@pytest.fixture(scope="session")
def old_store(runs_root: Path) -> Path:
    """The baseline as a schema-1 store would hold it: no episodes, strips, security alerts or
    device strips tables, and a report from before ``platform``."""
    out = copy_run(runs_root / "baseline-small", runs_root.parent / "extra" / "old-store")
    with closing(sqlite3.connect(out / "store.sqlite", isolation_level=None)) as conn:
        for table in ("episodes", "strips", "security_alerts", "device_strips"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute("PRAGMA user_version=1")
    report = report_of(out)
    report.pop("platform")
    report["clinical"].pop("episodes_by_kind")
    (out / "report.json").write_text(json.dumps(report))
    return out


@pytest.fixture(scope="session")
def schema3_store(runs_root: Path) -> Path:
    """The baseline as a schema-3 store holds it: everything but ``device_strips`` (ECG
    patches sent no strips before schema 4), and a report without the ECG detection."""
    out = copy_run(runs_root / "baseline-small", runs_root.parent / "extra" / "schema-3")
    with closing(sqlite3.connect(out / "store.sqlite", isolation_level=None)) as conn:
        conn.execute("DROP TABLE device_strips")
        conn.execute("PRAGMA user_version=3")
    report = report_of(out)
    report["clinical"].pop("ecg")
    (out / "report.json").write_text(json.dumps(report))
    return out


@pytest.fixture(scope="session")
def sent_verdicts(runs_root: Path) -> Path:
    """The baseline with every verdict the cloud can give on a device's strip: the cloud
    confirms all of the small run's strips, so on the patch that sent most, its second strip
    is rewritten as not confirmed and its third as not analysed (as cloud.store records
    them: confirmed 0 or NULL, no findings)."""
    out = copy_run(runs_root / "baseline-small", runs_root.parent / "extra" / "sent-verdicts")
    with closing(sqlite3.connect(out / "store.sqlite", isolation_level=None)) as conn:
        ids = [r[0] for r in conn.execute(
            "SELECT rowid FROM device_strips WHERE device = (SELECT device FROM device_strips"
            " GROUP BY 1 ORDER BY COUNT(*) DESC, 1 LIMIT 1) ORDER BY t, seq")]
        assert len(ids) >= 3, "the small baseline's busiest ECG patch sent fewer than 3 strips"
        conn.execute("UPDATE device_strips SET confirmed=0, findings='' WHERE rowid=?", (ids[1],))
        conn.execute("UPDATE device_strips SET confirmed=NULL, findings='' WHERE rowid=?",
                     (ids[2],))
    return out


# No bundled scenario injects an attack yet, so the monitor's alerts are written in by hand:
# (t, subject, rule, severity, count, psa_goals), as cloud.store records SecurityAlert.
SECURITY_ALERTS = [
    (65.0, "dev-a", "topic_abuse", "high", 3, "1,8"),
    (70.0, "dev-b", "topic_abuse", "high", 4, "1,8"),
    (130.0, "dev-a", "topic_abuse", "high", 3, "1,8"),
    (200.0, "dev-c", "impersonation", "critical", 1, "1"),
    (610.0, "unknown", "malformed_traffic", "medium", 5, "8"),
]


@pytest.fixture(scope="session")
def monitored(runs_root: Path) -> Path:
    """The baseline with :data:`SECURITY_ALERTS` in its store and report."""
    out = copy_run(runs_root / "baseline-small", runs_root.parent / "extra" / "monitored")
    with closing(sqlite3.connect(out / "store.sqlite", isolation_level=None)) as conn:
        conn.executemany("INSERT INTO security_alerts VALUES (?, ?, ?, ?, ?, ?)",
                         SECURITY_ALERTS)
    report = report_of(out)
    rules = [row[2] for row in SECURITY_ALERTS]
    report["security"]["alerts"] = {r: rules.count(r) for r in sorted(set(rules))}
    report["counters"]["commands.quarantine"] = 2
    (out / "report.json").write_text(json.dumps(report))
    return out


def report_of(run: Path) -> dict[str, Any]:
    """A run's report.json."""
    return json.loads((run / "report.json").read_text())


def app_on(run: Path | str, page: str | None = None) -> AppTest:
    """The app opened on ``run``, switched to ``page`` (a key of PAGES) and rendered."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["run_dir"] = str(run)
    at.run()
    if page is not None and page != "Fleet":
        at.switch_page(PAGES[page]).run()
    return at


def metrics(at: AppTest) -> dict[str, str]:
    """The page's st.metric values by label."""
    return {m.label: m.value for m in at.metric}
