"""Compare: two finished runs side by side, e.g. one scenario with a defence on and off."""

from __future__ import annotations

import os
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from dashboards import charts, ui
from dashboards.run import Run, RunProblem, list_runs, open_run, read_report

RUN_COLOURS = ("#1f77b4", "#9467bd")
TELEMETRY = ("published", "stored", "rejected", "lost", "duplicates", "gaps")


def load(path: str) -> tuple[Run, dict[str, Any]] | str:
    """A finished run and its report, or why it cannot be compared."""
    try:
        run = open_run(path)
        report = read_report(run)
    except RunProblem as exc:
        return str(exc)
    if report is None:
        return f"{run.path}: still running (no report.json yet); compare it when it finishes"
    return run, report


def pick(options: list[str], current: str) -> tuple[str, str]:
    """Two run pickers; A defaults to the open run, B to the newest other run."""
    label = {p: os.path.basename(p.rstrip("/")) for p in options}
    a_default = options.index(current) if current in options else 0
    left, right = st.columns(2)
    a = left.selectbox("run A", options, index=a_default, key="cmp_a",
                       format_func=lambda p: label[p])
    rest = [p for p in options if p != a] or options
    b = right.selectbox("run B", rest, index=0, key="cmp_b", format_func=lambda p: label[p])
    return str(a), str(b)


def defence_line(report: dict[str, Any]) -> str:
    """The run's defence switches, green when on and red when off."""
    parts = []
    for name, on in report.get("security", {}).get("defences", {}).items():
        colour = charts.DEFENDED if on else charts.COMPROMISED
        parts.append(f"<span style='color:{colour}'>■ {name} {'on' if on else 'OFF'}</span>")
    return " &nbsp; ".join(parts) or "no defence switches recorded"


def grouped(names: list[str], runs: list[tuple[str, list[float]]], *, x_title: str,
            colours: tuple[str, ...] = RUN_COLOURS) -> go.Figure:
    """Grouped horizontal bars: one bar per run for each name."""
    fig = go.Figure()
    for (label, values), colour in zip(runs, colours, strict=False):
        fig.add_bar(y=names, x=values, name=label, orientation="h", marker_color=colour,
                    text=[f"{v:,.0f}" for v in values], textposition="auto")
    fig.update_layout(barmode="group")
    fig.update_yaxes(autorange="reversed")
    return charts.layout(fig, height=80 + 50 * len(names), x=x_title)


def attacker(a: dict[str, Any], b: dict[str, Any], labels: tuple[str, str]) -> None:
    """What the attacker achieved in each run: attempts succeeded (red) and blocked (green)."""
    rows = []
    for label, report in zip(labels, (a, b), strict=True):
        for item in report["security"].get("attacks") or []:
            rows.append((f"{item['name']} ({label})", item.get("succeeded", 0),
                         item.get("blocked", 0), item.get("median_time_to_detect_s")))
    if not rows:
        st.info("Neither run injects an attack, so the attacker achieved nothing in either. "
                "Attack scenarios (with their defence switched on and off) fill this panel.",
                icon=":material/info:")
        return
    fig = go.Figure()
    names = [r[0] for r in rows]
    fig.add_bar(y=names, x=[r[1] for r in rows], name="succeeded", orientation="h",
                marker_color=charts.COMPROMISED)
    fig.add_bar(y=names, x=[r[2] for r in rows], name="blocked", orientation="h",
                marker_color=charts.DEFENDED)
    fig.update_layout(barmode="stack")
    charts.show(charts.layout(fig, height=80 + 40 * len(rows), x="attack attempts"),
                    key="cmp_attacks")
    ttd = [(n, t) for n, _, _, t in rows if t is not None]
    if ttd:
        charts.show(grouped([n for n, _ in ttd], [("median", [t for _, t in ttd])],
                                x_title="median time to detect (s)"), key="cmp_ttd")


def render() -> None:
    """The Compare page."""
    st.title("Compare runs")
    options = [str(p.resolve()) for p in list_runs()]
    current = st.session_state.get(ui.RUN_KEY, "")
    if current and current not in options and os.path.isdir(current):
        options.insert(0, str(os.path.realpath(current)))
    if len(options) < 2:
        st.warning("Comparing needs two runs. Launch a scenario twice from the Scenarios page "
                   "(for example with a defence switched off the second time), or "
                   "`twin run` into the runs folder.")
        st.stop()
    path_a, path_b = pick(options, current)
    first, second = load(path_a), load(path_b)
    for problem in (x for x in (first, second) if isinstance(x, str)):
        st.error(problem)
    if isinstance(first, str) or isinstance(second, str):
        st.stop()
        return
    (run_a, a), (run_b, b) = first, second
    labels = (f"A: {run_a.name}", f"B: {run_b.name}")
    cols = st.columns(2)
    for col, label, report in zip(cols, labels, (a, b), strict=True):
        col.markdown(f"**{label}** · `{report['scenario']}` · {report['devices']:,} devices · "
                     f"{ui.fmt_minutes(report['sim_seconds'])} · seed {report['seed']}")
        col.markdown(defence_line(report), unsafe_allow_html=True)
    if a["devices"] != b["devices"] or a["sim_seconds"] != b["sim_seconds"]:
        st.caption("The runs differ in fleet size or duration: compare rates, not totals.")

    st.subheader("What the attacker achieved")
    attacker(a, b, ("A", "B"))

    st.subheader("Telemetry")
    charts.show(grouped(list(TELEMETRY), [
        (labels[0], [a["telemetry"].get(k, 0) for k in TELEMETRY]),
        (labels[1], [b["telemetry"].get(k, 0) for k in TELEMETRY])],
        x_title="telemetry windows"), key="cmp_telemetry")

    st.subheader("Clinical impact")
    rules = sorted(set(a["clinical"].get("alerts", {})) | set(b["clinical"].get("alerts", {})))
    if rules:
        charts.show(grouped(rules, [
            (labels[0], [a["clinical"]["alerts"].get(r, 0) for r in rules]),
            (labels[1], [b["clinical"]["alerts"].get(r, 0) for r in rules])],
            x_title="alerts raised"), key="cmp_alerts")
    else:
        st.caption("No clinical alert was raised in either run.")
    if a["clinical"].get("episodes") is None and b["clinical"].get("episodes") is None:
        ui.not_yet("Episodes detected, sensitivity, PPV and detection latency",
                   "These come with the physiology and TinyML issues; the report already "
                   "has their keys, so this panel fills without a redesign.")


render()
