"""Fixtures for the dashboard tests: small real runs (made by ``twin.runner``) in a runs folder.

The runs are made once per session (about a second): a 40-device baseline and a 40-device
outage run, under ``<tmp>/runs``, which the tests make the dashboard's runs root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboards.run import RUNS_ROOT_ENV
from twin.runner import load, run_scenario

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
    run_scenario(load("baseline").with_overrides(devices=40, duration=120), root / "baseline-small")
    run_scenario(load("outage").with_overrides(devices=40, duration=720), root / "outage-small")
    return root


@pytest.fixture
def baseline(runs_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The small baseline run, with the runs root set for the app."""
    monkeypatch.setenv(RUNS_ROOT_ENV, str(runs_root))
    return runs_root / "baseline-small"


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
