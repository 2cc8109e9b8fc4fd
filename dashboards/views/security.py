"""Security: defences, attacks and their outcome, refusals and alerts over time, PSA scorecard."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboards import charts, data, ui
from twin.core.defences import DEFENCES
from twin.core.psa import PSA_GOALS

REJECT_GREENS = ("#2e9e44", "#63b967", "#1b6e2f", "#98d39a", "#0f4d20")
ALERT_AMBERS = ("#f0a30a", "#c77c02", "#ffd166", "#8a5a00", "#ffe29a")


def defences(report: dict[str, Any] | None, scenario: dict[str, Any] | None) -> None:
    """Each defence switch: green when on, red when the scenario turned it off."""
    switches = (report or {}).get("security", {}).get("defences")
    if switches is None:  # run in progress: the scenario says which are off
        off = {k for k, v in ((scenario or {}).get("defences") or {}).items() if not v}
        switches = {name: name not in off for name in DEFENCES}
    cards = []
    for name, on in switches.items():
        d = DEFENCES.get(name)
        goals = ", ".join(str(g) for g in d.psa_goals) if d else "?"
        colour = charts.DEFENDED if on else charts.COMPROMISED
        what = html.escape(d.summary if d else "")
        cards.append(f"<div style='border-left:6px solid {colour};padding:4px 10px;"
                     f"margin:4px 0'><b>{html.escape(name)}</b> · "
                     f"<span style='color:{colour}'>{'ON' if on else 'OFF'}</span>"
                     f" · PSA goal {goals}<br><small>{what}</small></div>")
    st.markdown("".join(cards), unsafe_allow_html=True)


def attacks(report: dict[str, Any] | None) -> None:
    """The run's attacks: attempts blocked (green) against succeeded (red), and detection."""
    if report is None:
        st.caption("Attack outcomes are scored in the report, written when the run ends.")
        return
    items = report.get("security", {}).get("attacks") or []
    if not items:
        st.success("No attack was injected in this run: this is a clean baseline. The attack "
                   "catalogue (cloning, rogue devices, replay, false data, floods, firmware) "
                   "fills this panel once attack scenarios exist.", icon=":material/verified:")
        return
    df = pd.DataFrame(items)
    fig = go.Figure()
    for outcome in ("blocked", "succeeded"):
        fig.add_bar(y=df["name"], x=df[outcome], name=outcome, orientation="h",
                    marker_color=charts.OUTCOME_COLOURS[outcome])
    fig.update_layout(barmode="stack")
    charts.show(charts.layout(fig, height=80 + 40 * len(df), x="attempts"), key="attacks")
    table = df.assign(psa_goals=df["psa_goals"].map(lambda g: ", ".join(map(str, g))))
    st.dataframe(table, hide_index=True, width="stretch")


def timeline(ctx: ui.Context) -> None:
    """Refusals (green: a defence worked) and alerts (amber) per minute, outages shaded."""
    span = data.sim_time(ctx.store, ctx.key)
    bin_s = 60.0 if span <= 6 * 3600 else 600.0
    rej = data.rejects_binned(ctx.store, ctx.key, bin_s)
    alr = data.alerts_binned(ctx.store, ctx.key, bin_s)
    fig = go.Figure()
    for i, (reason, part) in enumerate(rej.groupby("reason")):
        fig.add_bar(x=charts.minutes(part["t"]), y=part["n"], name=f"refused: {reason}",
                    marker_color=REJECT_GREENS[i % len(REJECT_GREENS)])
    for i, (rule, part) in enumerate(alr.groupby("rule")):
        fig.add_bar(x=charts.minutes(part["t"]), y=part["n"], name=f"clinical alert: {rule}",
                    marker_color=ALERT_AMBERS[i % len(ALERT_AMBERS)])
    sec = data.security_alerts(ctx.store, ctx.key)
    if sec is not None and len(sec):
        sec = sec.assign(t=(sec["t"] // bin_s) * bin_s).groupby(["t", "rule"], as_index=False)
        for rule, part in sec.size().groupby("rule"):
            fig.add_bar(x=charts.minutes(part["t"]), y=part["size"],
                        name=f"security alert: {rule}", marker_color=charts.COMPROMISED)
    outages = data.network_notices(ctx.store, ctx.key)
    charts.shade(fig, [(r.t / 60, (r.t + r.detail.get("duration_s", 0)) / 60, "outage")
                       for r in outages.itertuples() if r.name == "outage"], charts.UNKNOWN)
    fig.update_layout(barmode="stack", bargap=0.05)
    fig.update_xaxes(range=[0, max(span, bin_s) / 60])
    per = f"refusals and alerts per {bin_s / 60:.0f} min"
    charts.show(charts.layout(fig, height=300, x="simulated time (min)", y=per),
                key="timeline", toolbar=True)
    if rej.empty and alr.empty:
        st.caption("Nothing was refused and no alert was raised in this run.")


def monitor(sec: pd.DataFrame | None) -> None:
    """The security monitor's alerts by rule and subject (stores from before it: say so)."""
    st.subheader("Security monitor")
    if sec is None:
        ui.not_yet("Security monitor alerts", "This run's store was written before the "
                   "security monitor existed; newer runs list its alerts here.")
        return
    if sec.empty:
        st.caption("The security monitor raised no alert in this run.")
        return
    by = sec.groupby(["rule", "severity"], as_index=False).agg(
        alerts=("subject", "size"), subjects=("subject", "nunique"),
        psa_goals=("psa_goals", "first"))
    st.dataframe(by.sort_values("alerts", ascending=False), hide_index=True, width="stretch")


def scorecard(report: dict[str, Any] | None) -> None:
    """The ten PSA Certified goals as tiles, coloured by status, with their evidence."""
    card = (report or {}).get("security", {}).get("psa_scorecard") or {
        str(n): {"name": name, "status": "not assessed", "evidence": "run in progress"}
        for n, name in PSA_GOALS.items()}
    goals = sorted(card.items(), key=lambda kv: int(kv[0]))
    for start in range(0, len(goals), 5):
        cols = st.columns(5)
        for col, (num, goal) in zip(cols, goals[start:start + 5], strict=False):
            colour = charts.status_colour(str(goal.get("status", "")))
            col.markdown(
                f"<div style='border-top:6px solid {colour};background:rgba(0,0,0,0.03);"
                f"padding:6px 8px;min-height:140px;margin-bottom:8px'>"
                f"<b>{html.escape(num)}. {html.escape(str(goal.get('name')))}</b><br>"
                f"<span style='color:{colour};font-weight:600'>"
                f"{html.escape(str(goal.get('status')))}</span><br>"
                f"<small>{html.escape(str(goal.get('evidence')))}</small></div>",
                unsafe_allow_html=True)


def render() -> None:
    """The Security page."""
    ctx = ui.current_run("Security")
    fleet = data.fleet(ctx.store, ctx.key)
    counts = data.counts(ctx.store, ctx.key)
    items = (ctx.report or {}).get("security", {}).get("attacks") or []
    cols = st.columns(7)
    cols[6].metric("clinical alerts", f"{int(fleet['alerts'].sum()):,}")
    cols[0].metric("attacks", f"{len(items):,}")
    cols[1].metric("attempts succeeded", f"{sum(a.get('succeeded', 0) for a in items):,}")
    cols[2].metric("attempts blocked", f"{sum(a.get('blocked', 0) for a in items):,}")
    cols[3].metric("messages refused", f"{counts['rejects']:,}")
    sec = data.security_alerts(ctx.store, ctx.key)
    cols[4].metric("security alerts", "n/a" if sec is None else f"{len(sec):,}")
    cols[5].metric("quarantined", f"{int((fleet['state'] == 'quarantined').sum()):,}")

    left, right = st.columns([2, 1])
    with left:
        st.subheader("Attacks and their outcome")
        attacks(ctx.report)
    with right:
        st.subheader("Defences")
        defences(ctx.report, ctx.scenario)

    st.subheader("Timeline")
    timeline(ctx)

    monitor(sec)

    st.subheader("Quarantined and revoked devices")
    bad = fleet[fleet["state"].isin(("quarantined", "decommissioned"))]
    if bad.empty:
        st.caption("No device is quarantined or decommissioned. Certificate revocation is "
                   "recorded once the platform issue adds the CA and CRL.")
    else:
        st.dataframe(bad[["serial", "kind", "state", "alerts"]], hide_index=True,
                     width="stretch")

    st.subheader("PSA Certified scorecard")
    scorecard(ctx.report)

    st.subheader("Latest security-relevant records")
    log = data.security_log(ctx.store, ctx.key)
    if log.empty:
        st.caption("No refusals, alerts or unusual events or notices in this run.")
    else:
        st.dataframe(log.assign(t=(log["t"] / 60).round(2)).rename(columns={"t": "time (min)"}),
                     hide_index=True, height=260, width="stretch")


render()
