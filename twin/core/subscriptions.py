"""A subscription tree: which subscribers want a topic, in time proportional to its depth.

A broker with 10,000 devices each subscribed to its own command topic cannot test every filter
for every message; a trie keyed by topic level finds the matches by walking only the branches a
topic can reach (the literal level, ``+`` and ``#``), as production brokers do. Results are
cached per topic until the subscriptions change, since a fleet publishes to the same topics
over and over while subscribing rarely.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from twin.core.topics import check_filter

V = TypeVar("V", bound=Hashable)
_CACHE_LIMIT = 200_000


class _Node(Generic[V]):
    __slots__ = ("children", "subscribers")

    def __init__(self) -> None:
        self.children: dict[str, _Node[V]] = {}
        self.subscribers: dict[V, None] = {}  # an ordered set: delivery order is deterministic


class SubscriptionTree(Generic[V]):
    """Maps topic filters to subscribers; ``match`` returns every subscriber of a topic."""

    def __init__(self) -> None:
        self._root: _Node[V] = _Node()
        self._count = 0
        self._cache: dict[str, tuple[V, ...]] = {}

    def __len__(self) -> int:
        return self._count

    def add(self, topic_filter: str, subscriber: V) -> None:
        """Subscribe ``subscriber`` to ``topic_filter`` (idempotent).

        Raises:
            TopicError: if the filter is malformed.
        """
        node = self._root
        for level in check_filter(topic_filter).split("/"):
            node = node.children.setdefault(level, _Node())
        if subscriber not in node.subscribers:
            node.subscribers[subscriber] = None
            self._count += 1
            self._cache.clear()

    def remove(self, topic_filter: str, subscriber: V) -> bool:
        """Unsubscribe; returns whether the subscription existed."""
        node: _Node[V] | None = self._root
        for level in topic_filter.split("/"):
            node = node.children.get(level) if node else None
        if node is None or subscriber not in node.subscribers:
            return False
        del node.subscribers[subscriber]
        self._count -= 1
        self._cache.clear()
        return True

    def match(self, topic: str) -> tuple[V, ...]:
        """Every subscriber with a filter matching ``topic``, each once, in a stable order."""
        cached = self._cache.get(topic)
        if cached is None:
            found: dict[V, None] = {}
            self._walk(self._root, topic.split("/"), 0, found, topic.startswith("$"))
            cached = self._cache[topic] = tuple(found)
            if len(self._cache) > _CACHE_LIMIT:
                self._cache.pop(next(iter(self._cache)))  # oldest first: bounded memory
        return cached

    def _walk(
        self, node: _Node[V], levels: list[str], i: int, out: dict[V, None], dollar: bool
    ) -> None:
        wild_ok = not (dollar and i == 0)  # MQTT-4.7.2-1
        if wild_ok and (hash_node := node.children.get("#")) is not None:
            out.update(hash_node.subscribers)
        if i == len(levels):
            out.update(node.subscribers)
            return
        if (child := node.children.get(levels[i])) is not None:
            self._walk(child, levels, i + 1, out, dollar)
        if wild_ok and (plus := node.children.get("+")) is not None:
            self._walk(plus, levels, i + 1, out, dollar)
