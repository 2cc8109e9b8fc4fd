"""The security monitor: turns what the broker and the cloud refused into security alerts.

A sans-IO core. Its input is a :class:`Signal` (who, what kind of refusal, when), made from the
notices the broker and the ingest core already emit (:func:`signal_from_notice`); its output
is :class:`SecurityAlert` and, where the rule says so and automatic quarantine is on,
:class:`QuarantineRequest`. Rules are data (:data:`DEFAULT_RULES`): a rule fires when a
subject collects ``threshold`` matching signals within ``window_s`` seconds, then stays quiet
for that subject for one window, so an attack raises an alert, not an alert storm.

Benign noise is expected and must not trip a rule: a QoS 1 redelivery after a lost PUBACK is
a duplicate, so the replay rule needs several duplicates in a minute, while a single payload
that claims another device's identity is never benign (PSA goal 1) and fires at once.

Attribution decides what may be automated. A broker denial names the authenticated publisher
(the identity in its certificate), so topic abuse may quarantine it. An identity mismatch is
seen by the cloud on a topic, without the publisher's identity: the topic's owner is the
victim, not the culprit, so that rule alerts (charged to the topic's device) and never
quarantines; otherwise forging one payload would let an attacker quarantine any device.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from twin.core.events import Notice
from twin.core.identity import is_device_id
from twin.core.topics import PREFIX

Severity = Literal["low", "medium", "high", "critical"]


@dataclass(frozen=True, slots=True)
class Signal:
    """One security-relevant refusal.

    Attributes:
        t: when it happened.
        subject: the identity it is charged to (a device UEID, or a principal's name).
        kind: what was refused: ``acl_denied``, ``connect_denied``, ``identity_mismatch``,
            ``malformed``, ``duplicate``, ``too_old``, ``kind_mismatch``, ``topic``,
            ``enrol_refused``.
    """

    t: float
    subject: str
    kind: str


@dataclass(frozen=True, slots=True)
class MonitorRule:
    """A detection rule: ``threshold`` signals of ``kinds`` within ``window_s`` seconds."""

    name: str
    kinds: frozenset[str]
    threshold: int
    window_s: float
    severity: Severity
    quarantine: bool
    psa_goals: tuple[int, ...]
    summary: str


@dataclass(frozen=True, slots=True)
class SecurityAlert:
    """A security alert raised against a subject."""

    t: float
    subject: str
    rule: str
    severity: Severity
    count: int
    psa_goals: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class QuarantineRequest:
    """The monitor asks the platform to quarantine a device."""

    t: float
    device: str
    rule: str


DEFAULT_RULES: Final[tuple[MonitorRule, ...]] = (
    MonitorRule("impersonation", frozenset({"identity_mismatch"}), 1, 60.0, "critical", False,
                (1,), "a payload on a device's topic claimed another identity"),
    MonitorRule("topic_abuse", frozenset({"acl_denied"}), 3, 60.0, "high", True, (1, 8),
                "repeated publishes or subscriptions outside the device's own topics"),
    MonitorRule("replay_suspected", frozenset({"duplicate", "too_old"}), 5, 60.0, "high",
                False, (8, 10), "repeated sequence numbers beyond QoS 1 redelivery"),
    MonitorRule("malformed_traffic", frozenset({"malformed", "kind_mismatch", "topic"}), 5,
                60.0, "medium", False, (8,), "payloads that fail decoding or the schema"),
    MonitorRule("refused_connections", frozenset({"connect_denied"}), 3, 300.0, "high", False,
                (1, 2), "a revoked or unknown identity keeps trying to connect"),
    MonitorRule("refused_enrolments", frozenset({"enrol_refused"}), 3, 300.0, "high", False,
                (1, 3), "a chip keeps failing enrolment (replayed tokens, substituted keys)"),
)

_SOURCES: Final = ("broker", "cloud", "platform")
"""Who emits notices the monitor reads."""

_INGEST_KINDS: Final[Mapping[str, str]] = {
    "identity_mismatch": "identity_mismatch", "decode": "malformed",
    "kind_mismatch": "kind_mismatch", "channel_mismatch": "malformed", "topic": "topic",
}


def _device_of(topic: object) -> str:
    parts = str(topic).split("/")
    if len(parts) > 3 and f"{parts[0]}/{parts[1]}" == PREFIX and is_device_id(parts[3]):
        return parts[3]
    return "unknown"


def signal_from_notice(notice: Notice, t: float) -> Signal | None:
    """The signal a broker or cloud notice carries, or None if it is not security-relevant."""
    d = notice.detail
    if notice.source == "broker" and notice.name in ("publish_denied", "subscribe_denied"):
        return Signal(t, str(d.get("who", "unknown")), "acl_denied")
    if notice.source == "broker" and notice.name == "connect_denied":
        return Signal(t, str(d.get("who", "unknown")), "connect_denied")
    if notice.source == "platform" and notice.name == "enrol_refused":
        return Signal(t, str(d.get("chip", "unknown")), "enrol_refused")
    if notice.source == "cloud" and notice.name == "sequence_refused":
        return Signal(t, str(d.get("device", "unknown")), str(d.get("reason", "duplicate")))
    if notice.source == "cloud" and notice.name == "ingest_rejected":
        kind = _INGEST_KINDS.get(str(d.get("reason", "")))
        return Signal(t, _device_of(d.get("topic", "")), kind) if kind else None
    return None


class SecurityMonitor:
    """Applies the rules to a stream of signals.

    Args:
        rules: the detection rules.
        auto_quarantine: whether rules marked ``quarantine`` also request a quarantine.
    """

    def __init__(self, rules: Iterable[MonitorRule] = DEFAULT_RULES,
                 auto_quarantine: bool = True) -> None:
        self.rules = tuple(rules)
        self.auto_quarantine = auto_quarantine
        self._seen: dict[tuple[str, str], deque[float]] = {}
        self._quiet_until: dict[tuple[str, str], float] = {}
        self._quarantined: set[str] = set()
        self._revoked: set[str] = set()
        self.expected: Counter[str] = Counter()
        """Signals charged to identities the platform itself revoked, by kind."""

    def revoked(self, subjects: Iterable[str]) -> None:
        """The platform revoked these identities: their refusals from now on are expected.

        A revoked device that keeps reconnecting (it has not been told, or it is in a
        drawer with a battery) is refused by the broker every few minutes for as long as it
        runs. That is the revocation working, not a new attack: each such subject raises its
        alert once, when a rule first fires, and afterwards its signals are only counted
        (:attr:`expected`), so the alert log is not a storm of known facts.
        """
        self._revoked.update(subjects)

    def screen(self, effects: Iterable[object], now: float
               ) -> tuple[list[SecurityAlert], list[QuarantineRequest]]:
        """Run every security-relevant notice among a core's effects through the rules.

        Both drivers call this on what they are about to store, so the monitor sees the same
        stream in sim and live mode.

        Returns:
            The alerts to store, and the quarantine requests to hand to the platform.
        """
        alerts: list[SecurityAlert] = []
        requests: list[QuarantineRequest] = []
        for effect in effects:
            if type(effect) is not Notice or effect.source not in _SOURCES:
                continue
            signal = signal_from_notice(effect, now)
            for out in self.observe(signal) if signal else ():
                if isinstance(out, QuarantineRequest):
                    requests.append(out)
                else:
                    alerts.append(out)
        return alerts, requests

    def observe(self, signal: Signal) -> list[SecurityAlert | QuarantineRequest]:
        """Take one signal; return the alerts (and quarantine requests) it completes."""
        out: list[SecurityAlert | QuarantineRequest] = []
        expected = signal.subject in self._revoked
        if expected:
            self.expected[signal.kind] += 1
        for rule in self.rules:
            if signal.kind not in rule.kinds:
                continue
            key = (signal.subject, rule.name)
            times = self._seen.setdefault(key, deque())
            times.append(signal.t)
            while times and times[0] <= signal.t - rule.window_s:
                times.popleft()
            if len(times) < rule.threshold or signal.t < self._quiet_until.get(key, -1.0):
                continue
            # A revoked subject's rule stays quiet after its one alert (see revoked()).
            self._quiet_until[key] = math.inf if expected else signal.t + rule.window_s
            out.append(SecurityAlert(signal.t, signal.subject, rule.name, rule.severity,
                                     len(times), rule.psa_goals))
            if (rule.quarantine and self.auto_quarantine and is_device_id(signal.subject)
                    and signal.subject not in self._quarantined):
                self._quarantined.add(signal.subject)
                out.append(QuarantineRequest(signal.t, signal.subject, rule.name))
        return out
