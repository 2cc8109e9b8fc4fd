"""amqtt's broker with message delivery made fast and QoS 1 made to hold: the base of the
hardened broker (:mod:`broker.hardened` adds the security controls on top).

Measured on amqtt 0.12.1 (pinned ``<0.13``: these overrides follow its private methods;
ADR 0012):

* **routing cost grew with the number of subscriptions**: every PUBLISH went through a broadcast
  queue and a task, then was tested against every subscription filter with a debug log call
  per filter; with 1,000 live devices (one command subscription each) that was ~60 % of the
  broker's time and capped delivery near 260 msg/s -> :class:`Subscriptions` keeps a
  :class:`~broker.subindex.FilterIndex` beside amqtt's dict and :meth:`_broadcast_message`
  routes at once, through the trie;
* **acknowledged QoS 1 messages were lost when their publisher disconnected**: amqtt sends
  PUBACK once a message is in the session's delivery queue, and its client loop stops
  reading that queue at the disconnect, so whatever was still queued was never routed (and a
  clean session's queue is then cleared by its session monitor; ARCHITECTURE.md measured
  45-49 % lost) -> what is left is routed when the disconnect is handled, before the session
  counts as disconnected (and again when the loop ends, for its other exits), and a session
  about to be replaced is drained first;
* **topic checks went through a task per plugin call** (one per PUBLISH and one per receiver)
  -> the gate is asked directly (:mod:`broker.hardened`);
* **a restart forgot every persistent session** and dropped the broadcast queue -> an orderly
  :meth:`drain` (devices' connections first, their messages delivered and acknowledged,
  then the rest) and :meth:`sessions_snapshot`/:meth:`restore_sessions`, which carry
  persistent sessions (subscriptions and queued QoS 1 messages) to the next broker, as
  Mosquitto's persistence file does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import ApplicationMessage, Session

from broker.subindex import FilterIndex

log = logging.getLogger("medtwin.broker")

DRAIN_TIMEOUT_S = 10.0
"""Longest an orderly stop waits for acknowledged messages to reach their subscribers."""


class CoalescingWriter(StreamWriterAdapter):  # type: ignore[misc]  # amqtt ships no types
    """amqtt's stream writer that sends the packets written in one loop turn together.

    amqtt writes every packet on its own (a PUBACK, a PUBLISH to the cloud); through TLS each
    write is one record and one ``send()``: py-spy put ~27 % of the broker's time in those
    sends at 1,000 msg/s. Packets written in the same turn of the event loop (a burst of
    deliveries to the cloud, a burst of PUBACKs) now leave as one write. Order is kept;
    ``close`` sends what is pending first.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        super().__init__(writer)
        self._pending = bytearray()
        self._scheduled = False

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the end of this loop turn."""
        if self.is_closed:
            return
        self._pending += data
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._pending and not self.is_closed:
            self._writer.write(bytes(self._pending))
        self._pending.clear()

    async def close(self) -> None:
        """Send what is pending, then close as amqtt does."""
        self._flush()
        await super().close()


class Subscriptions(dict[str, list[tuple[Session, int]]]):
    """amqtt's ``filter -> [(session, qos)]`` dict, indexed by a filter trie, iterated on a
    snapshot.

    Snapshot iteration: amqtt 0.12.1 awaits inside ``for k, v in self._subscriptions.items()``;
    a SUBSCRIBE handled meanwhile adds a filter and the loop died with "dictionary changed
    size during iteration" (seen 2-12 times per 300-device connection storm).
    """

    def __init__(self, initial: dict[str, list[tuple[Session, int]]] | None = None) -> None:
        super().__init__()
        self.index = FilterIndex()
        for key, value in (initial or {}).items():
            self[key] = value

    def __setitem__(self, key: str, value: list[tuple[Session, int]]) -> None:
        self.index.add(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.index.remove(key)

    def pop(self, key: str, *default: Any) -> Any:
        """As ``dict.pop``, keeping the index in step."""
        self.index.remove(key)
        return super().pop(key, *default)

    def clear(self) -> None:
        """As ``dict.clear``, with the index."""
        super().clear()
        self.index = FilterIndex()

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> list[tuple[str, list[tuple[Session, int]]]]:  # type: ignore[override]
        return list(super().items())


@dataclass(frozen=True)
class SessionState:
    """What a persistent session keeps across a broker restart (MQTT-3.1.2-4)."""

    client_id: str
    username: str | None
    subscriptions: tuple[tuple[str, int], ...]
    queued: tuple[ApplicationMessage, ...]


class RoutingBroker(Broker):  # type: ignore[misc]  # amqtt ships no types
    """amqtt's broker with trie routing, QoS 1 drained at disconnect and orderly restarts.

    Subclasses decide who may receive a message in :meth:`may_receive` and which sessions
    are publishers to disconnect first in :meth:`drains_first`.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._subscriptions = Subscriptions(self._subscriptions)  # type: ignore[has-type]
        self._deliveries: set[asyncio.Task[Any]] = set()
        self._loops: dict[str, asyncio.Task[Any]] = {}
        self.routed = 0
        """Deliveries started (one per message and receiving session)."""

    # ------------------------------------------------------------------ policy hooks

    def may_receive(self, session: Session, topic: str) -> bool:
        """Whether ``session`` may be sent a message on ``topic`` (default: yes)."""
        return True

    def drains_first(self, client_id: str) -> bool:
        """Whether an orderly stop disconnects this client before the others (default: no)."""
        return False

    # ------------------------------------------------------------------ routing

    async def _broadcast_message(self, session: Session | None, topic: str | None,
                                 data: bytes | bytearray | None,
                                 force_qos: int | None = None) -> None:
        """Route one message now, to every matching subscription (stock: via a queue)."""
        if not topic or data is None:
            return
        for a_filter in self._subscriptions.index.match(topic):
            for target, sub_qos in list(self._subscriptions.get(a_filter, ())):
                qos = sub_qos if force_qos is None else force_qos
                if not self.may_receive(target, topic):
                    continue
                if target.transitions.state != "connected":
                    # MQTT-3.1.2-5: a persistent session keeps QoS 1/2 messages while away.
                    if not target.clean_session and qos in (1, 2) and not target.is_anonymous:
                        await self._retain_broadcast_message(
                            {"session": session, "topic": topic, "data": data}, qos, target)
                    continue
                handler = self._get_handler(target)
                if handler is not None:
                    task = asyncio.ensure_future(handler.mqtt_publish(topic, data, qos,
                                                                      retain=False))
                    self.routed += 1
                    self._deliveries.add(task)
                    task.add_done_callback(self._delivered)

    def _delivered(self, task: asyncio.Task[Any]) -> None:
        self._deliveries.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("delivery failed: %r", task.exception())

    async def _client_message_loop(self, client_session: Session,
                                   handler: BrokerProtocolHandler) -> None:
        """amqtt's loop, then route what the peer sent and was acknowledged but not routed."""
        client_id = client_session.client_id or ""
        current = asyncio.current_task()
        if current is not None:
            self._loops[client_id] = current
        try:
            await super()._client_message_loop(client_session, handler)
        finally:
            await self._route_acknowledged(client_session, handler)
            if self._loops.get(client_id) is current:
                del self._loops[client_id]

    async def _handle_disconnect(self, client_session: Session, handler: BrokerProtocolHandler,
                                 disconnect_waiter: asyncio.Future[Any]) -> None:
        """Route what is left in the delivery queue *before* the session is marked
        disconnected: amqtt's session monitor clears a disconnected clean session's queues
        within a second, so routing after that point still lost messages."""
        await self._route_acknowledged(client_session, handler)
        await super()._handle_disconnect(client_session, handler, disconnect_waiter)

    async def _route_acknowledged(self, session: Session, handler: Any) -> None:
        """Route the messages left in ``session``'s delivery queue (already PUBACKed)."""
        queue = session.delivered_message_queue
        loop = asyncio.get_running_loop()
        while not queue.empty():
            message = queue.get_nowait()
            done = loop.create_future()
            done.set_result(message)
            await self._handle_message_delivery(session, handler, done)

    async def end_connection(self, handler: BrokerProtocolHandler) -> None:
        """Close a client's connection, then stop its handler.

        The transport is aborted first: amqtt stops a handler by cancelling its reader task,
        and under Python 3.11's ``asyncio.wait_for`` a read that completes as the
        cancellation arrives swallows it, so a peer that keeps sending (a flood) kept its
        reader alive and the stop waited forever. With the socket gone the reader ends.
        """
        transport = getattr(getattr(handler.writer, "_writer", None), "transport", None)
        if transport is not None:
            transport.abort()
        await self._stop_handler(handler)

    # ------------------------------------------------------------------ orderly stop

    async def drain(self) -> None:
        """Stop accepting, end the :meth:`drains_first` clients' connections, and wait (at
        most :data:`DRAIN_TIMEOUT_S`) until what they sent has been routed and acknowledged
        by its receivers. Call before :meth:`shutdown` for a restart that loses nothing."""
        for server in self._servers.values():
            server.instance.close()  # stop accepting; live connections stay
        first = [(cid, entry) for cid, entry in list(self._sessions.items())
                 if self.drains_first(cid)]
        for _cid, (_session, handler) in first:
            await self.end_connection(handler)
        loops = [self._loops[cid] for cid, _entry in first if cid in self._loops]
        deadline = asyncio.get_running_loop().time() + DRAIN_TIMEOUT_S
        if loops:
            await asyncio.wait(loops, timeout=DRAIN_TIMEOUT_S)
        while self._deliveries and asyncio.get_running_loop().time() < deadline:
            await asyncio.wait(list(self._deliveries), timeout=0.5)

    async def shutdown(self) -> None:
        """Close every connection (transport first, see :meth:`end_connection`), cancel
        deliveries still waiting for a PUBACK, then amqtt's shutdown. Call :meth:`drain`
        first for an orderly stop."""
        for task in list(self._deliveries):
            task.cancel()
        for _session, handler in list(self._sessions.values()):
            transport = getattr(getattr(handler.writer, "_writer", None), "transport", None)
            if transport is not None:
                transport.abort()
        await super().shutdown()

    def sessions_snapshot(self) -> list[SessionState]:
        """The persistent sessions, with their subscriptions and queued messages."""
        subs: dict[str, list[tuple[str, int]]] = {}
        for a_filter, entries in self._subscriptions.items():
            for session, qos in entries:
                subs.setdefault(session.client_id or "", []).append((a_filter, qos))
        out = []
        for cid, (session, _handler) in self._sessions.items():
            if session.clean_session:
                continue
            queued = []
            while not session.retained_messages.empty():
                queued.append(session.retained_messages.get_nowait())
            out.append(SessionState(cid, session.username, tuple(subs.get(cid, ())),
                                    tuple(queued)))
        return out

    def restore_sessions(self, states: list[SessionState]) -> None:
        """Recreate persistent sessions as offline sessions (call after :meth:`start`)."""
        for state in states:
            handler, session = self.create_offline_session(state.client_id)
            session.clean_session = False
            session.username = state.username
            for message in state.queued:
                session.retained_messages.put_nowait(message)
            self._sessions[state.client_id] = (session, handler)
            for a_filter, qos in state.subscriptions:
                if a_filter not in self._subscriptions:
                    self._subscriptions[a_filter] = []
                self._subscriptions[a_filter].append((session, qos))
