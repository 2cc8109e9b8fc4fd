"""The wearable lifecycle table (devices/lifecycle.py) against its documented diagram."""

from __future__ import annotations

from collections import deque

import pytest

from devices.lifecycle import WEARABLE, Ev, State
from twin.core.errors import MedtwinError, TransitionError

S = State
POWERED = (S.BOOTED, S.CONNECTED, S.STREAMING, S.RECONNECTING, S.UPDATING, S.QUARANTINED)


def walk(state: State, *events: Ev) -> State:
    for event in events:
        state = WEARABLE.next(state, event)
    return state


def test_documented_path_manufactured_to_streaming() -> None:
    path = [Ev.PROVISION, Ev.BOOT, Ev.LINK_UP, Ev.STREAM]
    seen = [S.MANUFACTURED]
    for event in path:
        seen.append(WEARABLE.next(seen[-1], event))
    assert seen == [S.MANUFACTURED, S.PROVISIONED, S.BOOTED, S.CONNECTED, S.STREAMING]


@pytest.mark.parametrize("state", [S.BOOTED, S.CONNECTED, S.STREAMING, S.RECONNECTING])
def test_link_down_goes_to_reconnecting(state: State) -> None:
    assert WEARABLE.next(state, Ev.LINK_DOWN) is S.RECONNECTING


def test_reconnecting_link_up_returns_to_connected() -> None:
    assert walk(S.STREAMING, Ev.LINK_DOWN, Ev.LINK_UP) is S.CONNECTED


@pytest.mark.parametrize("state", [S.CONNECTED, S.STREAMING])
def test_update_begins_when_connected_and_ends_in_booted(state: State) -> None:
    assert WEARABLE.next(state, Ev.UPDATE_BEGIN) is S.UPDATING
    assert walk(state, Ev.UPDATE_BEGIN, Ev.UPDATE_END) is S.BOOTED


@pytest.mark.parametrize("state", [S.MANUFACTURED, S.PROVISIONED, S.BOOTED, S.RECONNECTING])
def test_update_needs_a_connection(state: State) -> None:
    assert not WEARABLE.allows(state, Ev.UPDATE_BEGIN)


@pytest.mark.parametrize(
    "state", [S.BOOTED, S.CONNECTED, S.STREAMING, S.RECONNECTING, S.UPDATING]
)
def test_quarantine_and_release_to_booted(state: State) -> None:
    assert WEARABLE.next(state, Ev.QUARANTINE) is S.QUARANTINED
    assert walk(state, Ev.QUARANTINE, Ev.RELEASE) is S.BOOTED


@pytest.mark.parametrize("state", [S.MANUFACTURED, S.PROVISIONED, S.DEPLETED])
def test_unpowered_devices_cannot_be_quarantined(state: State) -> None:
    assert not WEARABLE.allows(state, Ev.QUARANTINE)


@pytest.mark.parametrize("state", [s for s in State if s is not S.DECOMMISSIONED])
def test_any_state_but_decommissioned_can_be_decommissioned(state: State) -> None:
    assert WEARABLE.next(state, Ev.DECOMMISSION) is S.DECOMMISSIONED


@pytest.mark.parametrize("state", POWERED)
def test_battery_empty_depletes_any_powered_state(state: State) -> None:
    assert WEARABLE.next(state, Ev.BATTERY_EMPTY) is S.DEPLETED


def test_depleted_only_leads_to_decommissioned() -> None:
    assert WEARABLE.events_from(S.DEPLETED) == (Ev.DECOMMISSION,)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.MANUFACTURED, Ev.BOOT),  # must be provisioned first
        (S.PROVISIONED, Ev.LINK_UP),
        (S.BOOTED, Ev.STREAM),
        (S.STREAMING, Ev.PROVISION),
        (S.QUARANTINED, Ev.LINK_UP),  # a quarantined device stays off the network
        (S.DEPLETED, Ev.BOOT),
        (S.UPDATING, Ev.STREAM),
    ],
)
def test_forbidden_event_raises_transition_error(state: State, event: Ev) -> None:
    assert not WEARABLE.allows(state, event)
    with pytest.raises(TransitionError) as info:
        WEARABLE.next(state, event)
    err = info.value
    assert isinstance(err, MedtwinError)
    assert (err.machine, err.state, err.event) == ("wearable", state, event)
    assert str(state) in str(err) and str(event) in str(err)


def test_every_state_is_reachable_from_manufactured() -> None:
    reached = {S.MANUFACTURED}
    queue = deque([S.MANUFACTURED])
    while queue:
        state = queue.popleft()
        for event in WEARABLE.events_from(state):
            target = WEARABLE.next(state, event)
            if target not in reached:
                reached.add(target)
                queue.append(target)
    assert reached == set(State)


def test_table_only_names_known_states_and_events() -> None:
    for (state, event), target in WEARABLE.table.items():
        assert isinstance(state, State) and isinstance(target, State)
        assert isinstance(event, Ev)


@pytest.mark.parametrize("event", list(Ev))
def test_decommissioned_is_terminal(event: Ev) -> None:
    assert WEARABLE.events_from(S.DECOMMISSIONED) == ()
    with pytest.raises(TransitionError):
        WEARABLE.next(S.DECOMMISSIONED, event)
