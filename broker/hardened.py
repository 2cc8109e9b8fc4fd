"""amqtt's broker with the gaps closed that configuration cannot close.

Measured on amqtt 0.12.1 (pinned ``<0.13``: these overrides follow its private methods):

* its listener context is built with ``CERT_OPTIONAL`` and no CRL, and its configuration
  refuses keys to change that -> the TLS layer is :class:`broker.tls.TlsServer` (required
  client certificates, CRL, swappable context, 32 KiB read buffers);
* it ends the existing session of a client id (clean session: deletes it; otherwise takes it
  over) **before** it authenticates the newcomer, so any peer could knock any device offline
  by naming its client id -> the CONNECT is decided by the gate first, and a client id must
  be the certificate's identity (MQTT-3.1.4-2 then only ever replaces one's own session);
* with clean session it deletes the old session without closing the old connection, leaving
  a zombie -> the old connection is closed first (MQTT-3.1.4-2);
* a resumed persistent session keeps the *previous* connection's TLS object -> refreshed;
* the will message is routed without the topic ACL -> the will topic is checked at CONNECT;
* no timeout for the CONNECT packet, no packet size limit (a 256 MB remaining length is
  buffered) -> both bounded; any exception while reading a peer ends that peer only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from amqtt.adapters import StreamReaderAdapter, WriterAdapter
from amqtt.contexts import Action, ListenerConfig, ListenerType
from amqtt.errors import AMQTTError, MQTTError
from amqtt.mqtt.connack import IDENTIFIER_REJECTED, NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from broker.gate import ClientIdRejected, Gate
from broker.plugins import ask_gate, peer_der
from broker.policy import AccessDenied, Role
from broker.routing import CoalescingWriter, RoutingBroker
from broker.tls import TlsServer

log = logging.getLogger("medtwin.broker")


class PacketTooLarge(Exception):
    """A peer announced a packet larger than the broker accepts.

    Not an amqtt error on purpose: amqtt's reader loop skips those and reads on (out of step
    with the stream); any other exception ends the connection.
    """


class BoundedReader(StreamReaderAdapter):  # type: ignore[misc]  # amqtt ships no types
    """amqtt's stream reader that refuses reads longer than ``max_packet`` bytes.

    amqtt reads a packet's body with one ``read(remaining_length)``; refusing it before the
    bytes are buffered bounds the memory one peer can make the broker hold (MQTT-2.2.3
    allows up to 256 MB).
    """

    def __init__(self, reader: asyncio.StreamReader, max_packet: int) -> None:
        super().__init__(reader)
        self._max = max_packet

    async def read(self, n: int = -1) -> bytes:
        """Read exactly ``n`` bytes (amqtt's contract), refusing oversized reads.

        Raises:
            PacketTooLarge: ``n`` exceeds the limit (or is unbounded).
        """
        if n < 0 or n > self._max:
            raise PacketTooLarge(f"packet longer than {self._max} bytes")
        data: bytes = await super().read(n)
        return data


class HardenedBroker(RoutingBroker):
    """An amqtt broker whose sessions are decided by a :class:`~broker.gate.Gate`.

    Args:
        config: amqtt configuration (plugins must include the medtwin plugins on ``gate``).
        gate: the gate.
        tls: the TLS server that accepts connections (its context is swappable).
        max_packet: largest MQTT packet accepted, bytes.
        connect_timeout: seconds a peer has to send CONNECT after the handshake.
    """

    def __init__(self, config: dict[str, Any], gate: Gate, tls: TlsServer,
                 max_packet: int, connect_timeout: float) -> None:
        super().__init__(config)
        self.gate = gate
        self.tls = tls
        self.max_packet = max_packet
        self.connect_timeout = connect_timeout
        gate.on_cut = self._cut_soon
        self._background: set[asyncio.Task[bool]] = set()

    async def _create_server_instance(self, listener_name: str, listener_type: ListenerType,
                                      address: str | None, port: int,
                                      ssl_context: Any) -> asyncio.Server:
        if listener_type is not ListenerType.TCP:
            raise AMQTTError("the hardened broker serves MQTT over mutual TLS only")

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._guarded(reader, writer, listener_name)

        return await self.tls.listen(address or "127.0.0.1", port, on_client)

    @staticmethod
    def _create_ssl_context(listener: ListenerConfig) -> Any:
        return None  # TLS is the TlsServer's: amqtt's own context is CERT_OPTIONAL, no CRL

    async def _guarded(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       listener_name: str) -> None:
        """Serve one connection; nothing a peer sends may escape as an exception."""
        try:
            await self._client_connected(listener_name, BoundedReader(reader, self.max_packet),
                                         CoalescingWriter(writer))
        except Exception as exc:  # a peer's bytes end its connection, never the broker
            log.info("connection ended: %s", type(exc).__name__)
        finally:  # stock amqtt leaves the socket open after a refused or malformed CONNECT
            if not writer.is_closing():
                writer.close()

    async def _initialize_client_session(self, reader: Any, writer: WriterAdapter,
                                         remote_address: str, remote_port: int
                                         ) -> tuple[BrokerProtocolHandler, Session]:
        """Read CONNECT, decide it by the gate, then resume or create the session."""
        try:
            handler, session = await asyncio.wait_for(
                BrokerProtocolHandler.init_from_connect(reader, writer, self.plugins_manager),
                self.connect_timeout)  # MQTT 3.1.1 section 3.1: close if no CONNECT in time
        except (AMQTTError, MQTTError):
            raise
        except Exception as exc:  # timeout, oversized or malformed CONNECT
            await _close(writer)
            raise AMQTTError(f"no valid CONNECT: {type(exc).__name__}") from None
        client_id = session.client_id or ""
        will = session.will_topic if session.will_flag else None
        try:
            admission = self.gate.admit(peer_der(session), client_id, will, time.monotonic())
        except ClientIdRejected:
            await _refuse(writer, IDENTIFIER_REJECTED)  # MQTT-3.2.2-3, return code 0x02
            raise MQTTError("client id is not the certificate's identity") from None
        except AccessDenied as exc:
            await _refuse(writer, NOT_AUTHORIZED)  # return code 0x05
            raise MQTTError(f"connect refused: {exc}") from None
        session.username = admission.principal.name  # like Mosquitto's use_identity_as_username
        session.password = None
        return handler, await self._attach_session(session, writer)

    async def _attach_session(self, session: Session, writer: WriterAdapter) -> Session:
        """amqtt's session resumption, with MQTT-3.1.4-2 applied to the old connection."""
        client_id = session.client_id
        old = self._sessions.get(client_id)
        if old is not None and old[0].transitions.is_connected():
            old[0].will_flag = False  # a replaced connection is not an abnormal loss
            await self.end_connection(old[1])
        if old is not None:  # what the old connection sent and was acknowledged goes on
            await self._route_acknowledged(old[0], old[1])
        if session.clean_session:
            await self._delete_session(client_id)  # MQTT-3.1.2-6
            session.parent = 0
        elif old is not None:
            existing = old[0]
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain",
                         "keep_alive", "username", "password", "ssl_object",
                         "remote_address", "remote_port"):
                setattr(existing, name, getattr(session, name))
            session = existing
            session.parent = 1  # MQTT-3.2.2-2: session present
        else:
            session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return session

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        """Ask the gate directly (the plugin manager would create a task per call); the
        plugins stay configured for a stock broker and give the same answers."""
        return ask_gate(self.gate, session, topic, action)

    def may_receive(self, session: Session, topic: str) -> bool:
        """A session may be sent messages while its identity stays admitted and unrevoked."""
        return self.gate.receive(session.client_id)

    def drains_first(self, client_id: str) -> bool:
        """Devices publish telemetry: an orderly stop ends them first, so that what they sent
        reaches the cloud before the cloud's connection closes."""
        who = self.gate.principal(client_id)
        return who is not None and who.role is Role.DEVICE

    def _cut_soon(self, client_id: str) -> None:
        task = asyncio.ensure_future(self.disconnect(client_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def disconnect(self, client_id: str, *, forget: bool = False) -> bool:
        """End a client's connection (without its will); with ``forget``, also its session.

        Returns:
            True if there was a session to act on.
        """
        entry = self._sessions.get(client_id)
        if entry is None:
            return False
        entry[0].will_flag = False
        if forget:
            self.gate.forget(client_id)
            await self.end_connection(entry[1])
            await self._cleanup_session(client_id)
        else:
            await self.end_connection(entry[1])
        return True


async def _refuse(writer: WriterAdapter, code: int) -> None:
    try:
        await ConnackPacket.build(0, code).to_stream(writer)
    finally:
        await _close(writer)


async def _close(writer: WriterAdapter) -> None:
    try:
        await writer.close()
    except Exception:  # the peer may already be gone
        log.debug("close failed", exc_info=True)
