"""Patient: one wearable's signals over the run, its alerts, its ground-truth episodes, the
raw strip stored at the start of each episode (ECG with its AAMI beat labels), and for an ECG
patch the strips it sent the cloud with the cloud's verdict on each."""

from __future__ import annotations

from typing import Any

import numpy as np
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
SIGNALS = {"ecg_patch": "ECG", "bp_cuff": "arterial pressure wave",
           "sweat_patch": "sweat sodium"}
MIN_SHADE = 0.004  # of the time axis: shorter episodes (a 3 s PVC) are drawn this wide


def pick_device(fleet: pd.DataFrame, episodes: dict[str, int]) -> pd.Series | None:
    """Kind and serial pickers; defaults to the device of that kind with most alerts, then
    most ground-truth episodes."""
    kinds = [k for k in charts.KIND_LABELS if k in set(fleet["kind"])]
    if not kinds:
        return None
    left, right = st.columns([1, 2])
    kind = left.radio("kind", kinds, format_func=lambda k: charts.KIND_LABELS[k],
                      horizontal=True)
    of_kind = fleet[fleet["kind"] == kind].assign(
        episodes=lambda df: df["device"].map(episodes).fillna(0))
    of_kind = of_kind.sort_values(["alerts", "episodes", "serial"],
                                  ascending=[False, False, True])
    serials = sorted(of_kind["serial"])
    default = of_kind["serial"].iloc[0]
    serial = right.selectbox("device (most alerts, then most episodes, preselected)", serials,
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


def episode_spans(episodes: pd.DataFrame | None, lo: float, hi: float,
                  min_width: float = 0.0) -> list[tuple[float, float, str]]:
    """Episodes as ``(start_min, end_min, kind)`` clipped to ``[lo, hi]`` seconds, each at
    least ``min_width`` seconds wide (so a 3 s ectopic beat stays visible on an hour)."""
    if episodes is None:
        return []
    spans = []
    for e in episodes.itertuples():
        start, end = max(float(e.start_s), lo), min(float(e.end_s), hi)
        if start > hi or end < lo:
            continue
        end = max(end, min(start + min_width, hi))
        spans.append((start / 60, end / 60, str(e.kind)))
    return spans


def vitals(series: pd.DataFrame, alerts: pd.DataFrame, kind: str,
           episodes: pd.DataFrame | None = None) -> go.Figure:
    """The kind's metrics over time, one panel per unit, with alerts, reference bands and
    the device's ground-truth episodes shaded."""
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
    end = float(series["t"].max())
    spans = episode_spans(episodes, 0.0, end, MIN_SHADE * end)
    if spans:
        charts.shade(fig, spans, charts.EPISODE, rows=len(units), opacity=0.15)
        charts.legend_swatch(fig, "episode (ground truth)", charts.EPISODE)
    charts.layout(fig, height=260 + 170 * (len(units) - 1))  # before the per-panel titles
    for i, unit in enumerate(units, start=1):
        fig.update_yaxes(title_text=unit, row=i, col=1)
    fig.update_xaxes(title_text=X_TITLE, row=len(units), col=1)
    return fig


def clinical_notes(ctx: ui.Context, kind: str, series: pd.DataFrame) -> None:
    """The per-kind views that need data later issues add: said plainly, not faked."""
    if kind == "bp_cuff":
        span = float(series["t"].max() - series["t"].min()) if len(series) else 0.0
        if span < 20 * 3600:
            st.caption(f"Nocturnal dipping needs a day of data; this run covers "
                       f"{ui.fmt_minutes(span)} of simulated time.")
    if series["score"].notna().any() or series["flagged"].fillna(0).sum() > 0:
        charts.show(anomaly_chart(series), key="anomaly")
        return
    ui.not_yet("On-device anomaly flags (TinyML)",
               "No on-device score is stored for this device: every kind sends its model's "
               "score with each window, so this run either has no window from it yet or was "
               "made before its model ran in the fleet. The red markers are the cloud's "
               "threshold alerts.")


def anomaly_chart(series: pd.DataFrame) -> go.Figure:
    """The device's own TinyML score per window, with the windows it flagged marked red."""
    minutes = charts.minutes(series["t"])
    fig = go.Figure(go.Scatter(x=minutes, y=series["score"], mode="lines",
                               name="on-device anomaly score", line={"color": charts.ACCENT}))
    flagged = series["flagged"].fillna(0) > 0
    fig.add_trace(go.Scatter(x=minutes[flagged], y=series["score"][flagged], mode="markers",
                             name="flagged by the device",
                             marker={"color": charts.COMPROMISED, "size": 7}))
    charts.layout(fig, height=220, x=X_TITLE, y="score (0-1)")
    return charts.legend_below(fig)


def add_beats(fig: go.Figure, strip: data.Strip) -> None:
    """Mark each labelled beat on the trace: N small and grey, S/V/F/Q large and coloured,
    each with its letter above it."""
    t = strip.times()
    for label in charts.BEAT_COLOURS:
        idx = np.array([i for i, b in strip.beats if b == label and 0 <= i < len(t)], dtype=int)
        if not len(idx):
            continue
        normal = label == "N"
        fig.add_scatter(
            x=t[idx], y=strip.samples[idx], mode="markers+text", name=charts.BEAT_NAMES[label],
            text=[label] * len(idx), textposition="top center",
            textfont={"color": charts.BEAT_COLOURS[label], "size": 10 if normal else 14},
            marker={"color": charts.BEAT_COLOURS[label], "size": 6 if normal else 12,
                    "symbol": "circle" if normal else "diamond",
                    "line": {"width": 0 if normal else 1, "color": "white"}},
            hovertemplate=f"{charts.BEAT_NAMES[label]}<br>%{{x:.2f}} s<extra></extra>")


def strip_figure(strip: data.Strip, episodes: pd.DataFrame | None, kind: str) -> go.Figure:
    """A raw strip: time (s) against the physical unit, episodes that overlap it shaded,
    and (ECG) the beat labels."""
    fig = go.Figure(go.Scatter(x=strip.times(), y=strip.samples, mode="lines",
                               name=f"{SIGNALS.get(kind, 'signal')} ({strip.units})",
                               line={"color": charts.KIND_COLOURS.get(kind, charts.ACCENT),
                                     "width": 1.3}))
    spans = episode_spans(episodes, strip.t_start, strip.t_end)
    if spans:
        charts.shade(fig, [(a * 60, b * 60, k) for a, b, k in spans], charts.EPISODE,
                     opacity=0.12, label_at="inside bottom left")
        charts.legend_swatch(fig, "episode (ground truth)", charts.EPISODE)
    add_beats(fig, strip)
    fig.update_xaxes(range=[strip.t_start, strip.t_end])
    fig.update_yaxes(range=_padded(strip.samples))  # room above for the beat letters
    charts.layout(fig, height=380, x="simulated time (s)",
                  y=f"{SIGNALS.get(kind, 'signal')} ({strip.units})")
    return charts.legend_below(fig, rows=2)


def _padded(values: np.ndarray) -> list[float]:
    if not len(values):
        return [0.0, 1.0]
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = max(hi - lo, 1e-6)
    return [lo - 0.08 * pad, hi + 0.2 * pad]


def strip_label(row: pd.Series, episodes: pd.DataFrame) -> str:
    """How a strip reads in the picker: its time span, the episodes starting in it, and how
    many beats are not normal."""
    t0 = float(row["t_end"]) - float(row["n"]) / float(row["fs"])
    starting = episodes[(episodes["start_s"] >= t0 - 1e-6) & (episodes["start_s"] < row["t_end"])]
    kinds = ", ".join(dict.fromkeys(starting["kind"])) or "no episode start"
    beats = f" · {int(row['ectopic'])} of {int(row['beats'])} beats not N" if row["beats"] else ""
    return f"{t0:,.0f}-{row['t_end']:,.0f} s · {kinds}{beats}"


def strip_viewer(ctx: ui.Context, device: pd.Series, episodes: pd.DataFrame) -> None:
    """Pick one of the device's stored strips and plot it."""
    strips = data.device_strips(ctx.store, ctx.key, device["device"])
    if strips is None or strips.empty:
        st.caption("No raw strip was stored for this device (``outputs.strip_seconds: 0`` "
                   "switches them off).")
        return
    labels = {int(r.id): strip_label(pd.Series(r._asdict()), episodes)
              for r in strips.itertuples()}
    ids = list(labels)
    best = int(strips.sort_values(["ectopic", "t_end"], ascending=[False, True])["id"].iloc[0])
    chosen = st.selectbox("raw strip stored at an episode's start", ids, index=ids.index(best),
                          format_func=labels.__getitem__, key=f"strip_{device['device']}")
    strip = data.strip(ctx.store, ctx.key, chosen)
    if strip is None:
        st.warning("That strip is no longer in the store.")
        return
    charts.show(strip_figure(strip, episodes, device["kind"]), key="strip", toolbar=True)
    st.caption(f"{len(strip.samples):,} samples at {strip.fs:g} Hz, in {strip.units}."
               + (" Beat labels are the AAMI classes of the synthesised rhythm (ground "
                  "truth), not a detector's output." if strip.beats else ""))


def episode_table(episodes: pd.DataFrame, run_end: float) -> None:
    """The device's episodes: kind, start, end and duration; says how many outlast the run."""
    table = pd.DataFrame({
        "episode": episodes["kind"],
        "start (min)": (episodes["start_s"] / 60).round(2),
        "end (min)": (episodes["end_s"] / 60).round(2),
        "duration (s)": (episodes["end_s"] - episodes["start_s"]).round(1),
    })
    st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 320))
    if (later := int((episodes["end_s"] > run_end).sum())):
        st.caption(f"{later} of these go on after the run's end ({ui.fmt_minutes(run_end)}).")


def episodes_panel(ctx: ui.Context, device: pd.Series, series: pd.DataFrame,
                   episodes: pd.DataFrame | None) -> None:
    """The ground truth injected into this device's signal, and the raw strips kept of it."""
    st.subheader("Clinical episodes (ground truth)")
    if episodes is None:
        ui.not_yet("Episodes (ground truth) and raw strips",
                   "This run's store was written before episodes and strips were recorded "
                   "(store schema 3); runs made now have them.")
        return
    if episodes.empty:
        total = sum(data.episode_counts(ctx.store, ctx.key).values())
        st.caption("No episode was injected into this device's signal."
                   + ("" if total else " This run injects none (cohort ``episode_rate: 0``)."))
        return
    left, right = st.columns([2, 3])
    with left:
        episode_table(episodes, ctx.duration or float(series["t"].max()))
    with right:
        strip_viewer(ctx, device, episodes)


def codes(joined: object) -> str:
    """Comma-joined flag or finding codes (``pvc,af``) as a clinician reads them: PVC, AF."""
    return ", ".join(c.upper() for c in str(joined or "").split(",") if c)


def findings_text(verdict: str, findings: object) -> str:
    """The cloud's findings on a strip; with none, why there are none."""
    if verdict == "not analysed":
        return "none: the analyser could not read the strip"
    return codes(findings) or "none: normal rhythm"


def sent_strips_table(strips: pd.DataFrame) -> None:
    """One row per strip the device sent: when, its flags and score, the cloud's verdict and
    findings (short: the viewer beside it says why there are none)."""
    table = pd.DataFrame({
        "window end (min)": (strips["t"] / 60).round(2),
        "device flags": strips["flags"].map(codes),
        "score": strips["score"].round(2),
        "cloud verdict": strips["verdict"],
        "findings": [codes(f) or "none" for f in strips["findings"]],
    })
    small = st.column_config.Column(width="small")
    st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 320),
                 column_config={"device flags": small, "score": small, "findings": small})


def sent_strip_label(row: Any) -> str:
    """How a sent strip reads in the picker: its time span, the device's flags, the verdict."""
    return (f"{row.t - row.n / row.fs:,.0f}-{row.t:,.0f} s · {codes(row.flags) or 'no flag'}"
            f" · {row.verdict}")


def sent_strip_viewer(ctx: ui.Context, device: pd.Series, strips: pd.DataFrame,
                      episodes: pd.DataFrame | None) -> None:
    """Pick one strip the device sent; show the cloud's verdict beside the device's own
    call, then the strip as the cloud analysed it, ground-truth episodes shaded."""
    rows = {int(r.id): r for r in strips.itertuples()}
    chosen = st.selectbox("strip the device sent", list(rows), key=f"sent_{device['device']}",
                          format_func=lambda i: sent_strip_label(rows[i]))
    row = rows[int(chosen)]
    strip = data.sent_strip(ctx.store, ctx.key, int(chosen))
    if strip is None:
        st.warning("That strip is no longer in the store.")
        return
    cols = st.columns(3)
    cols[0].metric("device flags", codes(row.flags) or "none")
    cols[1].metric("device score", "n/a" if pd.isna(row.score) else f"{row.score:.2f}")
    cols[2].metric("cloud verdict", row.verdict)
    charts.show(strip_figure(strip, episodes, device["kind"]), key="sent_strip", toolbar=True)
    st.caption(f"Cloud findings: {findings_text(row.verdict, row.findings)}. "
               f"{len(strip.samples):,} samples at {strip.fs:g} Hz as the patch sent them "
               f"(int16 counts of {row.lsb_mv * 1000:g} µV), received {row.received - row.t:.2f} s "
               "after the window closed. Shaded: ground-truth episodes.")


def sent_strips_panel(ctx: ui.Context, device: pd.Series, episodes: pd.DataFrame | None) -> None:
    """An ECG patch's strips, sent when its model flagged a window, each with the cloud's
    verdict: where the device's call meets an independent second opinion (cloud.confirm)."""
    if device["kind"] != "ecg_patch":
        return  # only ECG patches send strips
    st.subheader("Strips the device sent")
    strips = data.sent_strips(ctx.store, ctx.key, device["device"])
    if strips is None:
        ui.not_yet("Strips the device sent", data.NO_SENT_STRIPS)
        return
    if strips.empty:
        st.caption("The cloud received no strip from this patch: it sends one only when its "
                   "model flags a window.")
        return
    left, right = st.columns([2, 3])
    with left:
        sent_strips_table(strips)
    with right:
        sent_strip_viewer(ctx, device, strips, episodes)


def device_metrics(device: pd.Series, episodes: pd.DataFrame | None) -> None:
    """The device's state, battery, alerts, episodes and last window, in one row."""
    cols = st.columns([3, 2, 2, 2, 2, 2])  # the state's name is the longest value
    cols[0].metric("state", device["state"])
    cols[1].metric("battery", "n/a" if pd.isna(device["battery"])
                   else f"{device['battery'] * 100:.0f} %")
    cols[2].metric("alerts raised", f"{int(device['alerts']):,}")
    cols[3].metric("open alerts", f"{int(device['open_alerts']):,}")
    cols[4].metric("episodes", "n/a" if episodes is None else f"{len(episodes):,}")
    cols[5].metric("last window", "none" if pd.isna(device["last_t"])
                   else ui.fmt_minutes(device["last_t"]))
    st.caption(f"Device `{device['device']}` · serial {device['serial']}")


def render() -> None:
    """The Patient page."""
    ctx = ui.current_run("Patient")
    fleet = data.fleet(ctx.store, ctx.key)
    device = pick_device(fleet, data.episode_counts(ctx.store, ctx.key))
    if device is None:
        st.warning("This run has no devices yet.")
        st.stop()
    series = data.device_series(ctx.store, ctx.key, device["device"])
    alerts = data.device_alerts(ctx.store, ctx.key, device["device"])
    episodes = data.device_episodes(ctx.store, ctx.key, device["device"])
    device_metrics(device, episodes)
    if series.empty:
        st.info("This device has not stored a window yet.")
        return
    charts.show(vitals(series, alerts, device["kind"], episodes), key="vitals", toolbar=True)
    notes = ["Shaded: the device's ground-truth episodes (very short ones drawn wider so they "
             "can be seen; the list below has exact times)."] if episodes is not None and len(
             episodes) else []
    if len(series) >= 1500:
        notes.append("Long run: each point is the average of consecutive windows (display "
                     "downsampling); alert markers are exact.")
    if notes:
        st.caption(" ".join(notes))
    episodes_panel(ctx, device, series, episodes)
    clinical_notes(ctx, device["kind"], series)
    sent_strips_panel(ctx, device, episodes)
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
