"""Scenarios: the bundled scenarios with their teaching text; launch one and follow it."""

from __future__ import annotations

import streamlit as st

from dashboards import launch, ui
from dashboards.run import runs_root
from scenarios.attacks import ATTACKS, known_attacks
from twin.core.defences import DEFENCES
from twin.core.errors import MedtwinError
from twin.scenario import (
    Scenario,
    bundled_scenarios,
    format_duration,
    load_scenario,
    parse_duration,
)

LAUNCHES = "launches"


@st.cache_data(show_spinner=False)
def catalogue() -> dict[str, Scenario | str]:
    """Every bundled scenario, loaded and validated (or the reason it does not load)."""
    out: dict[str, Scenario | str] = {}
    for name, _summary in bundled_scenarios():
        try:
            out[name] = load_scenario(name, known_defences=tuple(DEFENCES),
                                      known_attacks=known_attacks())
        except MedtwinError as exc:
            out[name] = str(exc)
    return out


def describe(sc: Scenario) -> None:
    """A scenario's description, teaching text and key facts."""
    kinds = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in sc.fleet.devices.items() if n)
    off = [name for name in DEFENCES if not sc.defence_on(name)]
    facts = [f"**{sc.device_count():,} devices** ({kinds})",
             f"**{format_duration(sc.duration)}** simulated", f"seed {sc.seed}",
             f"{len(sc.network.outages)} network outage(s)", f"{len(sc.attacks)} attack(s)",
             "all defences on" if not off else f"defences off: {', '.join(off)}"]
    st.markdown(" · ".join(facts))
    st.markdown(sc.description)
    if sc.teaching:
        st.markdown(f"> **Teaching.** {sc.teaching}")
    for attack in sc.attacks:
        info = ATTACKS.get(attack.name)
        if info:
            st.markdown(f"- attack **{info.name}** (PSA goal {info.psa_goals}): {info.summary}; "
                        f"stopped by `{info.defence}`")


def launch_form(scs: dict[str, Scenario]) -> None:
    """The form: scenario, devices, duration, seed, defence switches; submit launches."""
    # Outside the form, so choosing a scenario refills the form with that file's values
    # (the form's widgets are keyed by scenario name for the same reason).
    name = st.selectbox("scenario", list(scs), key="launch_scenario")
    sc = scs[name]
    with st.form(f"launch_{name}"):
        c1, c2, c3 = st.columns(3)
        devices = c1.number_input("devices", min_value=1, max_value=100_000,
                                  value=min(sc.device_count(), 1000), step=50,
                                  key=f"launch_devices_{name}")
        duration = c2.text_input("simulated duration", value=format_duration(sc.duration),
                                 key=f"launch_duration_{name}", help="e.g. 90s, 10m, 1h30m")
        seed = c3.number_input("seed", min_value=0, value=sc.seed, step=1,
                               key=f"launch_seed_{name}")
        st.markdown("Defences (switch one off to see what gets through)")
        switches = {n: st.checkbox(f"{n}: {d.summary}", value=sc.defence_on(n),
                                   key=f"launch_def_{name}_{n}") for n, d in DEFENCES.items()}
        go = st.form_submit_button("Launch run", type="primary")
    if not go:
        return
    try:
        seconds = parse_duration(duration)
        checked = sc.with_overrides(devices=int(devices), duration=seconds, seed=int(seed))
    except (ValueError, MedtwinError) as exc:
        st.error(f"Cannot launch: {exc}")
        return
    item = launch.launch(name, runs_root().resolve(), devices=int(devices), duration=duration,
                         seed=int(seed), defences=switches, sim_seconds=checked.duration)
    st.session_state.setdefault(LAUNCHES, []).insert(0, item)


def _open(out: str) -> None:
    st.session_state[ui.RUN_KEY] = out


@st.fragment(run_every="2s")
def launches() -> None:
    """Progress of the runs launched in this session; a finished one can be opened."""
    items: list[launch.Launch] = st.session_state.get(LAUNCHES, [])
    if not items:
        st.caption("No run launched from this session yet.")
        return
    for i, item in enumerate(items):
        p = launch.progress(item)
        st.markdown(f"**{item.out.name}** · `{launch.format_command(item.command)}`")
        if p.state == "failed":
            st.error(p.message)
        elif p.state == "finished":
            if st.button("Open this run", key=f"open_{i}", on_click=_open,
                         args=(str(item.out),), type="primary"):
                st.switch_page("views/fleet.py")
        else:
            st.progress(p.fraction, text=p.message)


def render() -> None:
    """The Scenarios page."""
    st.title("Scenarios")
    st.caption(f"Runs launched here are written to `{runs_root().resolve()}/NAME-N`; each is "
               "an ordinary `twin run` in the background, so its report is the one the "
               "command line would give.")
    entries = catalogue()
    good = {k: v for k, v in entries.items() if isinstance(v, Scenario)}
    for name, sc in entries.items():
        with st.expander(f"**{name}**", expanded=len(entries) <= 3):
            if isinstance(sc, str):
                st.error(f"This bundled scenario does not load: {sc}")
            else:
                describe(sc)
    if not good:
        st.warning("No bundled scenario loads, so none can be launched.")
        return
    st.subheader("Launch a run")
    launch_form(good)
    st.subheader("Launched runs")
    launches()


render()
