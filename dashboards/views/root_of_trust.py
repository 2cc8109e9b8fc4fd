"""Root of trust: the fleet's identities, and (when the QDID issue lands) its PUF metrics."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboards import charts, data, ui


def identities(ctx: ui.Context) -> None:
    """What the store shows about identity today: one UEID per device, all distinct."""
    fleet = data.fleet(ctx.store, ctx.key)
    unique = fleet["device"].nunique()
    cols = st.columns(3)
    cols[0].metric("devices in the inventory", f"{len(fleet):,}")
    cols[1].metric("distinct UEIDs", f"{unique:,}")
    cols[2].metric("serials", f"{fleet['serial'].nunique():,}")
    if unique == len(fleet):
        st.caption("Every device has its own identity (UEID, RFC 9711 type RAND), as PSA goal "
                   "1 (unique identification) requires.")
    else:
        st.error(f"{len(fleet) - unique:,} devices share an identity with another device.")


def histogram_panel(title: str, values: list[float], colour: str, x_title: str) -> None:
    """A histogram of a PUF distance distribution (fractional Hamming distance)."""
    fig = go.Figure(go.Histogram(x=values, nbinsx=50, marker_color=colour))
    fig.update_xaxes(range=[0, 1])
    st.markdown(f"**{title}**")
    charts.show(charts.layout(fig, height=260, x=x_title, y="chip pairs or reads",
                                  legend=False), key=f"rot_{title}")


def puf(report: dict[str, Any] | None) -> None:
    """PUF uniqueness and reliability, from the report's ``root_of_trust`` section.

    The QDID issue adds that section; expected keys are ``inter_hd`` (fractional Hamming
    distances between chips' responses: uniqueness, ideally near 0.5) and ``intra_hd``
    (between reads of one chip: reliability, ideally near 0), plus scalar summaries.
    """
    rot = (report or {}).get("root_of_trust")
    if not rot:
        ui.not_yet("PUF uniqueness and reliability",
                   "The fleet's chips get a simulated quantum-tunnelling PUF with the QDID "
                   "issue; its report section then draws the inter-chip (uniqueness) and "
                   "intra-chip (reliability) Hamming-distance histograms here.")
        return
    scalars = {k: v for k, v in rot.items() if isinstance(v, int | float)}
    if scalars:
        cols = st.columns(min(len(scalars), 5))
        for i, (k, v) in enumerate(scalars.items()):
            cols[i % len(cols)].metric(k.replace("_", " "), f"{v:,.4g}")
    left, right = st.columns(2)
    with left:
        if isinstance(rot.get("inter_hd"), list):
            histogram_panel("Uniqueness (between chips)", rot["inter_hd"], charts.DEFENDED,
                            "fractional Hamming distance")
    with right:
        if isinstance(rot.get("intra_hd"), list):
            histogram_panel("Reliability (between reads of one chip)", rot["intra_hd"],
                            charts.ACCENT, "fractional Hamming distance")


def flash_dump(report: dict[str, Any] | None) -> None:
    """What an attacker reading the flash gets: a QDID device against an injected-key one."""
    dump = (report or {}).get("root_of_trust", {}).get("flash_dump")
    if not dump:
        ui.not_yet("Flash dump: QDID device against injected-key device",
                   "With the QDID issue, a QDID device's flash holds helper data only (no "
                   "key: the seed is re-derived from the PUF on demand), while an injected-key "
                   "device's flash yields its private key. This panel then shows both dumps "
                   "and whether the attacker could clone the device.")
        return
    st.dataframe(pd.DataFrame(dump), hide_index=True, width="stretch")


def render() -> None:
    """The Root of trust page."""
    ctx = ui.current_run("Root of trust")
    st.subheader("Device identities")
    identities(ctx)
    st.subheader("PUF metrics of the fleet's chips")
    puf(ctx.report)
    st.subheader("What a flash dump yields")
    flash_dump(ctx.report)


render()
