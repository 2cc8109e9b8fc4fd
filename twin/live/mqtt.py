"""The one module that wraps paho-mqtt for the live driver (ARCHITECTURE.md section 5).

A :class:`MqttLink` is one mutual-TLS MQTT connection with its own certificate and key. Its
socket is driven by the driver's asyncio event loop (epoll), following paho's documented
external-loop interface: paho tells us when a socket opens or closes and when it wants to
write (``on_socket_*``); the loop calls ``loop_read``/``loop_write`` when the socket is ready
and a :class:`LinkPool` ticker calls ``loop_misc`` (keep-alive) for every link. There are no
paho threads, so thousands of links share one thread and the cores need no locks; every
transport event (CONNACK, disconnect, message, PUBACK, SUBACK) reaches the
:class:`LinkListener` through ``loop.call_soon``, outside paho's own call stack.

Measured pitfalls (ARCHITECTURE.md, "Measured") this module handles:

* always ``CallbackAPIVersion.VERSION2``;
* paho's threaded loop uses ``select()`` and breaks past ~340 clients per process: not used;
* paho's ``connect`` does a *blocking* TLS handshake, which would deadlock against a broker
  on the same event loop (the embedded one) and stall every other link: :class:`_Client`
  leaves the handshake to OpenSSL's implicit handshake on the first non-blocking write, so
  it proceeds through ``loop_write``/``loop_read`` like any other traffic;
* decrypted bytes can wait inside the TLS object where epoll cannot see them: after each
  read the link keeps reading while ``SSLSocket.pending()`` says so;
* ``TCP_NODELAY`` on every socket, or each CONNECT waits ~40 ms on the peer's delayed ACK;
* with TLS 1.3 a refused client certificate shows as a disconnect right after connecting,
  not as an exception, so a refusal reaches the listener as ``on_down``.

Reconnecting is not paho's job here: the wearable core decides when (its back-off with
jitter) and the driver calls :meth:`MqttLink.connect` again. QoS 1 messages that were not
acknowledged stay in paho's client and are re-sent with DUP on the next CONNACK (MQTT-4.4.0-1),
whether or not the broker still had the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

KEEPALIVE_S = 30
CONNECT_TIMEOUT_S = 30.0
"""Wall seconds from opening a socket to its CONNACK before the attempt is abandoned."""
MISC_INTERVAL_S = 1.0
"""How often the pool gives every link paho's housekeeping (keep-alive PINGREQ)."""


class LinkListener(Protocol):
    """What a link reports, always called on the driver's asyncio loop."""

    def on_up(self, link: MqttLink) -> None:
        """CONNACK accepted."""

    def on_down(self, link: MqttLink, reason: str) -> None:
        """The connection failed, was refused or was lost."""

    def on_message(self, link: MqttLink, topic: str, payload: bytes) -> None:
        """A PUBLISH arrived."""

    def on_acked(self, link: MqttLink) -> None:
        """A QoS 1 PUBLISH was acknowledged (PUBACK)."""

    def on_subscribed(self, link: MqttLink, refused: int) -> None:
        """A SUBACK arrived; ``refused`` filters were refused (MQTT-3.9.3, code 0x80)."""


def client_context(ca: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS 1.2+ client context that checks the broker against ``ca`` and presents
    ``cert``/``key`` (the device's PUF-derived key, or the cloud service key)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8996
    ctx.load_cert_chain(cert, key)
    return ctx


class _Client(mqtt.Client):
    """paho's client with a non-blocking TLS handshake (see the module docstring).

    Overrides paho 2.x's private ``_ssl_wrap_socket`` (pinned ``paho-mqtt>=2,<3``): the
    socket is wrapped in client mode and made non-blocking; OpenSSL performs the handshake
    inside the first ``SSL_write`` of CONNECT and paho treats ``SSLWantRead``/``SSLWantWrite``
    as "try again when ready". The server name is checked by OpenSSL during that handshake
    because the context has ``check_hostname`` set.
    """

    def _ssl_wrap_socket(self, tcp_sock: socket.socket) -> ssl.SSLSocket:
        context = self._ssl_context
        assert context is not None
        tcp_sock.setblocking(False)
        return context.wrap_socket(tcp_sock, server_hostname=self._host,
                                   do_handshake_on_connect=False)


class LinkPool:
    """The links of one run and the ticker that gives them paho's housekeeping.

    Args:
        loop: the driver's event loop, which also serves every link's socket.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.links: list[MqttLink] = []
        self._ticker: asyncio.TimerHandle | None = None

    def add(self, link: MqttLink) -> None:
        """Serve ``link`` from this pool (starts the ticker on the first link)."""
        self.links.append(link)
        if self._ticker is None:
            self._ticker = self.loop.call_later(MISC_INTERVAL_S, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        for link in self.links:
            link.housekeeping(now)
        self._ticker = self.loop.call_later(MISC_INTERVAL_S, self._tick)

    async def close(self, grace_s: float = 2.0) -> None:
        """Disconnect every link, give the DISCONNECTs ``grace_s`` to leave, then close."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        for link in self.links:
            link.disconnect()
        deadline = self.loop.time() + grace_s
        while any(link.open for link in self.links) and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        for link in self.links:
            link.abort()


class MqttLink:
    """One mTLS MQTT 3.1.1 connection whose events go to ``listener`` on the pool's loop.

    Args:
        client_id: the MQTT client id (the certificate identity: the UEID, or "cloud").
        context: the TLS context with the client's certificate.
        host: broker host.
        port: broker port.
        pool: the pool whose loop serves this link's socket.
        listener: who hears about the link's events.
        tag: the listener's handle for this link (a device index, or -1 for the cloud).
        clean_session: False keeps the broker-side session (subscriptions, queued QoS 1
            messages) across disconnects (MQTT-3.1.2-4).
    """

    def __init__(self, client_id: str, context: ssl.SSLContext, host: str, port: int,
                 pool: LinkPool, listener: LinkListener, tag: int, *,
                 clean_session: bool = False) -> None:
        self.client_id = client_id
        self.tag = tag
        self.host, self.port = host, port
        self._loop = pool.loop
        self._listener = listener
        self._sock: Any = None
        self._attempt_started: float | None = None  # loop time of the open attempt
        self._wanted = False  # connect() called and disconnect() not since
        self._flush_pending = False  # a write is scheduled for the next loop turn
        self._watching = False  # the socket is registered for writability
        self.unreachable = False
        """True during a network outage: connection attempts fail at once."""
        self._first = True
        c = _Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=mqtt.MQTTv311, clean_session=clean_session)
        c.tls_set_context(context)
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)  # no cap: the core's bounded buffer is the cap
        c.on_socket_open = self._socket_open
        c.on_socket_close = self._socket_close
        c.on_socket_register_write = self._want_write
        c.on_socket_unregister_write = self._done_writing
        c.on_connect = self._connected
        c.on_disconnect = self._disconnected
        c.on_message = self._message
        c.on_publish = self._published
        c.on_subscribe = self._subscribed
        self.client = c
        pool.add(self)

    @property
    def open(self) -> bool:
        """Whether the link has a socket (connecting or connected)."""
        return self._sock is not None

    # ------------------------------------------------------------------ from the driver

    def connect(self) -> None:
        """Start a connection attempt unless one is open; its outcome arrives as ``on_up``
        or ``on_down``. The TCP connect itself blocks (immediate on loopback)."""
        self._wanted = True
        if self._sock is not None:
            return
        if self.unreachable:
            self._post(self._listener.on_down, "unreachable: network outage")
            return
        try:
            if self._first:
                self._first = False
                self.client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S)
            self.client.reconnect()
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out
            self._abandon()
            self._post(self._listener.on_down, f"unreachable: {type(exc).__name__}")

    def disconnect(self) -> None:
        """Close the session on purpose (a DISCONNECT; no ``on_down`` is reported)."""
        self._wanted = False
        if self._sock is not None:
            self.client.disconnect()

    def abort(self) -> None:
        """Drop the socket without a DISCONNECT (an outage, or the end of a run)."""
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            self._readable()  # paho sees the end of the stream and reports the loss

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Send a PUBLISH; with QoS 1 paho keeps it until PUBACK, re-sending on reconnect."""
        self.client.publish(topic, payload, qos)

    def subscribe(self, topic_filter: str, qos: int) -> None:
        """Send a SUBSCRIBE."""
        self.client.subscribe(topic_filter, qos)

    def housekeeping(self, now: float) -> None:
        """paho's keep-alive work; abandon a connection attempt that is taking too long."""
        if self._sock is None:
            return
        if self._attempt_started is not None and now - self._attempt_started > CONNECT_TIMEOUT_S:
            self.abort()
            return
        self.client.loop_misc()

    # ------------------------------------------------------------------ paho's socket hooks

    def _socket_open(self, _c: object, _u: object, sock: Any) -> None:
        self._sock = sock
        self._attempt_started = self._loop.time()
        with contextlib.suppress(OSError, AttributeError):  # not a TCP socket (a test double)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle wait
        self._loop.add_reader(sock, self._readable)

    def _socket_close(self, _c: object, _u: object, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        self._watching = False
        if sock is self._sock:
            self._sock = None

    def _want_write(self, _c: object, _u: object, sock: Any) -> None:
        # Try the write on the next loop turn first; only a socket that could not take it all
        # is watched for writability (an epoll registration per PUBLISH cost ~6 % of a
        # 1,000-device run).
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush, sock)

    def _flush(self, sock: Any) -> None:
        self._flush_pending = False
        if sock is not self._sock:
            return
        self.client.loop_write()
        if sock is self._sock and self.client.want_write() and not self._watching:
            self._watching = True
            self._loop.add_writer(sock, self._writable)

    def _done_writing(self, _c: object, _u: object, sock: Any) -> None:
        if self._watching:
            self._watching = False
            self._loop.remove_writer(sock)

    def _readable(self) -> None:
        sock = self._sock
        self.client.loop_read()
        # Records already decrypted inside the TLS object do not wake epoll again.
        while sock is not None and sock is self._sock and sock.pending():
            self.client.loop_read()

    def _writable(self) -> None:
        self.client.loop_write()

    def _abandon(self) -> None:
        """Forget a socket paho opened for an attempt that failed before it was served."""
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
            self._watching = False
            with contextlib.suppress(OSError):
                sock.close()

    # ------------------------------------------------------------------ paho's callbacks

    def _post(self, fn: Any, *args: Any) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon(fn, self, *args)

    def _connected(self, _c: object, _u: object, _flags: object, reason: Any,
                   _props: object) -> None:
        self._attempt_started = None
        if reason.is_failure:
            self._post(self._listener.on_down, f"refused: {reason}")
        else:
            self._post(self._listener.on_up)

    def _disconnected(self, _c: object, _u: object, _flags: object, reason: Any,
                      _props: object) -> None:
        self._attempt_started = None
        if self._wanted:
            self._post(self._listener.on_down, f"lost: {reason}")

    def _message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        self._post(self._listener.on_message, message.topic, bytes(message.payload))

    def _published(self, _c: object, _u: object, _mid: int, _reason: object,
                   _props: object) -> None:
        self._post(self._listener.on_acked)

    def _subscribed(self, _c: object, _u: object, _mid: int, codes: list[Any],
                    _props: object) -> None:
        refused = sum(1 for code in codes if getattr(code, "is_failure", False))
        self._post(self._listener.on_subscribed, refused)
