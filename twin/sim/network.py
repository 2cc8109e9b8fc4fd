"""The simulated network: per-link latency, TCP-style loss recovery, outages, in-flight QoS 1.

What it models, and why:

* **Latency** is lognormal per transmission (median and shape from the scenario), the usual
  fit for access-network delay; samples are drawn in blocks of 4,096 so a message costs no
  numpy call of its own.
* **Loss** is per-segment loss under TCP. MQTT runs over TCP, so a lost segment is resent by
  the transport after a retransmission timeout (200 ms minimum in Linux, doubling on each
  repeat, RFC 6298 5.5) and shows as delay, not as a lost message.
* **Order**: one TCP connection delivers in order, so arrivals on a link never overtake one
  another (FIFO per direction).
* **Outages** drop the connection. Bytes on the wire are lost; QoS 1 messages whose PUBACK
  had not come back stay in the client's in-flight table and are re-sent, flagged DUP, when
  the session resumes (MQTT-4.4.0-1), which is where the cloud's duplicates come from. QoS 0
  messages on the wire are lost.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

_BLOCK = 4096
_MIN_RTO_S = 0.2


class LatencySampler:
    """One-way transmission delays: lognormal base plus TCP retransmission delay on loss.

    Args:
        median_s: median one-way latency.
        sigma: lognormal shape.
        loss: per-transmission segment loss probability (0 <= loss < 1).
        rng: this sampler's stream.
    """

    def __init__(self, median_s: float, sigma: float, loss: float, rng: np.random.Generator):
        self._mu = float(np.log(median_s))
        self._sigma = sigma
        self._loss = loss
        self._rng = rng
        self._block: list[float] = []
        self.median_s = median_s

    def _refill(self) -> None:
        delay = self._rng.lognormal(self._mu, self._sigma, _BLOCK)
        if self._loss > 0:
            # losses before the first success; each costs an RTO that doubles (RFC 6298 5.5)
            losses = self._rng.geometric(1.0 - self._loss, _BLOCK) - 1
            delay += _MIN_RTO_S * (np.exp2(losses) - 1.0)
        self._block = delay[::-1].tolist()

    def __call__(self) -> float:
        """The delay of the next transmission, in seconds."""
        if not self._block:
            self._refill()
        return self._block.pop()


@dataclass(slots=True)
class InFlight:
    """A QoS 1 PUBLISH the client has sent and not yet seen acknowledged."""

    topic: str
    payload: bytes
    qos: int
    delivered: bool = False
    ack_at: float = float("inf")


@dataclass(slots=True)
class Link:
    """One client's connection to the broker, both directions.

    Attributes:
        reachable: False during an outage (connects fail, the session is down).
        connected: an MQTT session is up.
        epoch: bumped at every disconnect; a transmission of an older epoch never arrives.
        up_clear: time before which a new uplink arrival may not be scheduled (FIFO).
        down_clear: the same for the broker-to-client direction.
        inflight: unacknowledged QoS 1 messages, oldest first.
    """

    reachable: bool = True
    connected: bool = False
    epoch: int = 0
    up_clear: float = 0.0
    down_clear: float = 0.0
    inflight: deque[InFlight] = field(default_factory=deque)

    def uplink_arrival(self, now: float, delay: float) -> float:
        """When a message sent now arrives at the broker, never before an earlier one."""
        self.up_clear = max(now + delay, self.up_clear)
        return self.up_clear

    def downlink_arrival(self, now: float, delay: float) -> float:
        """When a message the broker sends now arrives at the client (FIFO)."""
        self.down_clear = max(now + delay, self.down_clear)
        return self.down_clear

    def forget_acked(self, now: float) -> None:
        """Drop in-flight entries whose PUBACK has arrived by ``now``, oldest first."""
        inflight = self.inflight
        while inflight and inflight[0].ack_at <= now:
            inflight.popleft()

    def drop(self, now: float) -> None:
        """The connection is lost at ``now``: keep only messages still awaiting their ack."""
        self.connected = False
        self.epoch += 1
        self.inflight = deque(m for m in self.inflight if m.ack_at > now)

    def undelivered(self) -> int:
        """In-flight messages that never reached the broker (pending at the end of a run)."""
        return sum(1 for m in self.inflight if not m.delivered)
