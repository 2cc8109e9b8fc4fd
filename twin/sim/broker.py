"""The simulated MQTT broker: sessions, subscriptions and routing, under the shared policy.

It applies exactly the :class:`broker.policy.BrokerPolicy` the real broker's plugins will call,
so a topic-abuse attack is refused (or let through, with the defence off) for the same reason
in both modes. Routing uses the subscription trie of :mod:`twin.core.subscriptions`; sessions
are persistent (clean start off), so a QoS 1 message for an offline subscriber waits in its
session queue until it reconnects.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from broker.policy import AccessDenied, BrokerPolicy, Principal
from twin.core.subscriptions import SubscriptionTree
from twin.sim.network import LatencySampler, Link


class CertificateExpired(AccessDenied):
    """The client's certificate is past its notAfter (counted apart from revocations)."""


@dataclass(eq=False, slots=True)
class Endpoint:
    """A client of the simulated broker: a wearable or the cloud, with its link and timers.

    Attributes:
        principal: the identity its certificate carries.
        core: the sans-IO core that handles its events.
        link: its connection.
        latency: the delay sampler of its access network.
        timers: timer name -> generation (a restarted or cancelled timer bumps it).
        offline: messages the broker holds for it while its session is down.
        index: position in the fleet (-1 for the cloud).
        serial: the serial of the certificate it presents (0: the run has no platform PKI).
        expires: that certificate's notAfter in run seconds (infinite without a PKI).
    """

    principal: Principal
    core: Any
    link: Link
    latency: LatencySampler
    index: int = -1
    serial: int = 0
    expires: float = float("inf")
    timers: dict[str, int] = field(default_factory=dict)
    offline: deque[tuple[str, bytes]] = field(default_factory=deque)


class SimBroker:
    """Routes publishes to subscribers after the policy allows them.

    Args:
        policy: the access policy (shared with the real broker).
    """

    def __init__(self, policy: BrokerPolicy) -> None:
        self.policy = policy
        self._subscriptions: SubscriptionTree[Endpoint] = SubscriptionTree()
        self._filters: dict[Endpoint, set[str]] = {}
        self._revoked_serials: frozenset[int] = frozenset()
        self.crl_number = 0

    def load_crl(self, crl: x509.CertificateRevocationList) -> None:
        """Take a newly published CRL (the real broker's ``reload_crl``).

        Raises:
            AccessDenied: a CRL whose number is not newer than the one in force (RFC 5280
                5.2.3: replaying an older CRL would un-revoke devices); it is not loaded.
        """
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        if number <= self.crl_number:
            raise AccessDenied(f"CRL {number} is not newer than CRL {self.crl_number}")
        self._revoked_serials = frozenset(entry.serial_number for entry in crl)
        self.crl_number = number

    def connect(self, client: Endpoint, now: float = 0.0) -> None:
        """Open ``client``'s session: the checks of its certificate in the TLS handshake
        (validity period, CRL), then the policy.

        Raises:
            AccessDenied: the certificate has expired (RFC 5280 6.1.3 (a)(2)) or is on the CRL
                (RFC 5280 6.3), or the policy refused the identity (e.g. revoked).
        """
        if now > client.expires:
            raise CertificateExpired("certificate expired")
        if client.serial and client.serial in self._revoked_serials:
            raise AccessDenied("certificate revoked (on the CRL)")
        self.policy.authorize_connect(client.principal)

    def drop(self, client: Endpoint) -> None:
        """End ``client``'s session and forget its subscriptions (a revoked identity's
        session is not kept for a reconnect that will be refused)."""
        for topic_filter in self._filters.pop(client, set()):
            self._subscriptions.remove(topic_filter, client)

    def subscribe(self, client: Endpoint, topic_filter: str) -> None:
        """Add a subscription for ``client``.

        Raises:
            AccessDenied: the filter is malformed or reaches topics the client may not read.
        """
        self.policy.authorize_subscribe(client.principal, topic_filter)
        self._subscriptions.add(topic_filter, client)
        self._filters.setdefault(client, set()).add(topic_filter)

    def publish(self, sender: Endpoint, topic: str) -> tuple[Endpoint, ...]:
        """Authorise a publish and return the clients it must be delivered to.

        Raises:
            AccessDenied: the sender may not publish to ``topic``.
        """
        self.policy.authorize_publish(sender.principal, topic)
        return self._subscriptions.match(topic)
