"""The medtwin dashboard: ``streamlit run dashboards/app.py -- [RUN_DIR]`` (or ``twin dashboard``).

Six pages under ``st.navigation``; each is a small script in ``views/`` (not ``pages/``:
Streamlit would list that folder a second time) that reads the open run through
:mod:`dashboards.ui` and :mod:`dashboards.data`. While the open run is still being written, a
fragment polls its files every few seconds and reruns the app when they change.
"""

from __future__ import annotations

import streamlit as st

from dashboards import ui
from dashboards.run import Run, RunProblem, open_run

st.set_page_config(page_title="medtwin", page_icon=":material/ecg_heart:", layout="wide")

PAGES = [
    st.Page("views/fleet.py", title="Fleet", icon=":material/devices_wearables:",
            url_path="fleet", default=True),
    st.Page("views/patient.py", title="Patient", icon=":material/ecg_heart:", url_path="patient"),
    st.Page("views/security.py", title="Security", icon=":material/shield:", url_path="security"),
    st.Page("views/scenarios.py", title="Scenarios", icon=":material/play_circle:",
            url_path="scenarios"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:",
            url_path="compare"),
    st.Page("views/root_of_trust.py", title="Root of trust", icon=":material/fingerprint:",
            url_path="root-of-trust"),
]

page = st.navigation(PAGES)
ui.sidebar_run_picker()


@st.fragment(run_every="3s")
def _follow(key: tuple[int, ...]) -> None:
    """Rerun the whole app when the open run's files change (a run in progress)."""
    try:
        now = open_run(st.session_state.get(ui.RUN_KEY)).key
    except RunProblem:
        return
    if now != key:
        st.rerun(scope="app")


try:
    _run: Run | None = open_run(st.session_state.get(ui.RUN_KEY))
except RunProblem:
    _run = None
if _run is not None and not _run.finished:
    _follow(_run.key)

page.run()
