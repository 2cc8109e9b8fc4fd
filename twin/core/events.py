"""Events into cores and effects out of them: the whole interface between a core and a driver.

A core is a plain object with ``handle(event, now) -> list[Effect]``. Drivers turn the outside
world into events (a timer fired, a link came up, a message arrived, a sensor window is ready)
and carry out the effects (publish, start a timer, count a metric). Because both are frozen
values, a core can be tested by feeding it events and reading the effects, with no SimPy,
asyncio or sockets (ARCHITECTURE.md section 2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# ---------------------------------------------------------------- events (driver -> core)


@dataclass(frozen=True, slots=True)
class PowerOn:
    """The device is switched on (the driver's first event for a device)."""


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the core started with :class:`StartTimer` has expired."""

    name: str


@dataclass(frozen=True, slots=True)
class LinkUp:
    """The core's connection to the broker is established (after mutual TLS in live mode)."""


@dataclass(frozen=True, slots=True)
class LinkDown:
    """The connection was lost or a connection attempt failed."""

    reason: str = "lost"


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message arrived on a topic the core subscribed to (payload as raw bytes)."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class WindowReady:
    """A sensor window closed; the fleet stepper computed it in a batch for all devices.

    Attributes:
        values: metric name -> value for this device's window.
        score: the TinyML anomaly score, when a model ran.
        flags: labels the on-device model raised.
        inference_mj: energy the window's pre-processing and inferences cost the device
            (the MCU model of ``devices.tinyml.energy``), drained from its battery.
        strip: the window's raw signal as :data:`~twin.core.messages.STRIP_LSB_MV` int16
            counts (little-endian) when the flag fired and the device should send it.
        strip_fs: the strip's sampling rate (Hz).
    """

    values: Mapping[str, float]
    score: float | None = None
    flags: tuple[str, ...] = ()
    inference_mj: float = 0.0
    strip: bytes = b""
    strip_fs: float = 0.0


Event = PowerOn | TimerFired | LinkUp | LinkDown | MessageReceived | WindowReady

# ---------------------------------------------------------------- effects (core -> driver)


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``payload`` on ``topic`` with MQTT QoS ``qos``."""

    topic: str
    payload: bytes
    qos: int = 1


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Subscribe to a topic filter."""

    topic_filter: str
    qos: int = 1


@dataclass(frozen=True, slots=True)
class Connect:
    """Open (or re-open) the connection to the broker; the driver answers LinkUp or LinkDown."""


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the connection on purpose."""


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Start (or restart) the named timer to fire after ``delay`` seconds."""

    name: str
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """Cancel the named timer if it is running."""

    name: str


@dataclass(frozen=True, slots=True)
class Count:
    """Add ``n`` to the run counter ``name`` (e.g. ``telemetry.published``)."""

    name: str
    n: int = 1


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth a line in the run's event log (lifecycle change, security event)."""

    source: str
    name: str
    detail: Mapping[str, str | int | float] = field(default_factory=dict)


Effect = Publish | Subscribe | Connect | Disconnect | StartTimer | CancelTimer | Count | Notice
