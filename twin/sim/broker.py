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

from broker.policy import BrokerPolicy, Principal
from twin.core.subscriptions import SubscriptionTree
from twin.sim.network import LatencySampler, Link


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
    """

    principal: Principal
    core: Any
    link: Link
    latency: LatencySampler
    index: int = -1
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

    def connect(self, client: Endpoint) -> None:
        """Open ``client``'s session.

        Raises:
            AccessDenied: the policy refused the identity (e.g. revoked).
        """
        self.policy.authorize_connect(client.principal)

    def subscribe(self, client: Endpoint, topic_filter: str) -> None:
        """Add a subscription for ``client``.

        Raises:
            AccessDenied: the filter is malformed or reaches topics the client may not read.
        """
        self.policy.authorize_subscribe(client.principal, topic_filter)
        self._subscriptions.add(topic_filter, client)

    def publish(self, sender: Endpoint, topic: str) -> tuple[Endpoint, ...]:
        """Authorise a publish and return the clients it must be delivered to.

        Raises:
            AccessDenied: the sender may not publish to ``topic``.
        """
        self.policy.authorize_publish(sender.principal, topic)
        return self._subscriptions.match(topic)
