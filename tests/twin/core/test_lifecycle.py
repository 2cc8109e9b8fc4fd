"""TransitionTable: lifecycles as data (house style 2)."""

from __future__ import annotations

import dataclasses
from enum import Enum, StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.core.errors import MedtwinError, TransitionError
from twin.core.lifecycle import TransitionTable


class State(Enum):
    OFF = "off"
    BOOTING = "booting"
    ONLINE = "online"
    OFFLINE = "offline"
    QUARANTINED = "quarantined"


class Ev(StrEnum):
    POWER = "power"
    BOOTED = "booted"
    LINK_DOWN = "link_down"
    LINK_UP = "link_up"
    QUARANTINE = "quarantine"
    SHUTDOWN = "shutdown"


ROWS = [
    (State.OFF, Ev.POWER, State.BOOTING),
    (State.BOOTING, Ev.BOOTED, State.OFFLINE),
    (State.OFFLINE, Ev.LINK_UP, State.ONLINE),
    (State.ONLINE, Ev.LINK_DOWN, State.OFFLINE),
    ((State.ONLINE, State.OFFLINE), Ev.QUARANTINE, State.QUARANTINED),
    ((State.BOOTING, State.ONLINE, State.OFFLINE, State.QUARANTINED), Ev.SHUTDOWN, State.OFF),
]
WEARABLE = TransitionTable.build("wearable", ROWS)


def test_build_expands_rows_with_several_sources() -> None:
    assert WEARABLE.name == "wearable"
    assert len(WEARABLE.table) == 10
    assert WEARABLE.table[(State.ONLINE, Ev.QUARANTINE)] is State.QUARANTINED
    assert WEARABLE.table[(State.OFFLINE, Ev.QUARANTINE)] is State.QUARANTINED
    assert WEARABLE.table[(State.QUARANTINED, Ev.SHUTDOWN)] is State.OFF


def test_a_tuple_of_one_source_is_that_source() -> None:
    table = TransitionTable.build("t", [((State.OFF,), Ev.POWER, State.BOOTING)])
    assert table.next(State.OFF, Ev.POWER) is State.BOOTING
    assert len(table.table) == 1


def test_a_str_enum_state_is_one_source_not_its_characters() -> None:
    table = TransitionTable.build("events-as-states", [(Ev.POWER, Ev.BOOTED, Ev.LINK_UP)])
    assert table.next(Ev.POWER, Ev.BOOTED) is Ev.LINK_UP
    assert len(table.table) == 1


def test_next_follows_the_table() -> None:
    state = State.OFF
    for event in (Ev.POWER, Ev.BOOTED, Ev.LINK_UP, Ev.LINK_DOWN, Ev.LINK_UP, Ev.QUARANTINE):
        state = WEARABLE.next(state, event)
    assert state is State.QUARANTINED
    assert WEARABLE.next(state, Ev.SHUTDOWN) is State.OFF


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (State.OFF, Ev.BOOTED),
        (State.OFF, Ev.SHUTDOWN),
        (State.QUARANTINED, Ev.LINK_UP),
        (State.QUARANTINED, Ev.QUARANTINE),
        (State.ONLINE, Ev.LINK_UP),
    ],
)
def test_next_refuses_what_the_table_lacks(state: State, event: Ev) -> None:
    with pytest.raises(TransitionError) as info:
        WEARABLE.next(state, event)
    error = info.value
    assert error.machine == "wearable"
    assert error.state is state
    assert error.event is event
    assert "wearable" in str(error)
    assert str(event) in str(error)
    assert str(state) in str(error)
    assert error.__cause__ is None and error.__suppress_context__  # no KeyError chained


def test_transition_error_is_a_medtwin_error() -> None:
    assert issubclass(TransitionError, MedtwinError)
    error = TransitionError("m", "s", "e")
    assert (error.machine, error.state, error.event) == ("m", "s", "e")
    assert str(error) == "m: event e is not allowed in state s"


@given(st.sampled_from(State), st.sampled_from(Ev))
def test_allows_agrees_with_next(state: State, event: Ev) -> None:
    if WEARABLE.allows(state, event):
        assert WEARABLE.next(state, event) is WEARABLE.table[(state, event)]
    else:
        with pytest.raises(TransitionError):
            WEARABLE.next(state, event)


@given(st.sampled_from(State))
def test_events_from_lists_exactly_the_allowed_events(state: State) -> None:
    allowed = WEARABLE.events_from(state)
    assert set(allowed) == {e for e in Ev if WEARABLE.allows(state, e)}
    assert len(allowed) == len(set(allowed))


def test_events_from_keeps_table_order() -> None:
    assert WEARABLE.events_from(State.ONLINE) == (Ev.LINK_DOWN, Ev.QUARANTINE, Ev.SHUTDOWN)
    assert WEARABLE.events_from(State.OFFLINE) == (Ev.LINK_UP, Ev.QUARANTINE, Ev.SHUTDOWN)
    assert WEARABLE.events_from(State.OFF) == (Ev.POWER,)


def test_events_from_a_state_with_no_transitions_is_empty() -> None:
    table = TransitionTable.build("one-way", [(State.OFF, Ev.POWER, State.ONLINE)])
    assert table.events_from(State.ONLINE) == ()
    assert not table.allows(State.ONLINE, Ev.POWER)


def test_duplicate_identical_rows_are_allowed() -> None:
    table = TransitionTable.build(
        "t", [(State.OFF, Ev.POWER, State.BOOTING), ((State.OFF,), Ev.POWER, State.BOOTING)]
    )
    assert len(table.table) == 1
    assert table.events_from(State.OFF) == (Ev.POWER,)


@pytest.mark.parametrize(
    "rows",
    [
        [(State.OFF, Ev.POWER, State.BOOTING), (State.OFF, Ev.POWER, State.ONLINE)],
        [((State.OFF, State.ONLINE), Ev.POWER, State.BOOTING),
         ((State.ONLINE,), Ev.POWER, State.OFF)],
        [*ROWS, (State.QUARANTINED, Ev.SHUTDOWN, State.QUARANTINED)],
    ],
)
def test_conflicting_rows_raise_value_error(rows: list) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match="two targets") as info:
        TransitionTable.build("ambiguous", rows)
    assert "ambiguous" in str(info.value)


def test_empty_table() -> None:
    table: TransitionTable[State, Ev] = TransitionTable.build("empty", [])
    assert not table.allows(State.OFF, Ev.POWER)
    assert table.events_from(State.OFF) == ()
    with pytest.raises(TransitionError):
        table.next(State.OFF, Ev.POWER)


def test_table_is_frozen_and_compares_by_content() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        WEARABLE.name = "other"  # type: ignore[misc]
    assert TransitionTable.build("wearable", ROWS) == WEARABLE
    assert TransitionTable.build("other", ROWS) != WEARABLE


def test_direct_construction_indexes_events_by_state() -> None:
    table = TransitionTable("direct", {(State.OFF, Ev.POWER): State.BOOTING})
    assert table.events_from(State.OFF) == (Ev.POWER,)
    assert table.next(State.OFF, Ev.POWER) is State.BOOTING
