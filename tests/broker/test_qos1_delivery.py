"""QoS 1 on the embedded broker: what it acknowledged reaches the subscriber, even when the
publisher disconnects right after publishing (stock amqtt 0.12.1 lost 45-49 % of those,
ARCHITECTURE.md section 5; closed in ``broker/routing.py``, ADR 0012).

The publisher is a raw MQTT 3.1.1 client over mutual TLS that writes its PUBLISH packets and
its DISCONNECT in one go. Routing is slowed down (5 ms a message, as on a loaded broker), so
the broker reads the DISCONNECT while acknowledged messages still wait in the session's
delivery queue: the case amqtt's client loop dropped (without the fix this test loses most
of them).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from pathlib import Path

import pytest

from broker.embedded import BrokerSettings, BrokerThread
from broker.ratelimit import RateLimits
from broker.routing import RoutingBroker
from broker.tls import TlsFiles
from tests.broker.pki_fixtures import Client, Creds, Pki, telemetry
from tests.broker.test_embedded import FLEET, _wait

pytestmark = pytest.mark.slow
MESSAGES = 200


def _packet(kind: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:  # MQTT 2.2.3 variable-length remaining length
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([kind]) + bytes(encoded) + body


def _text(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


def _publish_then_disconnect(port: int, ca: Path, creds: Creds, tag: int) -> int:
    """Connect, write MESSAGES QoS 1 PUBLISHes and a DISCONNECT at once; count PUBACKs."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(creds.cert, creds.key)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(_packet(0x10, _text("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 30)
                            + _text(creds.name)))
        connack = tls.recv(4)
        assert connack[:2] == b"\x20\x02" and connack[3] == 0, connack
        topic = _text(telemetry(creds))
        burst = b"".join(_packet(0x32, topic + struct.pack("!H", i + 1) + b"%d/%d" % (tag, i))
                         for i in range(MESSAGES))
        tls.sendall(burst + b"\xe0\x00")
        received = b""
        try:
            while chunk := tls.recv(65536):
                received += chunk
        except (OSError, ssl.SSLError):
            pass  # the broker closes after DISCONNECT
    return received.count(b"\x40\x02")  # PUBACK packets (fixed header, length 2)


def test_acknowledged_messages_reach_the_subscriber_when_the_publisher_disconnects(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    route = RoutingBroker._handle_message_delivery

    async def slow_route(self: RoutingBroker, *args: object) -> bool:
        await asyncio.sleep(0.005)
        result: bool = await route(self, *args)
        return result

    monkeypatch.setattr(RoutingBroker, "_handle_message_delivery", slow_route)
    pki = Pki(tmp_path)
    limits = RateLimits(messages_per_s=10_000, message_burst=10_000)  # not what is tested
    with BrokerThread(BrokerSettings(TlsFiles.from_run_dir(tmp_path), limits=limits)) as broker:
        cloud = Client(broker.port, pki.root_pem, pki.cloud())
        assert cloud.connect() and cloud.subscribe(FLEET) == [1]
        acked = sum(_publish_then_disconnect(broker.port, pki.root_pem,
                                             pki.device(f"publisher {n}"), n) for n in range(3))
        assert acked > 0
        _wait(lambda: len(cloud.messages) >= acked, timeout=20)
        assert len({p for _, p in cloud.messages}) >= acked
        cloud.stop()
