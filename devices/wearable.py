"""The wearable core: one device's lifecycle, sequence numbers, buffer and battery, sans-IO.

The core receives events with ``now`` and returns effects; it owns no socket, timer or clock.
Every message it sends carries the next value of one per-device sequence counter, so the cloud
can count gaps and drop duplicates (and, later, refuse replays). While the link is down the
core keeps telemetry in a bounded store-and-forward buffer and sends it, oldest first, when
the link comes back; past the bound the oldest window is dropped and counted as lost.
Reconnection uses capped exponential back-off with jitter so a fleet that lost its gateway does
not reconnect in lock-step ("Exponential Backoff And Jitter", AWS Architecture Blog, 2015).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from devices.battery import Battery
from devices.errors import FirmwareRejected
from devices.firmware import UpdateClient
from devices.lifecycle import WEARABLE, Ev, State
from twin.core import codec, topics
from twin.core.errors import DecodeError
from twin.core.events import (
    Connect,
    Count,
    Disconnect,
    Effect,
    Event,
    LinkDown,
    LinkUp,
    MessageReceived,
    Notice,
    PowerOn,
    Publish,
    StartTimer,
    Subscribe,
    TimerFired,
    WindowReady,
)
from twin.core.messages import (
    STRIP_LSB_MV,
    Command,
    DeviceEvent,
    FirmwareOffer,
    Kind,
    Strip,
    Telemetry,
)

STRIP_TX_BYTES = 1024
"""A strip (about 5 KB) costs one message's radio energy per started KiB: the per-message
budget of ``devices.battery`` covers a small TLS record, a strip is several."""
RECONNECT_TIMER = "reconnect"
REBOOT_TIMER = "reboot"
# A device keeps measuring (into its buffer) while it reconnects, updates or reboots.
_SENDS_WINDOWS = (State.CONNECTED, State.STREAMING, State.BOOTED, State.RECONNECTING,
                  State.UPDATING)


@dataclass(frozen=True, slots=True)
class Provisioned:
    """The platform has provisioned the device (identity bound, endpoint known)."""


@dataclass(frozen=True, slots=True)
class WearableConfig:
    """Tunables shared by a fleet of wearables.

    Attributes:
        window_s: the telemetry window period (battery drain per window).
        buffer_limit: windows kept while offline before the oldest is dropped.
        backoff_base_s: ceiling of the first reconnect delay (each delay is drawn from
            the upper half of its ceiling, and the ceiling doubles per failed attempt).
        backoff_cap_s: largest reconnect delay.
        qos: MQTT QoS for telemetry (1: at least once, the cloud de-duplicates).
        reboot_s: how long installing a staged image and rebooting into it takes.
    """

    window_s: float = 10.0
    buffer_limit: int = 4096
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 120.0
    qos: int = 1
    reboot_s: float = 20.0


class WearableCore:
    """One wearable's device logic (slotted: a fleet holds tens of thousands of these).

    Args:
        device: the device's UEID hex (its topic segment and certificate identity).
        kind: the device kind.
        tenant: the tenant (hospital ward) the device belongs to.
        battery: its battery.
        rng: its own random stream (back-off jitter).
        config: fleet-wide tunables.
        updater: the firmware update client, if the device takes OTA updates.
    """

    __slots__ = ("_attempt", "_events_topic", "_rng", "_strips_topic", "_telemetry_topic",
                 "_update_report",
                 "battery", "boots", "buffer", "config", "device", "kind", "next_seq", "state",
                 "tenant", "updater")

    def __init__(
        self,
        device: str,
        kind: Kind,
        tenant: str,
        battery: Battery,
        rng: np.random.Generator,
        config: WearableConfig,
        updater: UpdateClient | None = None,
    ) -> None:
        self.device = device
        self.updater = updater
        self._update_report: dict[str, str | int | float] | None = None
        self.kind = kind
        self.tenant = tenant
        self.battery = battery
        self.config = config
        self.state = State.MANUFACTURED
        self.boots = 0
        """Times the firmware has started (power-on, each update's reboot): what the device
        keeps only in RAM, such as the ECG model's reference beat (ADR 0017), is lost each
        time. Leaving quarantine is not a reboot (the buffer is kept through it too)."""
        self.next_seq = 0
        self.buffer: deque[bytes] = deque()
        self._rng = rng
        self._attempt = 0
        self._telemetry_topic = topics.telemetry(tenant, device)
        self._events_topic = topics.events(tenant, device)
        self._strips_topic = topics.strips(tenant, device)

    def handle(self, event: Event | Provisioned, now: float) -> list[Effect]:
        """Take one event at simulated time ``now`` and return the effects to carry out.

        Raises:
            TransitionError: if the driver sends an event the lifecycle forbids (a driver bug;
                a peer's bytes never cause it).
        """
        handler = _HANDLERS.get(type(event))
        return handler(self, event, now) if handler else []

    # ------------------------------------------------------------------ lifecycle

    def _fire(self, event: Ev, now: float) -> list[Effect]:
        old, self.state = self.state, WEARABLE.next(self.state, event)
        return [Notice(self.device, "state", {"from": old.value, "to": self.state.value})]

    def _on_provisioned(self, _e: object, now: float) -> list[Effect]:
        return self._fire(Ev.PROVISION, now)

    def _on_power_on(self, _e: object, now: float) -> list[Effect]:
        self.boots += 1
        return [*self._fire(Ev.BOOT, now), Connect()]

    def _on_link_up(self, _e: object, now: float) -> list[Effect]:
        if self.state not in (State.BOOTED, State.RECONNECTING):
            return []
        effects = self._fire(Ev.LINK_UP, now)
        effects.append(Subscribe(topics.command(self.tenant, self.device) + "/#"))
        detail: dict[str, str | int | float] = {"attempts": self._attempt,
                                                "buffered": len(self.buffer)}
        self._attempt = 0
        while self.buffer:  # store-and-forward: oldest first, in sequence order
            self.battery.transmit()
            effects.append(Publish(self._telemetry_topic, self.buffer.popleft(), self.config.qos))
        # After the backlog, so the cloud sees this device's sequence numbers in order.
        effects.append(self._event("connected", now, detail))
        if self._update_report is not None:
            effects.append(self._event("update", now, self._update_report))
            self._update_report = None
        return effects

    def _on_link_down(self, event: object, now: float) -> list[Effect]:
        if self.state not in (State.BOOTED, State.CONNECTED, State.STREAMING, State.RECONNECTING):
            return []
        effects = self._fire(Ev.LINK_DOWN, now) if self.state is not State.RECONNECTING else []
        self._attempt += 1
        # The exponent is bounded so a day-long outage cannot overflow the float.
        doubling = 2.0 ** min(self._attempt - 1, 32)
        ceiling = min(self.config.backoff_cap_s, self.config.backoff_base_s * doubling)
        delay = ceiling / 2 + float(self._rng.uniform(0.0, ceiling / 2))  # "equal jitter"
        effects.append(StartTimer(RECONNECT_TIMER, delay))
        return effects

    def _on_timer(self, event: object, now: float) -> list[Effect]:
        assert isinstance(event, TimerFired)
        if event.name == RECONNECT_TIMER and self.state is State.RECONNECTING:
            return [Connect()]
        if event.name == REBOOT_TIMER and self.state is State.UPDATING:
            return self._reboot_into_staged(now)
        return []

    # ------------------------------------------------------------------ telemetry

    def _on_window(self, event: object, now: float) -> list[Effect]:
        assert isinstance(event, WindowReady)
        if self.state not in _SENDS_WINDOWS:
            return []
        self.battery.run_for(self.config.window_s)
        self.battery.spend_mj(event.inference_mj)  # the model's MACs on the MCU (issue 6)
        if self.battery.empty:
            return [*self._fire(Ev.BATTERY_EMPTY, now), *self._drop_buffer(), Disconnect()]
        message = Telemetry(self.device, self._take_seq(), now, self.kind, event.values,
                            round(self.battery.soc, 4), event.score, event.flags)
        payload = codec.encode(message)
        effects: list[Effect] = [Count("telemetry.published")]
        if self.state is State.CONNECTED:
            effects.extend(self._fire(Ev.STREAM, now))
        if self.state is State.STREAMING:
            self.battery.transmit()
            effects.append(Publish(self._telemetry_topic, payload, self.config.qos))
            if event.strip:
                effects.extend(self._send_strip(event, now))
        else:
            effects.extend(self._buffer(payload))
            if event.strip:  # a strip is for a clinician now; it is not kept for later
                effects.append(Count("strips.not_sent_offline"))
        return effects

    def _send_strip(self, event: WindowReady, now: float) -> list[Effect]:
        """Send the raw window the model flagged, for the cloud to confirm (after the
        window's telemetry, so its sequence number follows it)."""
        strip = Strip(self.device, self._take_seq(), now, event.strip_fs, STRIP_LSB_MV,
                      event.strip, event.flags, event.score)
        payload = codec.encode(strip)
        self.battery.transmit(-(-len(payload) // STRIP_TX_BYTES))
        return [Count("strips.sent"), Publish(self._strips_topic, payload, self.config.qos)]

    def _buffer(self, payload: bytes) -> list[Effect]:
        self.buffer.append(payload)
        if len(self.buffer) <= self.config.buffer_limit:
            return []
        self.buffer.popleft()
        return [Count("telemetry.lost"), Count("telemetry.lost.buffer_overflow"),
                Notice(self.device, "buffer_overflow", {"buffered": len(self.buffer)})]

    def _drop_buffer(self) -> list[Effect]:
        """The device stops for good: windows still buffered will never be sent."""
        dropped, self.buffer = len(self.buffer), deque()
        if not dropped:
            return []
        return [Count("telemetry.lost", dropped), Count("telemetry.lost.device_stopped", dropped)]

    def _take_seq(self) -> int:
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        return seq

    def _event(self, name: str, now: float, detail: dict[str, str | int | float]) -> Publish:
        message = DeviceEvent(self.device, self._take_seq(), now, name, detail)
        return Publish(self._events_topic, codec.encode(message), self.config.qos)

    # ------------------------------------------------------------------ commands

    def _on_message(self, event: object, now: float) -> list[Effect]:
        assert isinstance(event, MessageReceived)
        try:
            command = codec.decode(event.payload)
        except DecodeError as exc:
            return [Notice(self.device, "command_rejected", {"reason": str(exc)})]
        if isinstance(command, FirmwareOffer) and command.device == self.device:
            return self._on_offer(command, now)
        if not isinstance(command, Command) or command.device != self.device:
            return [Notice(self.device, "command_rejected", {"reason": "not a command for me"})]
        transition = _COMMANDS.get(command.name)
        if transition is None or not WEARABLE.allows(self.state, transition):
            return [Notice(self.device, "command_refused", {"name": command.name,
                                                            "state": self.state.value})]
        effects = self._fire(transition, now)
        if transition is Ev.RELEASE:
            effects.append(Connect())
        elif transition is Ev.DECOMMISSION:
            effects.extend([*self._drop_buffer(), Disconnect()])
        elif transition is Ev.QUARANTINE:
            effects.append(Disconnect())  # the buffer is kept: release sends it
        return effects


    # ------------------------------------------------------------------ firmware updates

    def _on_offer(self, offer: FirmwareOffer, now: float) -> list[Effect]:
        """Verify and stage an OTA image, then reboot into it (devices.firmware checks)."""
        if self.updater is None or not WEARABLE.allows(self.state, Ev.UPDATE_BEGIN):
            return [Notice(self.device, "update_refused", {"state": self.state.value})]
        try:
            image = self.updater.stage(offer.envelope, offer.wrapped_key, offer.ciphertext)
        except FirmwareRejected as exc:
            return [Notice(self.device, "update_rejected", {"reason": exc.reason}),
                    self._event("update", now, {"outcome": "rejected", "reason": exc.reason,
                                                "sequence": self.updater.counter})]
        return [*self._fire(Ev.UPDATE_BEGIN, now), Disconnect(),
                Notice(self.device, "update_staged", {"sequence": image.sequence}),
                StartTimer(REBOOT_TIMER, self.config.reboot_s)]

    def _reboot_into_staged(self, now: float) -> list[Effect]:
        """Boot the staged image; keep it if its self test passes, otherwise revert."""
        assert self.updater is not None
        running = self.updater.boot_staged()
        if running.healthy:
            self.updater.confirm()
            outcome = "installed"
        else:
            running = self.updater.revert()
            outcome = "reverted"
        self._update_report = {"outcome": outcome, "sequence": running.sequence}
        self.boots += 1
        return [*self._fire(Ev.UPDATE_END, now), Connect()]


_HANDLERS: Mapping[type, Callable[[WearableCore, Any, float], list[Effect]]] = {
    Provisioned: WearableCore._on_provisioned,
    PowerOn: WearableCore._on_power_on,
    LinkUp: WearableCore._on_link_up,
    LinkDown: WearableCore._on_link_down,
    TimerFired: WearableCore._on_timer,
    WindowReady: WearableCore._on_window,
    MessageReceived: WearableCore._on_message,
}
"""Which method handles which event (one table for the class, not a dict per device)."""

_COMMANDS: Mapping[str, Ev] = {
    "quarantine": Ev.QUARANTINE,
    "release": Ev.RELEASE,
    "decommission": Ev.DECOMMISSION,
}
"""Commands the platform may send and the lifecycle event each one fires."""
