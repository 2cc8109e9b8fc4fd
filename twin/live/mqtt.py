"""The one module that wraps paho-mqtt for the live driver (ARCHITECTURE.md section 5).

A :class:`MqttLink` is one mutual-TLS MQTT connection with its own certificate and key. It
runs paho's network loop in paho's own thread (``loop_start``) and hands every transport event
(CONNACK, disconnect, message, PUBACK, SUBACK) to a :class:`LinkListener` *on the driver's
asyncio loop* via ``call_soon_threadsafe``, so the sans-IO cores are only ever touched from
that one thread. ``publish``/``subscribe``/``connect``/``disconnect`` are called from the
asyncio thread; paho guards its own state with locks.

Measured pitfalls (ARCHITECTURE.md, "Measured") this module handles:

* always ``CallbackAPIVersion.VERSION2``;
* ``TCP_NODELAY`` on every socket, or each CONNECT waits ~40 ms on the peer's delayed ACK;
* with TLS 1.3 a refused client certificate shows as a disconnect right after connecting,
  not as an exception, so a refusal reaches the listener as ``on_down``;
* paho's threaded loop uses ``select()``, which breaks past ~340 clients per process: the
  driver refuses fleets larger than :data:`MAX_LINKS`.
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

MAX_LINKS = 300
"""Connections one process may hold with paho's select()-based threaded loop."""
KEEPALIVE_S = 30


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


class MqttLink:
    """One mTLS MQTT 3.1.1 connection whose events go to ``listener`` on ``loop``.

    Args:
        client_id: the MQTT client id (the certificate identity: the UEID, or "cloud").
        context: the TLS context with the client's certificate.
        host: broker host.
        port: broker port.
        loop: the driver's event loop.
        listener: who hears about the link's events.
        tag: the listener's handle for this link (a device index, or -1 for the cloud).
    """

    def __init__(self, client_id: str, context: ssl.SSLContext, host: str, port: int,
                 loop: asyncio.AbstractEventLoop, listener: LinkListener, tag: int) -> None:
        self.client_id = client_id
        self.tag = tag
        self.host, self.port = host, port
        self._loop = loop
        self._listener = listener
        self._started = False
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                        protocol=mqtt.MQTTv311, clean_session=True)
        c.tls_set_context(context)
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        c.max_inflight_messages_set(100)
        c.max_queued_messages_set(0)  # no cap: the core's bounded buffer is the cap
        c.on_socket_open = _nodelay
        c.on_connect = self._connected
        c.on_connect_fail = self._failed
        c.on_disconnect = self._disconnected
        c.on_message = self._message
        c.on_publish = self._published
        c.on_subscribe = self._subscribed
        self.client = c

    # ------------------------------------------------------------------ from the driver

    def connect(self) -> None:
        """Start connecting (non-blocking). While paho's thread runs it also reconnects by
        itself after a loss; a new thread is started only after :meth:`disconnect`."""
        if self._started:
            return
        self._started = True
        self.client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S)
        self.client.loop_start()

    def disconnect(self) -> None:
        """Close the session on purpose (paho then stops reconnecting)."""
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False

    def publish(self, topic: str, payload: bytes, qos: int) -> None:
        """Send a PUBLISH; with QoS 1 paho keeps it until PUBACK, re-sending on reconnect."""
        self.client.publish(topic, payload, qos)

    def subscribe(self, topic_filter: str, qos: int) -> None:
        """Send a SUBSCRIBE."""
        self.client.subscribe(topic_filter, qos)

    # ------------------------------------------------------------------ from paho's thread

    def _post(self, fn: Any, *args: Any) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, self, *args)

    def _connected(self, _c: object, _u: object, _flags: object, reason: Any,
                   _props: object) -> None:
        if reason.is_failure:
            self._post(self._listener.on_down, f"refused: {reason}")
        else:
            self._post(self._listener.on_up)

    def _failed(self, _c: object, _u: object) -> None:
        self._post(self._listener.on_down, "unreachable")

    def _disconnected(self, _c: object, _u: object, _flags: object, reason: Any,
                      _props: object) -> None:
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


def _nodelay(_client: object, _userdata: object, sock: Any) -> None:
    """Disable Nagle: small MQTT packets otherwise wait on the peer's delayed ACK."""
    with contextlib.suppress(OSError, AttributeError):  # not a TCP socket (a test double)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
