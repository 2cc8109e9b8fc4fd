"""The live benchmark's load generator: provisioned devices and a cloud subscriber as paho
clients on one asyncio loop (the live driver's :mod:`twin.live.mqtt`), with timestamps in
the payloads so that end-to-end latency is measured on one clock.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Sequence
from pathlib import Path

from twin.core import topics
from twin.live.identities import Identity
from twin.live.mqtt import LinkPool, MqttLink, client_context

STAMP = struct.Struct("!dI")
PAYLOAD_BYTES = 200  # about a telemetry window's CBOR
STORM_BATCH, STORM_CONNECTING = 50, 100  # as the live driver paces a fleet powering on
DRAIN_S = 10.0


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of sorted ``values`` (nearest rank), rounded to the millisecond."""
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


def _payload(seq: int) -> bytes:
    head = STAMP.pack(time.perf_counter(), seq)
    return head + bytes(PAYLOAD_BYTES - len(head))


class Harness:
    """Devices and a cloud subscriber against one broker.

    Args:
        fleet: the provisioned folder (its root CA and the cloud's credentials).
        devices: the identities to connect.
        tenant: the fleet's tenant.
        port: the broker's port on 127.0.0.1.
    """

    def __init__(self, fleet: Path, devices: Sequence[Identity], tenant: str, port: int) -> None:
        self.fleet, self.devices, self.tenant, self.port = fleet, list(devices), tenant, port
        self.size = len(self.devices)
        self._ca = fleet / "pki" / "root.pem"
        self._links: list[MqttLink] = []
        self._cloud: MqttLink | None = None
        self._pool: LinkPool | None = None
        self.up: set[int] = set()
        self.received: list[float] = []
        self._subscribed = asyncio.Event()
        self._cloud_up = asyncio.Event()

    # ------------------------------------------------------------------ LinkListener

    def on_up(self, link: MqttLink) -> None:
        """CONNACK: count a device, or subscribe the cloud."""
        if link.tag >= 0:
            self.up.add(link.tag)
        else:
            self._cloud_up.set()

    def on_down(self, link: MqttLink, reason: str) -> None:
        """A drop: forget the device (the phases count what is up)."""
        self.up.discard(link.tag)

    def on_message(self, link: MqttLink, topic: str, payload: bytes) -> None:
        """The cloud received one: its latency."""
        sent, _seq = STAMP.unpack_from(payload)
        self.received.append(time.perf_counter() - sent)

    def on_acked(self, link: MqttLink) -> None:
        """PUBACKs are not measured."""

    def on_subscribed(self, link: MqttLink, refused: int) -> None:
        """The cloud's subscription is in place."""
        self._subscribed.set()

    # ------------------------------------------------------------------ phases

    async def connect_cloud(self, client_id: str, qos: int) -> None:
        """Connect a cloud client (clean session) and subscribe it to the fleet's telemetry."""
        loop = asyncio.get_running_loop()
        if self._pool is None:
            self._pool = LinkPool(loop)
            for i, ident in enumerate(self.devices):
                self._links.append(MqttLink(ident.device, client_context(
                    self._ca, ident.cert, ident.key), "127.0.0.1", self.port, self._pool,
                    self, i, clean_session=True))
        cloud_files = (self.fleet / "cloud" / "cert.pem", self.fleet / "cloud" / "key.pem")
        self._cloud = MqttLink(client_id, client_context(self._ca, *cloud_files), "127.0.0.1",
                               self.port, self._pool, self, -1, clean_session=True)
        self._subscribed.clear()
        self._cloud_up.clear()
        self._cloud.connect()
        await asyncio.wait_for(self._cloud_up.wait(), 30)
        self._cloud.subscribe(f"medtwin/v1/{self.tenant}/+/telemetry", qos)
        await asyncio.wait_for(self._subscribed.wait(), 30)

    async def disconnect_cloud(self) -> None:
        """Disconnect the cloud client."""
        if self._cloud is not None:
            self._cloud.disconnect()
            while self._cloud.open:
                await asyncio.sleep(0.01)

    async def storm(self) -> dict[str, float | int]:
        """Connect every device; wall seconds until all have their CONNACK."""
        started = time.perf_counter()
        for start in range(0, self.size, STORM_BATCH):
            while sum(1 for i, x in enumerate(self._links) if x.open and i not in self.up) \
                    > STORM_CONNECTING:
                await asyncio.sleep(0.005)
            for link in self._links[start:start + STORM_BATCH]:
                link.connect()
            await asyncio.sleep(0)
        deadline = time.perf_counter() + 120
        while len(self.up) < self.size and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - started
        return {"devices": self.size, "connected": len(self.up), "seconds": round(seconds, 2),
                "per_s": round(len(self.up) / seconds, 1)}

    async def sustained(self, rate: float, seconds: float) -> dict[str, float | int | None]:
        """Every device publishes QoS 1 at ``rate`` msg/s (staggered) for ``seconds``."""
        self.received = []
        loop = asyncio.get_running_loop()
        topic = {i: topics.telemetry(self.tenant, d.device) for i, d in enumerate(self.devices)}
        sent = 0
        t0 = loop.time()
        ticks = int(seconds * rate)
        for k in range(ticks):  # one slot per device per tick, spread over the tick
            for i, link in enumerate(self._links):
                at = t0 + (k + i / self.size) / rate
                if (delay := at - loop.time()) > 0.002:
                    await asyncio.sleep(delay)
                link.publish(topic[i], _payload(sent), 1)
                sent += 1
        wall = loop.time() - t0
        deadline = loop.time() + DRAIN_S
        while len(self.received) < sent and loop.time() < deadline:
            await asyncio.sleep(0.05)
        lat = sorted(self.received)
        return {"sent": sent, "received": len(lat), "lost": sent - len(lat),
                "delivered_per_s": round(len(lat) / max(wall, 1e-9)),
                "latency_p50_s": percentile(lat, 0.50), "latency_p99_s": percentile(lat, 0.99),
                "latency_max_s": round(lat[-1], 3) if lat else None}

    async def peak(self, publishers: int, each: int) -> dict[str, float | int]:
        """``publishers`` devices each publish ``each`` QoS 0 messages back to back."""
        self.received = []
        loop = asyncio.get_running_loop()
        chosen = list(enumerate(self._links))[:publishers]
        total = len(chosen) * each
        t0 = loop.time()
        for n in range(each):
            for i, link in chosen:
                link.publish(topics.telemetry(self.tenant, self.devices[i].device),
                             _payload(n), 0)
            await asyncio.sleep(0)
        deadline = loop.time() + DRAIN_S
        last, last_count = loop.time(), 0
        while len(self.received) < total and loop.time() < deadline:
            await asyncio.sleep(0.02)
            if len(self.received) != last_count:
                last, last_count = loop.time(), len(self.received)
        wall = last - t0
        return {"sent": total, "received": len(self.received),
                "received_per_s": round(len(self.received) / max(wall, 1e-9))}

    async def close(self) -> None:
        """Disconnect everything."""
        if self._pool is not None:
            await self._pool.close()
