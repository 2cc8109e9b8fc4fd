"""Which broker a live run talks to: the embedded one it starts, or an external one it is given.

``twin run --mode live`` starts the embedded broker (:mod:`broker.embedded`) on a free
loopback port with the fleet's PKI. ``--broker mqtts://HOST:PORT`` names an external broker
instead, e.g. Debian's Mosquitto started with the configuration the platform exported for a
provisioned fleet (``twin provision --out DIR``, then
``mosquitto -c DIR/broker/mosquitto.conf``, then ``twin run ... --platform DIR``): that
broker must already trust the fleet's CA, so the run uses that fleet instead of
provisioning a new one.

:class:`BrokerTraffic` is what the report says about each broker a run used: how many
messages went through it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from broker.embedded import BrokerSettings, EmbeddedBroker
from broker.tls import TlsFiles
from twin.live.identities import LiveError


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """An external broker: where it is and what to call it in the report."""

    host: str
    port: int
    kind: str = "external"

    @property
    def url(self) -> str:
        """``mqtts://host:port``."""
        return f"mqtts://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """Read ``mqtts://HOST:PORT`` (mutual TLS only: a plain ``mqtt://`` is refused).

    Raises:
        LiveError: not an ``mqtts`` URL with a host and a port in 1..65535.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise LiveError(f"--broker {url!r}: {exc}") from None
    if parts.scheme != "mqtts":
        raise LiveError(f"--broker {url!r}: use mqtts://HOST:PORT (the fleet speaks mutual "
                        "TLS only)")
    if not parts.hostname or port is None or parts.path not in ("", "/"):
        raise LiveError(f"--broker {url!r}: write mqtts://HOST:PORT")
    return BrokerAddress(parts.hostname, port)


@dataclass
class BrokerTraffic:
    """Messages that went through one broker during a run.

    Attributes:
        kind: ``embedded`` or ``external``.
        url: where it listened.
        published: PUBLISH packets the fleet and the cloud sent to it (re-sends included).
        acknowledged: PUBACKs it returned for them.
        delivered: PUBLISH packets it delivered to the run's clients (the cloud's telemetry,
            events; devices' commands).
        connections: CONNACKs it accepted.
        restarts: orderly restarts during the run (embedded broker only).
    """

    kind: str
    url: str
    published: int = 0
    acknowledged: int = 0
    delivered: int = 0
    connections: int = 0
    restarts: int = 0

    def as_report(self) -> dict[str, Any]:
        """The report's entry for this broker."""
        return {"kind": self.kind, "url": self.url, "published": self.published,
                "acknowledged": self.acknowledged, "delivered": self.delivered,
                "connections": self.connections, "restarts": self.restarts}


@asynccontextmanager
async def serve(run_dir: Path, external: BrokerAddress | None
                ) -> AsyncIterator[tuple[BrokerTraffic, EmbeddedBroker | None]]:
    """The broker for a run: the embedded one started on loopback with ``run_dir``'s PKI, or
    the external one as given (nothing is started).

    Yields:
        The broker's traffic record (``url`` filled in) and the embedded broker, if any.

    Raises:
        BrokerSetupError: the embedded broker could not start.
    """
    if external is not None:
        yield BrokerTraffic(external.kind, external.url), None
        return
    settings = BrokerSettings(TlsFiles.from_run_dir(run_dir))
    async with EmbeddedBroker(settings) as broker:
        yield BrokerTraffic("embedded", f"mqtts://{settings.host}:{broker.port}"), broker
