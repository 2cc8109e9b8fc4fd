"""A subscription tree: which subscribers want a topic, in time proportional to its depth.

A broker with 10,000 devices each subscribed to its own command topic cannot test every filter
for every message; a trie keyed by topic level finds the matches by walking only the branches a
topic can reach (the literal level, ``+`` and ``#``), as production brokers do.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from twin.core.topics import check_filter

V = TypeVar("V", bound=Hashable)


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

    def remove(self, topic_filter: str, subscriber: V) -> bool:
        """Unsubscribe; returns whether the subscription existed."""
        node: _Node[V] | None = self._root
        for level in topic_filter.split("/"):
            node = node.children.get(level) if node else None
        if node is None or subscriber not in node.subscribers:
            return False
        del node.subscribers[subscriber]
        self._count -= 1
        return True

    def match(self, topic: str) -> list[V]:
        """Every subscriber with a filter matching ``topic``, each once, in a stable order."""
        levels = topic.split("/")
        found: dict[V, None] = {}
        self._walk(self._root, levels, 0, found, topic.startswith("$"))
        return list(found)

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
