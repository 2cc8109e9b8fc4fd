"""Effects only the cloud core returns, beside those of :mod:`twin.core.events`.

The cloud core never writes storage itself (it is sans-IO, ARCHITECTURE.md section 2): it
returns these values and the driver hands them to a :class:`cloud.store.RunStore`. ``received``
is the cloud's ``now`` when the message was handled, so the store can tell device-claimed time
(``t`` inside the message) from arrival time.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud.alerts import Alert
from cloud.confirm import Confirmation
from twin.core.messages import DeviceEvent, Strip, Telemetry


@dataclass(frozen=True, slots=True)
class StoreTelemetry:
    """Persist one verified telemetry window."""

    telemetry: Telemetry
    received: float


@dataclass(frozen=True, slots=True)
class StoreEvent:
    """Persist one verified device event."""

    event: DeviceEvent
    received: float


@dataclass(frozen=True, slots=True)
class StoreStrip:
    """Persist one verified strip and the cloud's verdict on it.

    Attributes:
        strip: the device's message.
        received: the cloud's ``now``.
        confirmation: what the cloud's analysis found (``None``: it could not read the strip).
    """

    strip: Strip
    received: float
    confirmation: Confirmation | None


@dataclass(frozen=True, slots=True)
class RaiseAlert:
    """Persist (and surface) an alert that was raised or cleared."""

    alert: Alert


@dataclass(frozen=True, slots=True)
class Reject:
    """Record a refused message with its reason, so rejections are evidence in the store.

    Attributes:
        topic: the topic it arrived on (truncated; a peer chose it).
        reason: the short code of :class:`cloud.errors.IngestRejected`.
        detail: why, in words (never more than a short prefix of the peer's bytes).
        received: the cloud's ``now``.
    """

    topic: str
    reason: str
    detail: str
    received: float


CloudEffect = StoreTelemetry | StoreEvent | StoreStrip | RaiseAlert | Reject
