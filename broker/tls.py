"""The broker's TLS: a mutual-TLS server context a reviewer would sign, CRL loading, and a
TLS server whose contexts can be swapped (CRL reload) and whose read buffers are small.

Stock amqtt 0.12.1 builds its listener context with ``CERT_OPTIONAL``, no CRL, and accepts no
configuration key to change that (ARCHITECTURE.md section 5); :func:`server_context` is what
the hardened broker uses instead:

* TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0/1.1); TLS 1.2 suites are ECDHE (forward
  secrecy) with AEAD ciphers for ECDSA certificates only; TLS 1.3 suites are all AEAD
  (RFC 8446 9.1); no compression (CRIME), no renegotiation;
* client certificates **required** (``CERT_REQUIRED``), validated against the platform's root
  and issuing CA with strict X.509 checks, and the leaf checked against the issuing CA's CRL
  (``VERIFY_CRL_CHECK_LEAF``; RFC 5280 6.3). A missing or expired CRL fails closed;
* no session resumption (no tickets, RFC 8446 4.6.1 / RFC 5077): a resumed session skips
  certificate verification, so a device revoked since its first handshake could come back.
"""

from __future__ import annotations

import asyncio
import ssl
from asyncio import sslproto
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from broker.errors import BrokerSetupError

CIPHERS_TLS12 = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
))
"""Forward-secret AEAD suites for ECDSA keys (the same list ``cloud.onboarding`` gives
Mosquitto; kept here because ``broker`` may not import ``cloud``)."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the broker's PKI material lives (PEM files).

    Attributes:
        root: the trust anchor.
        issuing: the issuing CA that signs device and service certificates and the CRL.
        crl: the issuing CA's current CRL.
        cert: the broker's certificate, optionally followed by the issuing CA certificate
            (sent to clients as the chain).
        key: the broker's private key.
    """

    root: Path
    issuing: Path
    crl: Path
    cert: Path
    key: Path

    @classmethod
    def from_run_dir(cls, folder: Path) -> TlsFiles:
        """The layout ``twin provision`` writes: ``pki/{root,issuing,crl}.pem`` and
        ``broker/{cert,key}.pem`` under ``folder``."""
        pki, own = folder / "pki", folder / "broker"
        return cls(pki / "root.pem", pki / "issuing.pem", pki / "crl.pem",
                   own / "cert.pem", own / "key.pem")

    def check(self) -> None:
        """Raise unless every file exists.

        Raises:
            BrokerSetupError: naming the first missing file.
        """
        for name in ("root", "issuing", "crl", "cert", "key"):
            path: Path = getattr(self, name)
            if not path.is_file():
                raise BrokerSetupError(f"{name} file not found: {path}")


def server_context(files: TlsFiles, crl: Path | None = None) -> ssl.SSLContext:
    """A fresh mutual-TLS server context.

    Args:
        files: the PKI files.
        crl: a CRL file to use instead of ``files.crl`` (a reload).

    Returns:
        A context requiring a client certificate from the platform's CA and checking the CRL.

    Raises:
        BrokerSetupError: a file is missing or not loadable (the message names it).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8996
    ctx.set_ciphers(CIPHERS_TLS12)  # TLS 1.3 suites are AEAD by construction (RFC 8446 9.1)
    ctx.options |= (ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
                    | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET)
    ctx.num_tickets = 0  # no TLS 1.3 resumption: every connection verifies the certificate
    try:
        ctx.load_cert_chain(files.cert, files.key)
        for path in (files.root, files.issuing, crl or files.crl):
            ctx.load_verify_locations(cafile=path)  # also loads PEM CRLs (X509_load_cert_crl_file)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerSetupError(f"cannot load the broker's TLS files: {exc}") from None
    ctx.verify_mode = ssl.CERT_REQUIRED
    # RFC 5280 6.3: the leaf must not be on the issuing CA's CRL; no CRL means refusal.
    ctx.verify_flags = (ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_X509_STRICT
                        | ssl.VERIFY_X509_TRUSTED_FIRST)
    return ctx


def load_crl(path: Path, issuing: x509.Certificate, now: datetime,
             newer_than: x509.CertificateRevocationList | None = None
             ) -> x509.CertificateRevocationList:
    """Read and check a CRL before it is put in force.

    Args:
        path: the PEM CRL file.
        issuing: the issuing CA certificate that must have signed it.
        now: the current time.
        newer_than: the CRL in force, if any; the new one must not be older.

    Returns:
        The parsed CRL.

    Raises:
        BrokerSetupError: unreadable, not the issuing CA's, badly signed, not current
            (RFC 5280 6.3.3), or older than the one in force (RFC 5280 5.2.3: CRL numbers
            increase, so replaying an old CRL cannot un-revoke a device).
    """
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BrokerSetupError(f"cannot read the CRL {path}: {exc}") from None
    public = issuing.public_key()
    if crl.issuer != issuing.subject or not isinstance(public, ec.EllipticCurvePublicKey) \
            or not crl.is_signature_valid(public):
        raise BrokerSetupError(f"{path} is not signed by the issuing CA")
    next_update = crl.next_update_utc
    if now < crl.last_update_utc or next_update is None or now > next_update:
        raise BrokerSetupError(f"{path} is not current (RFC 5280 6.3.3)")
    if newer_than is not None:
        number, in_force = _crl_number(crl), _crl_number(newer_than)
        if number < in_force:
            raise BrokerSetupError(f"{path} is older than the CRL in force (CRL number)")
        # RFC 5280 5.2.3: a CRL number names one CRL; the same number with other contents
        # (e.g. a replayed CRL that omits a later revocation) is refused.
        if number == in_force and crl.public_bytes(serialization.Encoding.DER) != \
                newer_than.public_bytes(serialization.Encoding.DER):
            raise BrokerSetupError(f"{path} reuses the CRL number in force with other contents")
    return crl


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return -1


ACCEPT_BACKLOG = 1024
"""Pending connections the kernel queues for accept (asyncio's default is 100): a fleet
powering on connects hundreds at once, and a full queue drops SYNs, costing each a 1 s
retransmission."""

ClientCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _SmallBufferSSL(sslproto.SSLProtocol):
    """asyncio's TLS protocol with a smaller read buffer.

    asyncio allocates ``max_size`` (256 KiB) per TLS connection for reads; measured here that
    was most of the 336 KB a connection cost (ARCHITECTURE.md section 5). A TLS record is at
    most 16 KiB plus overhead (RFC 8446 5.1), so 16-32 KiB loses nothing but a few read calls.
    """

    max_size = 32 * 1024


class TlsServer:
    """A TCP listener that speaks mutual TLS with a swappable context.

    asyncio binds one SSL context to a server for its lifetime; this server builds the TLS
    layer itself per accepted connection from :attr:`context`, so a CRL reload takes effect
    for the next handshake without closing the listening socket.

    Args:
        context: the initial server context.
        read_buffer: bytes of TLS read buffer per connection.
        handshake_timeout: seconds a peer has to finish the handshake.
    """

    def __init__(self, context: ssl.SSLContext, read_buffer: int = 32 * 1024,
                 handshake_timeout: float = 10.0) -> None:
        self.context = context
        self.handshakes_failed = 0
        self._handshake_timeout = handshake_timeout
        server = self

        class _Protocol(_SmallBufferSSL):
            max_size = read_buffer

            def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
                if handshake_exc is not None:  # refused certificate, bad bytes, timeout
                    server.handshakes_failed += 1
                super()._on_handshake_complete(handshake_exc)

        self._protocol = _Protocol

    def _factory(self, on_client: ClientCallback) -> asyncio.BaseProtocol:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(loop=loop)
        app = asyncio.StreamReaderProtocol(reader, on_client, loop=loop)
        # No waiter (None is handled by asyncio): nobody would retrieve a failed handshake's
        # exception from it. asyncio takes a float timeout; typeshed says int.
        proto: asyncio.BaseProtocol = self._protocol(
            loop, app, self.context, None,  # type: ignore[arg-type]
            server_side=True, ssl_handshake_timeout=self._handshake_timeout)  # type: ignore[arg-type]
        return proto

    async def listen(self, host: str, port: int, on_client: ClientCallback) -> asyncio.Server:
        """Bind and start accepting.

        Args:
            host: address to bind (the project binds loopback only).
            port: port, 0 for any free one.
            on_client: called with (reader, writer) once a handshake succeeds.

        Returns:
            The asyncio server (its socket tells the bound port).
        """
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: self._factory(on_client), host, port,
                                        reuse_address=True, backlog=ACCEPT_BACKLOG)
