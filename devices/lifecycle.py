"""The wearable lifecycle as a transition table (house style 2).

::

    manufactured -provision-> provisioned -boot-> booted -link_up-> connected -stream-> streaming
    booted|connected|streaming|reconnecting -link_down-> reconnecting -link_up-> connected
    connected|streaming -update_begin-> updating -update_end-> booted
    (most states) -quarantine-> quarantined -release-> booted
    (any but decommissioned) -decommission-> decommissioned
    (any powered state) -battery_empty-> depleted

``depleted`` is added to the brief's states: a wearable whose battery is flat stops sending,
and the twin must tell that apart from a network outage or a quarantine.
"""

from __future__ import annotations

from enum import StrEnum

from twin.core.lifecycle import TransitionTable


class State(StrEnum):
    """Where a wearable is in its life."""

    MANUFACTURED = "manufactured"
    PROVISIONED = "provisioned"
    BOOTED = "booted"
    CONNECTED = "connected"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    UPDATING = "updating"
    QUARANTINED = "quarantined"
    DECOMMISSIONED = "decommissioned"
    DEPLETED = "depleted"


class Ev(StrEnum):
    """Lifecycle events (what happened, not what to do)."""

    PROVISION = "provision"
    BOOT = "boot"
    LINK_UP = "link_up"
    STREAM = "stream"
    LINK_DOWN = "link_down"
    UPDATE_BEGIN = "update_begin"
    UPDATE_END = "update_end"
    QUARANTINE = "quarantine"
    RELEASE = "release"
    DECOMMISSION = "decommission"
    BATTERY_EMPTY = "battery_empty"


S = State
_POWERED = (S.BOOTED, S.CONNECTED, S.STREAMING, S.RECONNECTING, S.UPDATING, S.QUARANTINED)

WEARABLE = TransitionTable.build(
    "wearable",
    [
        (S.MANUFACTURED, Ev.PROVISION, S.PROVISIONED),
        (S.PROVISIONED, Ev.BOOT, S.BOOTED),
        ((S.BOOTED, S.RECONNECTING), Ev.LINK_UP, S.CONNECTED),
        (S.CONNECTED, Ev.STREAM, S.STREAMING),
        ((S.BOOTED, S.CONNECTED, S.STREAMING, S.RECONNECTING), Ev.LINK_DOWN, S.RECONNECTING),
        ((S.CONNECTED, S.STREAMING), Ev.UPDATE_BEGIN, S.UPDATING),
        (S.UPDATING, Ev.UPDATE_END, S.BOOTED),
        ((S.BOOTED, S.CONNECTED, S.STREAMING, S.RECONNECTING, S.UPDATING), Ev.QUARANTINE,
         S.QUARANTINED),
        (S.QUARANTINED, Ev.RELEASE, S.BOOTED),
        ((*_POWERED, S.MANUFACTURED, S.PROVISIONED, S.DEPLETED), Ev.DECOMMISSION,
         S.DECOMMISSIONED),
        (_POWERED, Ev.BATTERY_EMPTY, S.DEPLETED),
    ],
)
"""The wearable's transition table; ``WEARABLE.next(state, event)`` or TransitionError."""
