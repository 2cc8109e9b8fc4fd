"""The cloud ingest core: verifies every delivered message before anything is stored.

A sans-IO core (ARCHITECTURE.md section 2): ``CloudCore.handle(event, now)`` returns effects.
Each message the broker delivers goes through the checks below, in order; the first that
fails rejects it with a short reason code (:class:`cloud.errors.IngestRejected`):

1. ``topic``: the topic parses under the project grammar, belongs to this tenant and is a
   device-to-cloud channel (``telemetry``, ``events`` or ``strips``) with no suffix;
2. ``decode``: the payload is a valid message of this schema version (the codec is total);
3. ``identity_mismatch``: the payload's ``device`` is the topic's device. The broker binds the
   topic to the certificate identity, so this makes a device speak only for itself
   (PSA Certified goal 1, unique identification; the false-data-injection defence);
4. ``channel_mismatch``: telemetry arrives only on ``telemetry``, events only on ``events``,
   strips only on ``strips``;
5. ``kind_mismatch``: a telemetry window carries exactly its kind's metrics (``KIND_METRICS``);
6. the anti-replay window (RFC 4303 3.4.3, :mod:`cloud.sequence`), when ``replay_window`` is
   on: duplicates and too-old numbers are *dropped* and counted, not rejected, because QoS 1
   redelivery makes benign duplicates normal; a replay attack shows up in the same counters.

A verified strip (the raw window of a flag) is analysed by :mod:`cloud.confirm`, the cloud's
independent second opinion, and stored with its verdict (``StoreStrip``).

Rejections become ``Reject`` + ``Count("<channel>.rejected")`` + ``Notice``; they never raise,
whatever bytes a peer sends (ARCHITECTURE.md section 4, bad input).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np

from cloud.alerts import DEFAULT_RULES, AlertEngine, AlertRule
from cloud.confirm import analyse
from cloud.effects import CloudEffect, RaiseAlert, Reject, StoreEvent, StoreStrip, StoreTelemetry
from cloud.errors import IngestRejected, StripError
from cloud.monitor import QuarantineRequest
from cloud.ota import Campaign, Offer, StartCampaign
from cloud.sequence import DEFAULT_WINDOW, SequenceTracker
from twin.core.codec import decode, encode
from twin.core.errors import DecodeError, TopicError
from twin.core.events import (
    Count,
    Effect,
    Event,
    LinkUp,
    MessageReceived,
    Notice,
    PowerOn,
    Publish,
    Subscribe,
)
from twin.core.messages import (
    KIND_METRICS,
    Command,
    DeviceEvent,
    FirmwareOffer,
    Kind,
    Strip,
    Telemetry,
)
from twin.core.topics import PREFIX, Channel, check_tenant, parse
from twin.core.topics import command as command_topic

_FROM_DEVICES: Final = (Channel.TELEMETRY, Channel.EVENTS, Channel.STRIPS)
_MAX_ECHO: Final = 256  # how much of a peer-chosen topic or error text a record keeps
_KIND_SETS: Final = {kind: frozenset(names) for kind, names in KIND_METRICS.items()}

Output = Effect | CloudEffect


def _channel_prefix(topic: str) -> str:
    """The counter prefix for a topic, guessed from its channel segment even if it is bad."""
    parts = topic.split("/", 5) if isinstance(topic, str) else []
    channel = parts[4] if len(parts) > 4 else ""
    return channel if channel in (Channel.EVENTS, Channel.STRIPS) else "telemetry"


class CloudCore:
    """Ingest for one tenant: verify, de-duplicate, store and alert.

    Attributes:
        tenant: the tenant whose devices this core serves.
        replay_window: whether the anti-replay window is on (the defence switch).
        tracker: per-device sequence windows and their totals.
        engine: the alert engine.
    """

    def __init__(
        self,
        tenant: str,
        *,
        replay_window: bool = True,
        rules: Iterable[AlertRule] = DEFAULT_RULES,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        """Create the core.

        Args:
            tenant: the tenant segment of the topics to ingest.
            replay_window: False turns off de-duplication, so every valid message is stored,
                duplicates and replays included (the "defence off" arm of a replay attack).
            rules: the alert rules.
            window: the anti-replay window size (RFC 4303 suggests 32 or 64 for IPsec; MQTT
                QoS 1 redelivery and offline buffers reorder far more, hence 1,024).

        Raises:
            TopicError: if ``tenant`` is not a valid tenant segment.
            ValueError: if the rules or the window size are invalid.
        """
        self.tenant = check_tenant(tenant)
        self.replay_window = replay_window
        self.tracker = SequenceTracker(window)
        self.engine = AlertEngine(rules)
        self._command_seq = 0
        self.campaigns: list[Campaign] = []
        self._filters = (
            f"{PREFIX}/{tenant}/+/{Channel.TELEMETRY.value}",
            f"{PREFIX}/{tenant}/+/{Channel.EVENTS.value}",
            f"{PREFIX}/{tenant}/+/{Channel.STRIPS.value}",
        )

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """The topic filters the core subscribes to on every (re)connection."""
        return self._filters

    def handle(self, event: Event | QuarantineRequest | StartCampaign,
               now: float) -> list[Output]:
        """Handle one driver event.

        Args:
            event: ``PowerOn``/``LinkUp`` (subscribe), ``MessageReceived`` (ingest); other
                events are ignored.
            now: the cloud's current time, stamped on stored rows and alerts.

        Returns:
            The effects. Never raises for a peer's topic or payload.
        """
        if isinstance(event, (PowerOn, LinkUp)):
            # Subscribe on every link-up: a clean-session reconnect loses subscriptions.
            return [Subscribe(f) for f in self._filters]
        if isinstance(event, MessageReceived):
            return self._on_message(event, now)
        if isinstance(event, QuarantineRequest):
            return self.command(event.device, "quarantine", now, {"rule": event.rule})
        if isinstance(event, StartCampaign):
            self.campaigns.append(event.campaign)
            return self._send_offers(event.campaign.start(), now)
        return []

    def _send_offers(self, offers: list[Offer], now: float) -> list[Output]:
        out: list[Output] = []
        for offer in offers:
            self._command_seq += 1
            message = FirmwareOffer(offer.device, self._command_seq, now, offer.envelope,
                                    offer.wrapped_key, offer.ciphertext)
            out += [Publish(command_topic(self.tenant, offer.device, "update"), encode(message)),
                    Count("ota.offered")]
        return out

    def _update_reported(self, event: DeviceEvent, now: float) -> list[Output]:
        """A device reported an update outcome: count it and let the campaign move on.

        The report names the sequence the device now runs (the new one, or the old one after
        a revert or a refusal); the ``firmware_reported`` notice carries it to the platform,
        whose inventory records what the fleet actually runs (not what it was offered).
        """
        outcome = str(event.detail.get("outcome", "unknown"))
        out: list[Output] = [Count(f"ota.{outcome}")]
        sequence = event.detail.get("sequence")
        if type(sequence) is int and sequence >= 0:
            out.append(Notice("cloud", "firmware_reported", {
                "device": event.device, "outcome": outcome[:32], "sequence": sequence}))
        for campaign in self.campaigns:  # only the campaign that offered it takes the report
            out += self._send_offers(campaign.report(event.device, outcome), now)
        return out

    def command(self, device: str, name: str, now: float,
                args: dict[str, str | int | float] | None = None) -> list[Output]:
        """Send a platform command to a device (each numbered with the cloud's own counter).

        Args:
            device: the target device's UEID hex.
            name: the command (``quarantine``, ``release``, ``decommission``).
            now: the current time.
            args: command arguments.

        Returns:
            The Publish effect and the counter and notice that record it.
        """
        self._command_seq += 1
        message = Command(device, self._command_seq, now, name, dict(args or {}))
        topic = command_topic(self.tenant, device, name)
        return [Publish(topic, encode(message)), Count(f"commands.{name}"),
                Notice("cloud", "command_sent", {"device": device, "name": name})]

    def _on_message(self, event: MessageReceived, now: float) -> list[Output]:
        prefix = _channel_prefix(event.topic)
        out: list[Output] = [Count(f"{prefix}.delivered")]
        try:
            message = self.verify(event.topic, event.payload)
        except IngestRejected as exc:
            out.extend(self._rejected(prefix, event.topic, exc, now))
            return out
        out.extend(self._accept(prefix, message, now))
        return out

    def verify(self, topic: str, payload: bytes) -> Telemetry | DeviceEvent | Strip:
        """Run checks 1-5 of the module docstring; stateless, so it changes nothing.

        Args:
            topic: the topic the message arrived on.
            payload: the raw bytes.

        Returns:
            The verified message.

        Raises:
            IngestRejected: with the reason code of the first check that failed.
        """
        try:
            parsed = parse(topic)
        except TopicError as exc:
            raise IngestRejected("topic", str(exc)) from None
        if parsed.tenant != self.tenant:
            raise IngestRejected("topic", f"tenant {parsed.tenant!r} is not {self.tenant!r}")
        if parsed.channel not in _FROM_DEVICES or parsed.rest:
            raise IngestRejected("topic", f"not a device-to-cloud topic: {topic:.80}")
        try:
            message = decode(payload)
        except DecodeError as exc:
            raise IngestRejected("decode", str(exc)) from None
        # PSA goal 1: a device may only speak for itself (false-data injection defence).
        if message.device != parsed.device:
            raise IngestRejected(
                "identity_mismatch", f"topic device {parsed.device} sent {message.device}"
            )
        if parsed.channel is Channel.TELEMETRY and isinstance(message, Telemetry):
            _check_kind(message)
            return message
        if parsed.channel is Channel.EVENTS and isinstance(message, DeviceEvent):
            return message
        if parsed.channel is Channel.STRIPS and isinstance(message, Strip):
            return message
        raise IngestRejected(
            "channel_mismatch", f"{type(message).__name__} on the {parsed.channel} channel"
        )

    def _accept(self, prefix: str, message: Telemetry | DeviceEvent | Strip,
                now: float) -> list[Output]:
        out: list[Output] = []
        if self.replay_window:
            # RFC 4303 3.4.3: the window is updated only now, after every other check passed.
            verdict = self.tracker.check_and_update(message.device, message.seq)
            if not verdict.accepted:
                counter = "duplicates" if verdict.reason == "duplicate" else "too_old"
                detail: dict[str, str | int | float] = {
                    "device": message.device, "seq": message.seq, "reason": verdict.reason}
                return [Count(f"{prefix}.{counter}"), Notice("cloud", "sequence_refused", detail)]
            if verdict.gap:
                out.append(Count(f"{prefix}.gaps", verdict.gap))
            elif verdict.reason == "reordered":
                out.append(Count(f"{prefix}.gaps_filled"))
        if isinstance(message, Strip):
            return [*out, *_confirm(message, now)]
        if isinstance(message, DeviceEvent):
            out += [StoreEvent(message, now), Count(f"{prefix}.stored")]
            if message.name == "update":
                out += self._update_reported(message, now)
            return out
        out += [StoreTelemetry(message, now), Count(f"{prefix}.stored")]
        out += [RaiseAlert(a) for a in self.engine.observe(message.device, now, message.values)]
        return out

    def _rejected(
        self, prefix: str, topic: str, exc: IngestRejected, now: float
    ) -> list[Output]:
        topic = str(topic)[:_MAX_ECHO]
        detail = exc.detail[:_MAX_ECHO]
        return [
            Reject(topic, exc.reason, detail, now),
            Count(f"{prefix}.rejected"),
            Notice("cloud", "ingest_rejected", {"topic": topic, "reason": exc.reason,
                                                "detail": detail}),
        ]


def _check_kind(message: Telemetry) -> None:
    """Refuse a window whose metrics are not exactly its kind's (``kind_mismatch``).

    Raises:
        IngestRejected: naming the kind, the metrics expected and those received.
    """
    expected = _KIND_SETS.get(Kind(message.kind))
    if expected is None or set(message.values) != expected:
        raise IngestRejected(
            "kind_mismatch",
            f"{message.kind} reports {sorted(expected or ())}, got {sorted(message.values)}",
        )


def _confirm(strip: Strip, now: float) -> list[Output]:
    """The cloud's second opinion on a verified strip (:mod:`cloud.confirm`), stored with it."""
    mv = np.frombuffer(strip.samples, "<i2").astype(np.float64) * strip.lsb_mv
    try:
        verdict = analyse(mv, strip.fs)
    except StripError:
        return [StoreStrip(strip, now, None), Count("strips.stored"), Count("strips.unreadable")]
    outcome = "confirmed" if verdict.confirmed else "refuted"
    return [StoreStrip(strip, now, verdict), Count("strips.stored"), Count(f"strips.{outcome}")]
