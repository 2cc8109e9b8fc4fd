"""amqtt plugins that authenticate by the verified certificate and authorise by the policy.

Stock amqtt's ACL plugin trusts the username the client chose (ARCHITECTURE.md section 5).
These two plugins ask the shared :class:`broker.gate.Gate` instead, which reads the identity
from the certificate the TLS layer verified. They work in a stock ``amqtt.broker.Broker``
(configured with ``plugins: {"broker.plugins.CertificateAuthPlugin": {"gate": gate}, ...}``),
but only :class:`broker.hardened.HardenedBroker` checks the client id *before* amqtt ends an
existing session of that id, so use that broker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from broker.gate import Gate
from broker.policy import AccessDenied


def peer_der(session: Session | None) -> bytes | None:
    """The DER certificate the client presented in this session's TLS handshake, if any."""
    ssl_object = getattr(session, "ssl_object", None)
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


def _gate(plugin: BaseAuthPlugin | BaseTopicPlugin) -> Gate:
    gate = getattr(plugin.context.config, "gate", None)
    if not isinstance(gate, Gate):
        raise TypeError("the medtwin broker plugins need config {'gate': broker.gate.Gate}")
    return gate


class CertificateAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no types
    """Authenticate a session by its verified client certificate, never by username."""

    @dataclass
    class Config:
        """Plugin configuration: the gate shared with the broker."""

        gate: Any = None

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.gate = _gate(self)

    async def authenticate(self, *, session: Session) -> bool:
        """True iff the session's certificate was admitted under its client id.

        Args:
            session: the amqtt session (its ``ssl_object`` carries the peer certificate).

        Returns:
            True to accept; False answers CONNACK 0x05 "not authorized" (MQTT-3.2.2-3).
        """
        der = peer_der(session)
        client_id = session.client_id or ""
        if self.gate.authenticated(client_id, der):
            return True
        will = session.will_topic if session.will_flag else None
        try:  # used inside a stock broker: admit here (no protection against take-over)
            self.gate.admit(der, client_id, will, time.monotonic())
        except AccessDenied:
            return False
        return True


class PolicyTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt ships no types
    """Ask the policy (through the gate) about every PUBLISH, SUBSCRIBE and delivery."""

    @dataclass
    class Config:
        """Plugin configuration: the gate shared with the broker."""

        gate: Any = None

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.gate = _gate(self)

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        """Allow or refuse one action.

        Args:
            session: the acting (PUBLISH, SUBSCRIBE) or receiving (RECEIVE) session.
            topic: the topic, or the topic filter for SUBSCRIBE.
            action: what is being done.

        Returns:
            True to allow. A refused PUBLISH is dropped (MQTT 3.1.1 has no negative PUBACK),
            a refused SUBSCRIBE gets return code 0x80 (MQTT-3.9.3).
        """
        if topic is None:
            return False
        return ask_gate(self.gate, session, topic, action)


def ask_gate(gate: Gate, session: Session | None, topic: str, action: Action | None) -> bool:
    """The gate's answer for one topic action; anything it does not know is refused."""
    client_id = session.client_id if session is not None else None
    if action is Action.PUBLISH:
        return gate.publish(client_id, topic, time.monotonic())
    if action is Action.SUBSCRIBE:
        return gate.subscribe(client_id, topic)
    if action is Action.RECEIVE:
        return gate.receive(client_id)
    return False
