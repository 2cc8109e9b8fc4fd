"""Plotly figures with the dashboard's colours and units, so every page looks the same.

Colour is meaning, used the same way on every page: green is defended / healthy, red is
compromised / failed, amber is degraded (offline, alerting), grey is "no information". Device
kinds get blues and purples so they never read as good or bad. Every axis names its unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

DEFENDED = "#2e9e44"
COMPROMISED = "#d62728"
DEGRADED = "#f0a30a"
UNKNOWN = "#9aa0a6"
ACCENT = "#1f77b4"

KIND_COLOURS: Mapping[str, str] = {
    "ecg_patch": "#1f77b4", "bp_cuff": "#7b4fb8", "sweat_patch": "#17a2b8",
}
KIND_LABELS: Mapping[str, str] = {
    "ecg_patch": "ECG patch", "bp_cuff": "BP cuff", "sweat_patch": "Sweat patch",
}
STATE_COLOURS: Mapping[str, str] = {
    "streaming": DEFENDED, "connected": "#8fd19e", "updating": ACCENT,
    "reconnecting": DEGRADED, "booted": "#c7c7c7", "provisioned": "#c7c7c7",
    "manufactured": "#c7c7c7", "quarantined": COMPROMISED, "decommissioned": "#555555",
    "depleted": "#8c564b", "unknown": UNKNOWN,
}
STATUS_COLOURS: Mapping[str, str] = {
    "met": DEFENDED, "defended": DEFENDED, "pass": DEFENDED, "passed": DEFENDED,
    "partial": DEGRADED, "partially met": DEGRADED,
    "not met": COMPROMISED, "failed": COMPROMISED, "compromised": COMPROMISED,
    "fail": COMPROMISED, "not assessed": UNKNOWN,
}
OUTCOME_COLOURS: Mapping[str, str] = {
    "blocked": DEFENDED, "detected": DEGRADED, "succeeded": COMPROMISED,
}
SEVERITY_COLOURS: Mapping[str, str] = {
    "critical": "#7f0000", "high": COMPROMISED, "medium": DEGRADED, "low": "#ffd166",
}
# An OTA campaign's state: done is green, stopped by its failure budget is red.
CAMPAIGN_COLOURS: Mapping[str, str] = {
    "completed": DEFENDED, "paused": COMPROMISED, "canary": ACCENT, "rollout": ACCENT,
    "planned": UNKNOWN,
}
# Clinical ground truth is neither good nor bad for security: a colour of its own.
EPISODE = "#c2185b"
# AAMI beat classes (ANSI/AAMI EC57): normal beats stay neutral, the others stand out.
BEAT_COLOURS: Mapping[str, str] = {
    "N": "#8a8f96", "S": "#ff7f0e", "V": COMPROMISED, "F": "#9467bd", "Q": "#3d3d3d",
}
BEAT_NAMES: Mapping[str, str] = {
    "N": "N normal", "S": "S supraventricular ectopic", "V": "V ventricular ectopic",
    "F": "F fusion", "Q": "Q unclassifiable",
}


def status_colour(status: str) -> str:
    """The colour of a PSA goal status or attack outcome (grey if unknown)."""
    return STATUS_COLOURS.get(status.strip().lower(), UNKNOWN)


def layout(fig: go.Figure, *, height: int = 320, x: str = "", y: str = "",
           legend: bool = True) -> go.Figure:
    """Apply the house layout: compact margins, axis titles with units, legend on top."""
    fig.update_layout(
        height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, showlegend=legend,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "title": None,
                "traceorder": "normal"},
        hovermode="closest",
    )
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def minutes(seconds: pd.Series | Sequence[float]) -> pd.Series:
    """Simulated seconds as minutes since the run started (the x axis of every timeline)."""
    return pd.Series(seconds, dtype="float64") / 60.0


def stacked_bars(df: pd.DataFrame, *, x: str, y: str, group: str,
                 colours: Mapping[str, str], labels: Mapping[str, str] | None = None,
                 x_title: str, y_title: str, height: int = 300,
                 horizontal: bool = False) -> go.Figure:
    """Stacked bars of ``y`` over ``x``, one trace per value of ``group``.

    With ``horizontal`` the bars run along x: ``x`` holds the lengths and ``y`` the labels.
    """
    fig = go.Figure()
    parts = dict(list(df.groupby(group, sort=True)))
    order = [k for k in colours if k in parts] + [k for k in parts if k not in colours]
    for key in order:
        part = parts[key]
        fig.add_bar(x=part[x], y=part[y], name=(labels or {}).get(key, key),
                    marker_color=colours.get(key, UNKNOWN),
                    orientation="h" if horizontal else "v")
    fig.update_layout(barmode="stack", bargap=0.05)
    return layout(fig, height=height, x=x_title, y=y_title)


def hbar(labels: Sequence[str], values: Sequence[float], colours: Sequence[str], *,
         x_title: str, height: int | None = None) -> go.Figure:
    """Horizontal bars with their values printed, for a few labelled counts."""
    fig = go.Figure(go.Bar(x=list(values), y=list(labels), orientation="h",
                           marker_color=list(colours), text=[f"{v:,}" for v in values],
                           textposition="auto"))
    fig.update_yaxes(autorange="reversed")
    return layout(fig, height=height or 60 + 34 * len(labels), x=x_title, legend=False)


def histogram(values: pd.Series, *, x_title: str, colour: str = ACCENT,
              bins: int = 40, height: int = 260) -> go.Figure:
    """A histogram of device counts."""
    fig = go.Figure(go.Histogram(x=values, nbinsx=bins, marker_color=colour))
    return layout(fig, height=height, x=x_title, y="devices", legend=False)


def shade(fig: go.Figure, spans: Sequence[tuple[float, float, str]], colour: str,
          row: int | None = None, *, rows: int = 0, opacity: float = 0.2,
          label_at: str = "inside top left") -> None:
    """Shade time spans ``(start_min, end_min, label)`` on a figure (episodes, outages).

    With ``rows`` (a figure of that many stacked panels) every panel is shaded and only the
    top one carries the labels, placed at ``label_at`` (a plotly annotation position).
    """
    for start, end, label in spans:
        for r in range(1, rows + 1) if rows else [row]:
            kwargs: dict[str, object] = {"row": r, "col": 1} if r else {}
            text = {"annotation_text": label, "annotation_position": label_at,
                    "annotation_font_size": 10} if r in (None, 1) else {}
            fig.add_vrect(x0=start, x1=end, fillcolor=colour, opacity=opacity, line_width=0,
                          **text, **kwargs)


def legend_swatch(fig: go.Figure, name: str, colour: str, opacity: float = 0.35) -> None:
    """A legend entry for something drawn as a shape (shaded spans have none of their own)."""
    fig.add_scatter(x=[None], y=[None], mode="markers", name=name,
                    marker={"symbol": "square", "size": 12, "color": colour,
                            "opacity": opacity})


def legend_below(fig: go.Figure, rows: int = 1) -> go.Figure:
    """Move the legend under the x axis title (where it cannot collide with the toolbar)."""
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0},
                      margin={"b": 10 + 22 * rows})
    return fig


def show(fig: go.Figure, key: str, *, toolbar: bool = False) -> None:
    """Draw a figure; the zoom toolbar only on timelines (elsewhere it hides the legend)."""
    st.plotly_chart(fig, key=key, config={"displayModeBar": toolbar, "displaylogo": False})
