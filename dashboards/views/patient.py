"""Patient: one wearable's signals over the run, with its alerts and (later) episodes."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboards import charts, data, ui
from twin.core.messages import KIND_METRICS, METRICS, Kind

X_TITLE = "simulated time (min)"
METRIC_COLOURS = {
    "hr_bpm": "#1f77b4", "sys_mmhg": "#7b4fb8", "dia_mmhg": "#b39ddb",
    "na_mmol_l": "#17a2b8", "k_mmol_l": "#ff7f0e", "cl_mmol_l": "#2ca0a0",
    "sweat_rate_l_h": "#6c757d",
}
# Reference bands a clinician expects to see (adult, at rest).
BANDS = {"hr_bpm": (60, 100), "sys_mmhg": (90, 140), "dia_mmhg": (60, 90)}


def pick_device(fleet: pd.DataFrame) -> pd.Series | None:
    """Kind and serial pickers; defaults to the device of that kind with most alerts."""
    kinds = [k for k in charts.KIND_LABELS if k in set(fleet["kind"])]
    if not kinds:
        return None
    left, right = st.columns([1, 2])
    kind = left.radio("kind", kinds, format_func=lambda k: charts.KIND_LABELS[k],
                      horizontal=True)
    of_kind = fleet[fleet["kind"] == kind].sort_values(["alerts", "serial"],
                                                       ascending=[False, True])
    serials = sorted(of_kind["serial"])
    default = of_kind["serial"].iloc[0]
    serial = right.selectbox("device (the one with most alerts is preselected)", serials,
                             index=serials.index(default), key=f"serial_{kind}")
    return of_kind[of_kind["serial"] == serial].iloc[0]


def add_alerts(fig: go.Figure, alerts: pd.DataFrame, metric: str, row: int | None = None) -> None:
    """Mark a metric's alerts (red triangles where raised, grey circles where cleared)."""
    mine = alerts[alerts["metric"] == metric]
    kwargs = {"row": row, "col": 1} if row else {}
    for state, symbol, colour in (("raised", "triangle-down", charts.COMPROMISED),
                                  ("cleared", "circle-open", charts.UNKNOWN)):
        part = mine[mine["state"] == state]
        if len(part):
            fig.add_scatter(x=charts.minutes(part["t"]), y=part["value"], mode="markers",
                            name=f"alert {state}", marker={"symbol": symbol, "size": 11,
                                                           "color": colour},
                            hovertext=part["rule"], **kwargs)


def vitals(series: pd.DataFrame, alerts: pd.DataFrame, kind: str) -> go.Figure:
    """The kind's metrics over time, one panel per unit, with alerts and reference bands."""
    metrics = KIND_METRICS[Kind(kind)]
    units = list(dict.fromkeys(METRICS[m].unit for m in metrics))
    fig = make_subplots(rows=len(units), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    x = charts.minutes(series["t"])
    for m in metrics:
        row = units.index(METRICS[m].unit) + 1
        fig.add_scatter(x=x, y=series[m], mode="lines", name=METRICS[m].description,
                        line={"color": METRIC_COLOURS.get(m), "width": 1.5}, row=row, col=1)
        if m in BANDS:
            lo, hi = BANDS[m]
            fig.add_hrect(y0=lo, y1=hi, fillcolor=charts.DEFENDED, opacity=0.07, line_width=0,
                          row=row, col=1)
        add_alerts(fig, alerts, m, row)
    charts.layout(fig, height=260 + 170 * (len(units) - 1))  # before the per-panel titles
    for i, unit in enumerate(units, start=1):
        fig.update_yaxes(title_text=unit, row=i, col=1)
    fig.update_xaxes(title_text=X_TITLE, row=len(units), col=1)
    return fig


def clinical_notes(ctx: ui.Context, kind: str, series: pd.DataFrame) -> None:
    """The per-kind views that need data later issues add: said plainly, not faked."""
    if kind == "ecg_patch":
        ui.not_yet("ECG strip with beat labels",
                   "Raw strips (and MIT-BIH beat labels on replayed records) are stored once "
                   "the physiology issue lands; the heart-rate trend above is what this run "
                   "holds.")
    if kind == "bp_cuff":
        span = float(series["t"].max() - series["t"].min()) if len(series) else 0.0
        if span < 20 * 3600:
            st.caption(f"Nocturnal dipping needs a day of data; this run covers "
                       f"{ui.fmt_minutes(span)} of simulated time.")
    if series["score"].notna().any() or series["flagged"].fillna(0).sum() > 0:
        return
    ui.not_yet("On-device anomaly flags (TinyML)",
               "The devices report a score and flags per window once the TinyML issue lands.")


def render() -> None:
    """The Patient page."""
    ctx = ui.current_run("Patient")
    fleet = data.fleet(ctx.store, ctx.key)
    device = pick_device(fleet)
    if device is None:
        st.warning("This run has no devices yet.")
        st.stop()
    series = data.device_series(ctx.store, ctx.key, device["device"])
    alerts = data.device_alerts(ctx.store, ctx.key, device["device"])
    cols = st.columns(5)
    cols[0].metric("state", device["state"])
    cols[1].metric("battery", "n/a" if pd.isna(device["battery"])
                   else f"{device['battery'] * 100:.0f} %")
    cols[2].metric("alerts raised", f"{int(device['alerts']):,}")
    cols[3].metric("open alerts", f"{int(device['open_alerts']):,}")
    cols[4].metric("last window", "none" if pd.isna(device["last_t"])
                   else ui.fmt_minutes(device["last_t"]))
    st.caption(f"Device `{device['device']}` · serial {device['serial']}")
    if series.empty:
        st.info("This device has not stored a window yet.")
        return
    charts.show(vitals(series, alerts, device["kind"]), key="vitals", toolbar=True)
    if len(series) >= 1500:
        st.caption("Long run: each point is the average of consecutive windows (display "
                   "downsampling); alert markers are exact.")
    clinical_notes(ctx, device["kind"], series)
    ui.not_yet("Episodes (ground truth) against edge and cloud detections",
               "Ground-truth episodes come with the physiology issue and edge detections "
               "with TinyML; until then the red markers are the cloud's threshold alerts.")
    left, right = st.columns(2)
    with left:
        fig = go.Figure(go.Scatter(x=charts.minutes(series["t"]), y=series["battery"] * 100,
                                   mode="lines", line={"color": charts.ACCENT}))
        charts.show(charts.layout(fig, height=220, x=X_TITLE, y="state of charge (%)",
                                      legend=False), key="battery")
    with right:
        history = data.device_history(ctx.store, ctx.key, device["device"])
        history = history.assign(t=(history["t"] / 60).round(2)).rename(
            columns={"t": "time (min)"})
        st.dataframe(history, hide_index=True, height=220, width="stretch")


render()
