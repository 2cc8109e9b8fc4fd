"""Who may connect, publish and subscribe where: the broker's access policy, pure.

The same object decides for the simulated broker (``twin.sim``) and, later, for the real amqtt
broker's plugins, so an attack meets identical rules in both modes. The identity it judges is a
:class:`Principal` taken from the verified client certificate, never from the MQTT username or
client id a peer chose (stock amqtt trusts the username: ARCHITECTURE.md section 5).

Rules with ``topic_acl`` on (PSA goal 4, "secure communication", and goal 1, "unique
identification", applied at the broker):

* a **device** publishes only to its own ``telemetry``, ``events`` and ``prov`` topics, and
  subscribes only to its own ``cmd`` topics;
* the **cloud** subscribes to its tenant's device topics and publishes commands in its tenant;
* the **platform** (enrolment and renewal, ADR 0010) reads its tenant's ``prov/request``
  topics and answers only on ``prov/response``;
* a **revoked** device may not connect (the CRL check, enforced again here so a session that
  outlives its certificate is cut).

With ``topic_acl`` off the broker lets any authenticated principal publish and subscribe
anywhere, which is the insecure baseline attack scenarios demonstrate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from twin.core import topics
from twin.core.errors import MedtwinError, TopicError


class AccessDenied(MedtwinError):
    """The policy refused a connect, publish or subscribe. Opaque to the peer by design."""


class Role(StrEnum):
    """What kind of principal holds a certificate."""

    DEVICE = "device"
    CLOUD = "cloud"
    PLATFORM = "platform"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated identity.

    Attributes:
        role: device or cloud.
        tenant: the tenant the certificate was issued for.
        name: the device's UEID hex, or the service's name.
    """

    role: Role
    tenant: str
    name: str


_DEVICE_PUBLISH = (topics.Channel.TELEMETRY, topics.Channel.EVENTS, topics.Channel.STRIPS,
                   topics.Channel.PROV)
_DEVICE_SUBSCRIBE = (topics.Channel.CMD, topics.Channel.PROV)


@dataclass
class BrokerPolicy:
    """The access policy of one broker.

    Args:
        topic_acl: enforce the per-identity topic rules (the ``topic_acl`` defence).
        revoked: device names whose certificates are revoked.
    """

    topic_acl: bool = True
    revoked: set[str] = field(default_factory=set)

    def revoke(self, device: str) -> None:
        """Mark a device revoked: its next connect is refused."""
        self.revoked.add(device)

    def authorize_connect(self, who: Principal) -> None:
        """Raise unless ``who`` may connect.

        Raises:
            AccessDenied: the device is revoked (RFC 5280 6.3: a revoked certificate is
                not valid for any use).
        """
        if who.role is Role.DEVICE and who.name in self.revoked:
            raise AccessDenied("certificate revoked")

    def authorize_client_id(self, who: Principal, client_id: str) -> None:
        """Raise unless ``who`` may use the MQTT client id ``client_id``.

        A broker ends an existing session when another connects with the same client id
        (MQTT-3.1.4-2), so a client id is a capability: a device uses exactly its own UEID,
        and a cloud service its name or ``<name>-<suffix>`` (several workers). Otherwise any
        certificate holder could knock any device offline.

        Raises:
            AccessDenied: the client id is not ``who``'s.
        """
        if not isinstance(client_id, str) or not client_id:
            raise AccessDenied("a client id bound to the certificate is required (MQTT-3.1.3-3)")
        if client_id == who.name:
            return
        if who.role is Role.CLOUD and client_id.startswith(who.name + "-") and len(client_id) <= 64:
            return
        raise AccessDenied("the client id is not the certificate's identity")

    def authorize_publish(self, who: Principal, topic: str) -> None:
        """Raise unless ``who`` may publish to ``topic``.

        Raises:
            AccessDenied: the topic is malformed or not ``who``'s to publish to.
        """
        if not isinstance(topic, str) or not topic or "+" in topic or "#" in topic:
            raise AccessDenied("a PUBLISH topic has no wildcards (MQTT-3.3.2-2)")
        if not self.topic_acl:
            return
        try:
            parsed = topics.parse(topic)
        except TopicError:
            raise AccessDenied("publish to a malformed topic") from None
        if parsed.tenant != who.tenant:
            raise AccessDenied("publish outside the tenant")
        if who.role is Role.DEVICE:
            if parsed.device != who.name or parsed.channel not in _DEVICE_PUBLISH:
                raise AccessDenied("a device publishes only to its own topics")
        elif who.role is Role.PLATFORM:
            if parsed.channel is not topics.Channel.PROV or parsed.rest != "response":
                raise AccessDenied("the platform publishes only enrolment responses")
        elif parsed.channel is not topics.Channel.CMD:
            raise AccessDenied("the cloud publishes only commands")

    def authorize_subscribe(self, who: Principal, topic_filter: str) -> None:
        """Raise unless ``who`` may subscribe to ``topic_filter``.

        Raises:
            AccessDenied: the filter is malformed or reaches topics ``who`` may not read.
        """
        try:
            topics.check_filter(topic_filter)
        except TopicError:
            raise AccessDenied("malformed topic filter") from None
        if not self.topic_acl:
            return
        levels = topic_filter.split("/")
        if levels[:3] != [*topics.PREFIX.split("/"), who.tenant] or len(levels) < 5:
            raise AccessDenied("subscribe outside the tenant")
        device, channel = levels[3], levels[4]
        if who.role is Role.DEVICE:
            if device != who.name or channel not in _DEVICE_SUBSCRIBE:
                raise AccessDenied("a device subscribes only to its own commands")
        elif who.role is Role.PLATFORM:
            if levels[4:] != [topics.Channel.PROV.value, "request"]:
                raise AccessDenied("the platform reads only enrolment requests")
        elif channel in ("#", "+") or channel == topics.Channel.CMD:
            raise AccessDenied("the cloud reads device telemetry, events and strips only")
