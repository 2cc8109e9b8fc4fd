"""The embedded broker: amqtt in-process, mutual TLS on loopback, identity from certificates.

Use from asyncio::

    async with EmbeddedBroker(BrokerSettings(TlsFiles.from_run_dir(run))) as broker:
        print(broker.port)            # 127.0.0.1, a free port unless one was asked for
        await broker.reload_crl(path) # new CRL in force; revoked sessions are dropped

or from synchronous code (tests, a CLI) with :class:`BrokerThread`, which runs the same broker
on its own event loop in a daemon thread.

What stock amqtt lacks and how each gap is closed is listed in :mod:`broker.hardened` and
``docs/adr/0008-embedded-broker.md``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Collection
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509

from broker.errors import BrokerSetupError
from broker.gate import Gate
from broker.hardened import HardenedBroker
from broker.identity import DEFAULT_CLOUD_NAMES
from broker.policy import BrokerPolicy
from broker.ratelimit import RateLimiter, RateLimits
from broker.tls import TlsFiles, TlsServer, load_crl, server_context

log = logging.getLogger("medtwin.broker")


@dataclass(frozen=True)
class BrokerSettings:
    """How to run the embedded broker.

    Attributes:
        tls: the PKI files.
        host: address to bind; loopback unless you mean to expose the broker.
        port: port, 0 for a free one.
        limits: per-identity rate limits.
        cloud_names: service CNs that act as the cloud tier.
        max_packet: largest MQTT packet accepted, bytes.
        max_connections: listener connection cap (0: none).
        connect_timeout: seconds to send CONNECT after the TLS handshake.
        handshake_timeout: seconds to finish the TLS handshake.
        tls_read_buffer: TLS read buffer per connection, bytes (asyncio's default is 256 KiB).
        sweep_interval: seconds between checks for sessions whose certificate expired.
        quiet: keep amqtt's per-connection INFO logging off (it formats a line per event).
    """

    tls: TlsFiles
    host: str = "127.0.0.1"
    port: int = 0
    limits: RateLimits = field(default_factory=RateLimits)
    cloud_names: Collection[str] = DEFAULT_CLOUD_NAMES
    max_packet: int = 256 * 1024
    max_connections: int = 0
    connect_timeout: float = 10.0
    handshake_timeout: float = 10.0
    tls_read_buffer: int = 32 * 1024
    sweep_interval: float = 30.0
    quiet: bool = True


class EmbeddedBroker:
    """The hardened amqtt broker, started and stopped on the running event loop.

    Args:
        settings: how to run it.
        policy: the access policy (default: topic ACL on, nothing revoked).
    """

    def __init__(self, settings: BrokerSettings, policy: BrokerPolicy | None = None) -> None:
        self.settings = settings
        self.gate = Gate(policy or BrokerPolicy(), RateLimiter(settings.limits),
                         settings.cloud_names)
        self._broker: HardenedBroker | None = None
        self._tls: TlsServer | None = None
        self._issuing: x509.Certificate | None = None
        self._crl: x509.CertificateRevocationList | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._port = settings.port  # after a restart: the port first bound
        self._routed_before = 0  # deliveries by brokers stopped for a restart
        self._failed_before = 0  # TLS handshakes failed before a restart
        self.restarts = 0

    async def start(self) -> None:
        """Load the PKI, bind and start serving.

        Raises:
            BrokerSetupError: a PKI file is missing or invalid, the CRL is not current, or
                the port cannot be bound.
        """
        s = self.settings
        s.tls.check()
        try:
            self._issuing = x509.load_pem_x509_certificate(s.tls.issuing.read_bytes())
        except ValueError as exc:
            raise BrokerSetupError(f"{s.tls.issuing}: not a PEM certificate ({exc})") from None
        self._crl = load_crl(s.tls.crl, self._issuing, datetime.now(UTC))
        self.gate.revoke(r.serial_number for r in self._crl)
        self._tls = TlsServer(server_context(s.tls), s.tls_read_buffer, s.handshake_timeout)
        if s.quiet:
            logging.getLogger("amqtt").setLevel(logging.WARNING)
        self._broker = HardenedBroker(self._amqtt_config(), self.gate, self._tls,
                                      s.max_packet, s.connect_timeout)
        try:
            await self._broker.start()
        except Exception as exc:
            raise BrokerSetupError(f"cannot start the broker on {s.host}:{s.port}: "
                                   f"{exc.__cause__ or exc}") from None
        self._sweeper = asyncio.create_task(self._sweep())

    def _amqtt_config(self) -> dict[str, Any]:
        s = self.settings
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{s.host}:{self._port}",
                                      "max_connections": s.max_connections}},
            "plugins": {"broker.plugins.CertificateAuthPlugin": {"gate": self.gate},
                        "broker.plugins.PolicyTopicPlugin": {"gate": self.gate}},
        }

    @property
    def port(self) -> int:
        """The bound TCP port."""
        server = self._running()._servers["default"].instance
        port: int = server.sockets[0].getsockname()[1]
        return port

    @property
    def handshakes_failed(self) -> int:
        """TLS handshakes that failed (refused certificates, bad bytes, timeouts)."""
        return self._failed_before + (0 if self._tls is None else self._tls.handshakes_failed)

    def _running(self) -> HardenedBroker:
        if self._broker is None:
            raise BrokerSetupError("the broker is not started")
        return self._broker

    async def reload_crl(self, path: Path | None = None) -> list[str]:
        """Put a new CRL in force and drop the live sessions it revokes.

        Args:
            path: the new CRL (default: the configured CRL file, re-read).

        Returns:
            Client ids whose sessions were dropped.

        Raises:
            BrokerSetupError: the CRL is unreadable, not the issuing CA's, not current or
                older than the one in force; the old CRL stays in force.
        """
        broker = self._running()
        assert self._issuing is not None and self._tls is not None
        crl_path = path or self.settings.tls.crl
        crl = load_crl(crl_path, self._issuing, datetime.now(UTC), newer_than=self._crl)
        self._tls.context = server_context(self.settings.tls, crl_path)  # next handshakes
        self._crl = crl
        revoked = self.gate.revoke(r.serial_number for r in crl)
        for client_id in revoked:  # RFC 5280 6.3: the session is a use of the certificate
            await broker.disconnect(client_id, forget=True)
        if revoked:
            log.warning("CRL reload dropped %d revoked session(s)", len(revoked))
        return revoked

    async def restart(self) -> None:
        """Stop in order and start again on the same port, keeping persistent sessions.

        Devices' connections are ended first and what they sent (and were acknowledged for)
        is delivered to its subscribers before those are disconnected; persistent sessions
        (subscriptions, queued QoS 1 messages) are handed to the new broker, as Mosquitto
        does through its persistence file. A crash would lose what the broker had
        acknowledged but not yet delivered; an orderly restart loses nothing.

        Raises:
            BrokerSetupError: the broker is not running, or cannot start again.
        """
        broker = self._running()
        self._port = self.port
        await broker.drain()
        sessions = broker.sessions_snapshot()
        await self.stop()
        await self.start()
        self._running().restore_sessions(sessions)
        self.restarts += 1

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval)
            for client_id in self.gate.expired(datetime.now(UTC)):
                await self._running().disconnect(client_id, forget=True)

    def stats(self) -> dict[str, Any]:
        """Counters for reports and the security monitor."""
        limiter = self.gate.limiter
        broker = self._running()
        return {"sessions": len(broker.sessions), "routed": self._routed_before + broker.routed,
                "restarts": self.restarts,
                "handshakes_failed": self.handshakes_failed,
                "rate_dropped": limiter.dropped, "rate_cut": limiter.cut,
                "refusals": dict(self.gate.refusals)}

    async def stop(self) -> None:
        """Stop serving and close every session."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._broker is not None:
            self._routed_before += self._broker.routed
            self._failed_before, self._tls = self.handshakes_failed, None
            await self._broker.shutdown()
            self._broker = None

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


class BrokerThread:
    """An :class:`EmbeddedBroker` on its own event loop in a daemon thread, for sync callers.

    Args:
        settings: how to run it.
        policy: the access policy.
    """

    def __init__(self, settings: BrokerSettings, policy: BrokerPolicy | None = None) -> None:
        self.broker = EmbeddedBroker(settings, policy)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="medtwin-broker",
                                        daemon=True)

    def start(self, timeout: float = 10.0) -> BrokerThread:
        """Start the thread and the broker; return once it is serving.

        Raises:
            BrokerSetupError: as :meth:`EmbeddedBroker.start`.
        """
        self._thread.start()
        self._call(self.broker.start(), timeout)
        return self

    def _call(self, coro: Any, timeout: float) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self.broker.port

    def reload_crl(self, path: Path | None = None, timeout: float = 10.0) -> list[str]:
        """Thread-safe :meth:`EmbeddedBroker.reload_crl`."""
        result: list[str] = self._call(self.broker.reload_crl(path), timeout)
        return result

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """Thread-safe :meth:`EmbeddedBroker.stats`."""

        async def read() -> dict[str, Any]:
            return self.broker.stats()

        result: dict[str, Any] = self._call(read(), timeout)
        return result

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the broker, then the loop and the thread."""
        if self._thread.is_alive():
            try:
                self._call(self.broker.stop(), timeout)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout)
        self._loop.close()

    def __enter__(self) -> BrokerThread:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
