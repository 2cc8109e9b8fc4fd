"""Security: defences, attacks and their outcome, refusals and alerts over time, the security
monitor's alerts, firmware (OTA) campaigns, and the PSA scorecard."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
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
    sec = data.security_alerts_binned(ctx.store, ctx.key, bin_s)
    if sec is not None and len(sec):
        for (rule, severity), part in sec.groupby(["rule", "severity"]):
            fig.add_bar(x=charts.minutes(part["t"]), y=part["alerts"],
                        name=f"security alert: {rule}",
                        marker_color=charts.SEVERITY_COLOURS.get(severity, charts.COMPROMISED))
    outages = data.network_notices(ctx.store, ctx.key)
    charts.shade(fig, [(r.t / 60, (r.t + r.detail.get("duration_s", 0)) / 60, "outage")
                       for r in outages.itertuples() if r.name == "outage"], charts.UNKNOWN)
    fig.update_layout(barmode="stack", bargap=0.05)
    fig.update_xaxes(range=[0, max(span, bin_s) / 60])
    per = f"refusals and alerts per {bin_s / 60:.0f} min"
    charts.show(charts.layout(fig, height=300, x="simulated time (min)", y=per),
                key="timeline", toolbar=True)
    if rej.empty and alr.empty and (sec is None or sec.empty):
        st.caption("Nothing was refused and no alert was raised in this run.")


def monitor_timeline(binned: pd.DataFrame, bin_s: float, span: float) -> go.Figure:
    """The monitor's alerts over time: one row per rule, a dot per bin sized by the alerts in
    it and coloured by severity."""
    fig = go.Figure()
    size = 8 + 22 * np.sqrt(binned["alerts"] / max(int(binned["alerts"].max()), 1))
    for severity, colour in charts.SEVERITY_COLOURS.items():
        part = binned[binned["severity"] == severity]
        if part.empty:
            continue
        fig.add_scatter(
            x=charts.minutes(part["t"] + bin_s / 2), y=part["rule"], mode="markers",
            name=severity, marker={"color": colour, "size": size[part.index],
                                   "line": {"width": 1, "color": "white"}},
            customdata=part[["alerts", "subjects", "signals"]].to_numpy(),
            hovertemplate="%{y}: %{customdata[0]} alerts on %{customdata[1]} subjects"
                          " (%{customdata[2]} refusals)<extra>" + severity + "</extra>")
    rules = sorted(set(binned["rule"]))
    fig.update_yaxes(categoryorder="array", categoryarray=rules, autorange="reversed")
    fig.update_xaxes(range=[0, max(span, bin_s) / 60])
    per = f"{bin_s / 60:.0f} min"
    return charts.layout(fig, height=110 + 40 * len(rules),
                         x=f"simulated time (min); one dot per {per} with alerts", y="rule")


def monitor(ctx: ui.Context, by_rule: pd.DataFrame | None) -> None:
    """The security monitor's alerts over time and by rule (stores from before it: say so)."""
    st.subheader("Security monitor")
    if by_rule is None:
        ui.not_yet("Security monitor alerts", "This run's store was written before the "
                   "security monitor existed; newer runs list its alerts here.")
        return
    if by_rule.empty:
        st.caption("The security monitor raised no alert in this run.")
        return
    span = data.sim_time(ctx.store, ctx.key)
    bin_s = 60.0 if span <= 6 * 3600 else 600.0
    binned = data.security_alerts_binned(ctx.store, ctx.key, bin_s)
    if binned is not None:
        charts.show(monitor_timeline(binned, bin_s, span), key="monitor", toolbar=True)
    table = by_rule.assign(first_t=(by_rule["first_t"] / 60).round(2),
                           last_t=(by_rule["last_t"] / 60).round(2)).rename(
        columns={"first_t": "first (min)", "last_t": "last (min)"})
    st.dataframe(table, hide_index=True, width="stretch")


OTA_SEGMENTS = (("installed", charts.DEFENDED), ("pending", charts.DEGRADED),
                ("reverted", charts.COMPROMISED), ("rejected", "#7f0000"),
                ("not offered", charts.UNKNOWN))


def ota_figure(campaigns: pd.DataFrame) -> go.Figure:
    """Each campaign's devices by outcome (stacked to its targets), its state beside it."""
    df = campaigns.assign(**{"not offered": (campaigns["targets"] - campaigns["offered"])
                             .clip(lower=0)})
    labels = [f"{c} (sequence {q})" for c, q in zip(df["component"], df["sequence"],
                                                    strict=True)]
    fig = go.Figure()
    for name, colour in OTA_SEGMENTS:
        fig.add_bar(y=labels, x=df[name], name=name, orientation="h", marker_color=colour,
                    text=[f"{v:,}" if v else "" for v in df[name]], textposition="inside")
    for label, targets, state in zip(labels, df["targets"], df["state"], strict=True):
        fig.add_annotation(x=targets, y=label, text=f"<b>{html.escape(str(state))}</b>",
                           showarrow=False, xanchor="left", xshift=8,
                           font={"color": charts.CAMPAIGN_COLOURS.get(state, charts.UNKNOWN),
                                 "size": 13})
    fig.update_layout(barmode="stack")
    fig.update_xaxes(range=[0, max(int(df["targets"].max()), 1) * 1.18])
    fig.update_yaxes(autorange="reversed")
    return charts.layout(fig, height=90 + 44 * len(df), x="devices targeted by the campaign")


def ota(report: dict[str, Any] | None) -> None:
    """Firmware campaigns from the report: progress per component, state coloured."""
    st.subheader("Firmware update campaigns (OTA)")
    if report is None:
        st.caption("Campaign progress is summarised in the report, written when the run ends.")
        return
    platform = report.get("platform")
    if platform is None or "ota" not in platform:
        ui.not_yet("Firmware update campaigns", "This run's report was written before OTA "
                   "campaigns were recorded; newer runs show their rollout here.")
        return
    if not platform["ota"]:
        st.caption("No firmware campaign ran in this run; the `ota` scenario rolls one out.")
        return
    campaigns = pd.DataFrame(platform["ota"])
    charts.show(ota_figure(campaigns), key="ota")
    counters_row(report, "ota.")
    paused = campaigns[campaigns["state"] == "paused"]
    if len(paused):
        st.warning(f"Paused: {', '.join(paused['component'])}. Canary devices reverted or "
                   "rejected the release, so the staged rollout stopped it before it reached "
                   "the rest of the fleet.", icon=":material/pause_circle:")


def revocations(report: dict[str, Any] | None) -> None:
    """Revocations through the platform (report ``security.revocations``), if the run had any."""
    revoked = (report or {}).get("security", {}).get("revocations") or {}
    if not revoked.get("devices"):
        st.caption("No certificate was revoked in this run; the `revocation` scenario "
                   "revokes devices through the platform.")
        return
    cols = st.columns(4)
    cols[0].metric("devices revoked", f"{revoked['devices']:,}")
    cols[1].metric("CRL number", f"{revoked['crl_number']}")
    cols[2].metric("sessions dropped", f"{revoked['sessions_dropped']:,}")
    cols[3].metric("reconnects refused", f"{revoked['connects_refused']:,}")


def counters_row(report: dict[str, Any] | None, prefix: str) -> None:
    """The report's counters named ``prefix...`` (``commands.``, ``ota.``), if any."""
    c = (report or {}).get("counters") or {}
    shown = {k: v for k, v in c.items() if k.startswith(prefix)}
    if not shown:
        return
    cols = st.columns(min(len(shown), 6))
    for i, (name, value) in enumerate(sorted(shown.items())):
        cols[i % len(cols)].metric(name, f"{int(value):,}")


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


def headline(ctx: ui.Context, fleet: pd.DataFrame, sec: pd.DataFrame | None) -> None:
    """The page's counts: attacks and their outcome, refusals, alerts, quarantines."""
    counts = data.counts(ctx.store, ctx.key)
    items = (ctx.report or {}).get("security", {}).get("attacks") or []
    cols = st.columns(7)
    cols[0].metric("attacks", f"{len(items):,}")
    cols[1].metric("attempts succeeded", f"{sum(a.get('succeeded', 0) for a in items):,}")
    cols[2].metric("attempts blocked", f"{sum(a.get('blocked', 0) for a in items):,}")
    cols[3].metric("messages refused", f"{counts['rejects']:,}")
    cols[4].metric("security alerts", "n/a" if sec is None else f"{int(sec['alerts'].sum()):,}")
    cols[5].metric("quarantined", f"{int((fleet['state'] == 'quarantined').sum()):,}")
    cols[6].metric("clinical alerts", f"{int(fleet['alerts'].sum()):,}")


def render() -> None:
    """The Security page."""
    ctx = ui.current_run("Security")
    fleet = data.fleet(ctx.store, ctx.key)
    sec = data.security_alerts_by_rule(ctx.store, ctx.key)
    headline(ctx, fleet, sec)

    left, right = st.columns([2, 1])
    with left:
        st.subheader("Attacks and their outcome")
        attacks(ctx.report)
    with right:
        st.subheader("Defences")
        defences(ctx.report, ctx.scenario)

    st.subheader("Timeline")
    timeline(ctx)

    monitor(ctx, sec)
    ota(ctx.report)

    st.subheader("Quarantined and revoked devices")
    counters_row(ctx.report, "commands.")
    revocations(ctx.report)
    bad = fleet[fleet["state"].isin(("quarantined", "decommissioned"))]
    if bad.empty:
        st.caption("No device is quarantined or decommissioned.")
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
