"""Fleet: what the wearables are doing, and whether every window they sent is accounted for."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboards import charts, data, ui

# Health categories of the device grid, worst last; the colour says how worried to be.
HEALTH = (
    ("streaming", charts.DEFENDED),
    ("connected, not streaming", "#8fd19e"),
    ("not started", "#c7c7c7"),
    ("offline (reconnecting)", charts.DEGRADED),
    ("alert open", "#ff7f0e"),
    ("battery < 20 %", "#8c564b"),
    ("quarantined or revoked", charts.COMPROMISED),
)


def health(df: pd.DataFrame) -> pd.Series:
    """Each device's health category (an index into :data:`HEALTH`)."""
    code = np.full(len(df), 2)
    code[df["state"].isin(("connected", "updating")).to_numpy()] = 1
    code[(df["state"] == "streaming").to_numpy()] = 0
    code[(df["state"] == "reconnecting").to_numpy()] = 3
    code[(df["open_alerts"] > 0).to_numpy()] = 4
    code[(df["battery"].fillna(1.0) < 0.2).to_numpy()] = 5
    code[df["state"].isin(("quarantined", "decommissioned")).to_numpy()] = 6
    return pd.Series(code, index=df.index)


def grid(df: pd.DataFrame) -> go.Figure:
    """A map-like grid, one square per device (kinds in blocks), coloured by health."""
    df = df.sort_values(["kind", "serial"]).reset_index(drop=True)
    n = len(df)
    cols = max(1, math.ceil(math.sqrt(n * 3)))
    rows = math.ceil(n / cols)
    code = np.full(rows * cols, np.nan)
    code[:n] = health(df).to_numpy()
    text = np.full(rows * cols, "", dtype=object)
    battery = (df["battery"].fillna(0) * 100).round().astype(int).astype(str)
    text[:n] = (df["serial"] + " · " + df["kind"].map(charts.KIND_LABELS).fillna(df["kind"])
                + "<br>" + df["state"] + " · battery " + battery + " %"
                + " · alerts " + df["alerts"].astype(str)).to_numpy()
    k = len(HEALTH)
    scale = []
    for i, (_, colour) in enumerate(HEALTH):
        scale += [[i / k, colour], [(i + 1) / k, colour]]
    fig = go.Figure(go.Heatmap(
        z=code.reshape(rows, cols), text=text.reshape(rows, cols), hoverinfo="text",
        colorscale=scale, zmin=-0.5, zmax=k - 0.5, xgap=1, ygap=1, showscale=False,
    ))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    cell = min(900 / cols, 30)  # px per square at the page's usual width
    return charts.layout(fig, height=int(max(120, min(560, 40 + rows * cell))), legend=False)


def legend(df: pd.DataFrame) -> None:
    """Counts per health category, in the grid's colours."""
    counts = health(df).value_counts()
    parts = [f"<span style='color:{c}'>■</span> {name}: **{counts.get(i, 0):,}**"
             for i, (name, c) in enumerate(HEALTH) if counts.get(i, 0)]
    st.markdown(" &nbsp; ".join(parts), unsafe_allow_html=True)


def accounting(ctx: ui.Context, stored_now: int) -> None:
    """Where every published window went: the report's telemetry counters."""
    t = (ctx.report or {}).get("telemetry")
    if t is None:
        st.metric("windows stored so far", f"{stored_now:,}")
        st.caption("The published / rejected / lost counters are in the report, written when "
                   "the run ends.")
        return
    names = ["published", "delivered", "stored", "rejected", "lost", "pending"]
    colours = [charts.ACCENT, charts.ACCENT, charts.DEFENDED, charts.DEGRADED,
               charts.COMPROMISED, charts.UNKNOWN]
    charts.show(charts.hbar(names, [int(t.get(n, 0)) for n in names], colours,
                                x_title="telemetry windows"), key="accounting")
    accounted = sum(int(t.get(n, 0)) for n in ("stored", "rejected", "lost", "pending"))
    st.caption(f"stored + rejected + lost + pending = {accounted:,} of {t['published']:,} "
               f"published; {t.get('duplicates', 0):,} duplicates dropped, "
               f"{t.get('gaps', 0):,} sequence gaps.")


def timelines(ctx: ui.Context) -> None:
    """Windows stored per minute by kind, with outages shaded, and devices offline."""
    span = data.sim_time(ctx.store, ctx.key)
    bin_s = 60.0 if span <= 6 * 3600 else 600.0
    tp = data.throughput(ctx.store, ctx.key, bin_s)
    tp = tp.assign(t=charts.minutes(tp["t"]), n=tp["n"] / (bin_s / 60.0))
    fig = charts.stacked_bars(tp, x="t", y="n", group="kind", colours=charts.KIND_COLOURS,
                              labels=charts.KIND_LABELS, x_title="simulated time (min)",
                              y_title="windows received per minute")
    outages = data.network_notices(ctx.store, ctx.key)
    spans = [(r.t / 60, (r.t + r.detail.get("duration_s", 0)) / 60,
              f"outage: {r.detail.get('devices', '?')} devices")
             for r in outages.itertuples() if r.name == "outage"]
    charts.shade(fig, spans, charts.DEGRADED)
    charts.show(fig, key="throughput", toolbar=True)
    off = data.offline_over_time(ctx.store, ctx.key)
    if off.empty or off["offline"].max() == 0:
        st.caption("No device lost its link during this run.")
        return
    off = pd.concat([off, pd.DataFrame({"t": [span], "offline": [off["offline"].iloc[-1]]})])
    fig = go.Figure(go.Scatter(x=charts.minutes(off["t"]), y=off["offline"], mode="lines",
                               line={"shape": "hv", "color": charts.DEGRADED}, name="offline"))
    charts.show(charts.layout(fig, height=220, x="simulated time (min)",
                                  y="devices offline", legend=False), key="offline")


def episodes(ctx: ui.Context) -> None:
    """Ground-truth clinical episodes per kind, stacked by the kind of device they hit."""
    st.subheader("Clinical episodes (ground truth)")
    kinds = data.episode_kinds(ctx.store, ctx.key)
    if kinds is None:
        ui.not_yet("Clinical episodes", "This run's store was written before episodes were "
                   "recorded (store schema 3); runs made now have them.")
        return
    if kinds.empty:
        st.caption("No clinical episode was injected in this run (cohort `episode_rate: 0`, "
                   "or too short a run).")
        return
    order = kinds.groupby("episode")["n"].sum().sort_values(ascending=False).index.tolist()
    fig = charts.stacked_bars(kinds, x="episode", y="n", group="device_kind",
                              colours=charts.KIND_COLOURS, labels=charts.KIND_LABELS,
                              x_title="episode kind", y_title="episodes", height=300)
    fig.update_xaxes(categoryorder="array", categoryarray=order)
    fig.update_layout(bargap=0.25)
    charts.show(fig, key="episodes")
    per_device = data.episode_counts(ctx.store, ctx.key)
    st.caption(f"{int(kinds['n'].sum()):,} episodes of {len(order)} kinds on "
               f"{len(per_device):,} devices: what the signals carried, which detection "
               "(the devices' TinyML flags, the cloud's confirmation of ECG strips) is scored "
               "against.")


def sent_strips(ctx: ui.Context) -> None:
    """The run's ECG strips: how many the patches sent (their model flagged the window), how
    many reached the cloud, and the cloud's verdicts on them (each one on the Patient page)."""
    st.subheader("ECG strips sent to the cloud")
    verdicts = data.sent_strip_verdicts(ctx.store, ctx.key)
    if verdicts is None:
        ui.not_yet("ECG strips sent to the cloud", data.NO_SENT_STRIPS)
        return
    # Sent is counted on the devices and only reported when the run ends; the rest is stored.
    cloud = (((ctx.report or {}).get("clinical") or {}).get("ecg") or {}).get("in_cloud") or {}
    sent = f"{cloud['strips_sent']:,}" if "strips_sent" in cloud else (
        "run going" if ctx.report is None else "n/a")
    cols = st.columns(2 + len(verdicts))
    cols[0].metric("strips sent", sent)
    cols[1].metric("received by the cloud", f"{sum(verdicts.values()):,}")
    for col, (verdict, n) in zip(cols[2:], verdicts.items(), strict=True):
        col.metric(verdict, f"{n:,}")
    st.caption("An ECG patch sends the strip of every window its model flags; the cloud's "
               "own analyser confirms it (it finds PVCs or AF), does not (it sees a normal "
               "rhythm; it does not look for PACs), or cannot read it (not analysed). Sent but "
               "not received: lost or refused on the way.")


def headline(ctx: ui.Context, df: pd.DataFrame, counts: dict[str, int]) -> None:
    """The page's counts: devices, online and offline, windows stored, rejected, lost."""
    t = (ctx.report or {}).get("telemetry", {})
    cols = st.columns(6)
    cols[0].metric("devices", f"{len(df):,}")
    cols[1].metric("online", f"{int(df['online'].sum()):,}")
    cols[2].metric("offline", f"{int((df['state'] == 'reconnecting').sum()):,}")
    cols[3].metric("windows stored", f"{counts['telemetry']:,}")
    cols[4].metric("rejected", f"{t.get('rejected', counts['rejects']):,}")
    cols[5].metric("lost", f"{t['lost']:,}" if "lost" in t else "run going")


def render() -> None:
    """The Fleet page."""
    ctx = ui.current_run("Fleet")
    df = data.fleet(ctx.store, ctx.key)
    counts = data.counts(ctx.store, ctx.key)
    headline(ctx, df, counts)

    st.subheader("Device health")
    charts.show(grid(df), key="grid")
    legend(df)

    left, right = st.columns(2)
    with left:
        st.subheader("Telemetry accounting")
        accounting(ctx, counts["telemetry"])
    with right:
        st.subheader("Devices by kind and lifecycle state")
        by = df.groupby(["kind", "state"], as_index=False).size()
        by["kind"] = by["kind"].map(charts.KIND_LABELS).fillna(by["kind"])
        fig = charts.stacked_bars(by, x="size", y="kind", group="state",
                                  colours=charts.STATE_COLOURS, x_title="devices",
                                  y_title="", height=240, horizontal=True)
        charts.show(fig, key="states")

    st.subheader("Traffic over time")
    timelines(ctx)

    episodes(ctx)
    sent_strips(ctx)

    left, right = st.columns(2)
    with left:
        st.subheader("Battery")
        fig = go.Figure()
        has = df.dropna(subset=["battery"])
        for kind in charts.KIND_LABELS:
            part = has[has["kind"] == kind]
            fig.add_histogram(x=part["battery"] * 100, name=charts.KIND_LABELS.get(kind, kind),
                              marker_color=charts.KIND_COLOURS.get(kind), nbinsx=40)
        fig.update_layout(barmode="stack")
        charts.show(charts.layout(fig, height=260, x="state of charge at last window (%)",
                                      y="devices"), key="battery")
    with right:
        st.subheader("Firmware and certificates")
        ui.not_yet("Firmware versions and certificate expiry per device",
                   "The store does not record each device's firmware version or certificate "
                   "yet; this panel then shows versions and days to expiry. OTA campaign "
                   "progress (from the report) is on the Security page.")


render()
