"""What every page shares: which run is open, its header, and honest "not yet" notices.

The open run lives in ``st.session_state["run_dir"]``; the app sets it on first load from the
``?run=`` query parameter, the command line (``streamlit run app.py -- RUN_DIR``),
``$MEDTWIN_RUN_DIR``, or else the newest run under the runs root. A page asks for it with
:func:`current_run`, which shows a clear message and stops the page when the folder is not a
readable run: never a traceback.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboards import data
from dashboards.run import (
    RUN_DIR_ENV,
    Run,
    RunProblem,
    latest_run,
    list_runs,
    open_run,
    read_report,
    runs_root,
)

RUN_KEY = "run_dir"


@dataclass(frozen=True)
class Context:
    """The open run, its report (None while running) and its scenario (None if unrecorded)."""

    run: Run
    report: dict[str, Any] | None
    scenario: dict[str, Any] | None

    @property
    def store(self) -> str:
        """The store path as a string (the first half of every cache key)."""
        return str(self.run.store)

    @property
    def key(self) -> tuple[int, ...]:
        """The run's cache key (the second half)."""
        return self.run.key

    @property
    def duration(self) -> float | None:
        """The simulated duration the run was asked for, in seconds."""
        if self.report:
            return float(self.report["sim_seconds"])
        value = (self.scenario or {}).get("duration")
        return float(value) if isinstance(value, int | float) else None


def initial_run_dir() -> str:
    """Where the app opens: ?run=, argv after ``--``, $MEDTWIN_RUN_DIR, or the newest run."""
    if value := st.query_params.get("run"):
        return str(value)
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    if args:
        return args[0]
    if value := os.environ.get(RUN_DIR_ENV):
        return value
    newest = latest_run()
    return str(newest) if newest else ""


def _picked() -> None:
    st.session_state[RUN_KEY] = st.session_state["_run_select"]


def _typed() -> None:
    if typed := st.session_state["_run_typed"].strip():
        st.session_state[RUN_KEY] = typed


def sidebar_run_picker() -> None:
    """The sidebar's run chooser: the runs under the runs root, or any folder typed in."""
    if RUN_KEY not in st.session_state:
        st.session_state[RUN_KEY] = initial_run_dir()
    current = st.session_state[RUN_KEY]
    known = [str(p.resolve()) for p in list_runs()]
    options = known if current in known or not current else [current, *known]
    with st.sidebar:
        st.markdown("### Run")
        if options:
            st.session_state["_run_select"] = current if current in options else options[0]
            st.selectbox(f"runs in {runs_root()}/", options, key="_run_select",
                         on_change=_picked,
                         format_func=lambda p: os.path.basename(p.rstrip("/")) or p)
        st.text_input("or open a run folder", placeholder="path/to/run", key="_run_typed",
                      on_change=_typed)


def load_context() -> Context | RunProblem:
    """The open run as a :class:`Context`, or the problem that stops it being read."""
    try:
        run = open_run(st.session_state.get(RUN_KEY, ""))
        return Context(run, read_report(run), data.scenario(str(run.store), run.key))
    except RunProblem as exc:
        return exc
    except Exception as exc:
        return RunProblem(f"cannot read this run: {type(exc).__name__}: {exc}")


def current_run(title: str) -> Context:
    """Show the page title and run header; stop the page with a message if there is no run."""
    st.title(title)
    ctx = load_context()
    if isinstance(ctx, RunProblem):
        st.error(f"**This page has no run to show.** {ctx}", icon=":material/error:")
        st.caption("Choose a run in the sidebar, type a run folder's path there, or launch a "
                   "scenario from the Scenarios page.")
        st.stop()
    header(ctx)
    return ctx


def header(ctx: Context) -> None:
    """One line about the open run; a progress bar while it is still being written."""
    sc = ctx.scenario or {}
    name = (ctx.report or {}).get("scenario") or sc.get("name", "?")
    devices = (ctx.report or {}).get("devices") or sum((sc.get("fleet") or {}).get(
        "devices", {}).values())
    seed = (ctx.report or {}).get("seed", sc.get("seed", "?"))
    st.caption(f"Run **{ctx.run.name}**: scenario `{name}`, {devices:,} devices, seed {seed}, "
               f"folder `{ctx.run.path}`")
    if ctx.report is None:
        done = data.sim_time(ctx.store, ctx.key)
        total = ctx.duration or 0.0
        frac = min(done / total, 1.0) if total else 0.0
        st.progress(frac, text=f"Run in progress: {done / 60:,.1f} of {total / 60:,.1f} "
                    "simulated minutes stored; this page refreshes as it grows.")


def not_yet(what: str, arrives_with: str) -> None:
    """Say plainly that this run has no data of this kind yet, and what brings it."""
    st.info(f"**{what}: not in this run yet.** {arrives_with}", icon=":material/hourglass:")


def fmt_minutes(seconds: float) -> str:
    """Simulated seconds as a short label ("12.5 min", "2.0 h")."""
    return f"{seconds / 3600:,.1f} h" if seconds >= 5400 else f"{seconds / 60:,.1f} min"
