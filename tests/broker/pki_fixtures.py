"""Test helpers: a throw-away PKI written to a temporary folder, and MQTT clients that use it.

Keys are derived from fixed labels (``twin.core.keys.p256_private_key``), written unencrypted
into pytest's tmp folders only; nothing here is ever committed.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloud import pki
from twin.core.identity import Ueid
from twin.core.keys import p256_private_key

TENANT = "ward-7"
IKM = b"medtwin test pki, never a real key"


def key(label: str) -> ec.EllipticCurvePrivateKey:
    """A deterministic P-256 key for ``label``."""
    return p256_private_key(IKM, label.encode())


def _pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Creds:
    """A client's certificate and key files, and the identity they carry."""

    name: str
    cert: Path
    key: Path
    serial: int


@dataclass
class Pki:
    """A platform PKI in ``folder`` with the ``twin broker --run`` layout."""

    folder: Path
    now: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(minutes=1))
    tenant: str = TENANT
    crl_number: int = 1
    revoked: list[tuple[int, datetime]] = field(default_factory=list)

    def __post_init__(self) -> None:
        (self.folder / "pki").mkdir(parents=True, exist_ok=True)
        (self.folder / "broker").mkdir(exist_ok=True)
        (self.folder / "clients").mkdir(exist_ok=True)
        self.root = pki.make_root(key("root"), "medtwin", self.now)
        self.issuing = pki.make_issuing(self.root, key("issuing"), "medtwin", self.now)
        self.root_pem.write_bytes(self.root.pem)
        (self.folder / "pki" / "issuing.pem").write_bytes(self.issuing.pem)
        self.write_crl()
        broker = pki.issue_service(self.issuing, key("broker").public_key(), "broker",
                                   "medtwin", self.now, server=True, client=False)
        (self.folder / "broker" / "cert.pem").write_bytes(_pem(broker) + self.issuing.pem)
        (self.folder / "broker" / "key.pem").write_bytes(_pem_key(key("broker")))

    @property
    def root_pem(self) -> Path:
        """The trust anchor clients use to check the broker."""
        return self.folder / "pki" / "root.pem"

    @property
    def crl_pem(self) -> Path:
        """The issuing CA's CRL."""
        return self.folder / "pki" / "crl.pem"

    def write_crl(self, path: Path | None = None) -> Path:
        """Write the current CRL (all revocations so far) and return its path."""
        crl = pki.build_crl(self.issuing, self.revoked, self.now, number=self.crl_number)
        target = path or self.crl_pem
        target.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return target

    def revoke(self, creds: Creds) -> Path:
        """Revoke ``creds``' certificate: a new CRL with a higher number and a later date
        (never in the future: a CRL from the future is not current, RFC 5280 6.3.3)."""
        self.now = max(self.now + timedelta(seconds=1), datetime.now(UTC))
        self.revoked.append((creds.serial, self.now))
        self.crl_number += 1
        return self.write_crl()

    def _save(self, label: str, cert: x509.Certificate, k: ec.EllipticCurvePrivateKey,
              name: str) -> Creds:
        base = self.folder / "clients" / label
        base.with_suffix(".pem").write_bytes(_pem(cert))
        base.with_suffix(".key").write_bytes(_pem_key(k))
        return Creds(name, base.with_suffix(".pem"), base.with_suffix(".key"), cert.serial_number)

    def device(self, label: str, *, issued: datetime | None = None,
               validity: timedelta = timedelta(days=7),
               ca: pki.Authority | None = None) -> Creds:
        """A device certificate for the key named ``label``."""
        k = key(label)
        cert = pki.issue_device(ca or self.issuing, k.public_key(), self.tenant,
                                issued or self.now, validity)
        return self._save(label, cert, k, Ueid.from_public_key(_spki(k)).hex)

    def cloud(self, name: str = "cloud") -> Creds:
        """A cloud service client certificate."""
        k = key(f"service {name}")
        cert = pki.issue_service(self.issuing, k.public_key(), name, self.tenant, self.now,
                                 server=False, client=True, hosts=("localhost",))
        return self._save(f"service-{name}", cert, k, name)

    def self_signed_device(self, label: str) -> Creds:
        """A device-shaped certificate that signs itself."""
        k = key(label)
        ueid = Ueid.from_public_key(_spki(k))
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.tenant),
                             x509.NameAttribute(NameOID.COMMON_NAME, ueid.hex)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(k.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(self.now - timedelta(minutes=5))
                .not_valid_after(self.now + timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(ueid.uri)]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .sign(k, hashes.SHA256()))
        return self._save(label, cert, k, ueid.hex)

    def foreign_device(self, label: str) -> Creds:
        """A well-formed device certificate from another platform's CA."""
        root = pki.make_root(key("other root"), "elsewhere", self.now)
        issuing = pki.make_issuing(root, key("other issuing"), "elsewhere", self.now)
        return self.device(label, ca=issuing)


def _spki(k: ec.EllipticCurvePrivateKey) -> bytes:
    return k.public_key().public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)


def telemetry(creds: Creds, tenant: str = TENANT) -> str:
    """The telemetry topic of a device."""
    return f"medtwin/v1/{tenant}/{creds.name}/telemetry"


class Client:
    """A paho-mqtt 2.x client over mutual TLS that records what happens to it.

    With TLS 1.3 a refused client certificate shows as a disconnect right after connect()
    (the server checks it after the client's Finished), not as an exception.
    """

    def __init__(self, port: int, ca: Path, creds: Creds | None, client_id: str | None = None,
                 tls12: bool = False) -> None:
        self.port = port
        self.connected = threading.Event()
        self.closed = threading.Event()
        self.reason: str = ""
        self.messages: list[tuple[str, bytes]] = []
        self.granted: list[int] = []
        self.subscribed = threading.Event()
        cid = client_id if client_id is not None else (creds.name if creds else "anonymous")
        self.mqtt = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid,
                                protocol=mqtt.MQTTv311, clean_session=True)
        ctx = ssl.create_default_context(cafile=str(ca))
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if creds is not None:
            ctx.load_cert_chain(creds.cert, creds.key)
        self.mqtt.tls_set_context(ctx)
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_disconnect = self._on_disconnect
        self.mqtt.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.mqtt.on_subscribe = self._on_subscribe

    def _on_connect(self, client: object, userdata: object, flags: object, reason: object,
                    properties: object) -> None:
        self.reason = str(reason)
        if not getattr(reason, "is_failure", True):
            self.connected.set()
        else:
            self.closed.set()

    def _on_disconnect(self, *args: object) -> None:
        self.reason = self.reason or "disconnected"
        self.closed.set()

    def _on_subscribe(self, client: object, userdata: object, mid: int, codes: list[object],
                      properties: object) -> None:
        self.granted = [getattr(c, "value", c) for c in codes]  # type: ignore[misc]
        self.subscribed.set()

    def connect(self, timeout: float = 5.0) -> bool:
        """Connect and wait for CONNACK; False if refused (exception, refusal or disconnect)."""
        try:
            self.mqtt.connect("127.0.0.1", self.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            self.reason = type(exc).__name__
            return False
        self.mqtt.loop_start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.02)):
            if self.connected.is_set() or self.closed.is_set():
                break
            deadline.wait(0.02)
        if not self.connected.is_set():
            self.stop()
            return False
        return True

    def subscribe(self, topic_filter: str, qos: int = 1, timeout: float = 5.0) -> list[int]:
        """Subscribe and return the granted codes (128 = refused, MQTT-3.9.3)."""
        self.subscribed.clear()
        self.mqtt.subscribe(topic_filter, qos)
        self.subscribed.wait(timeout)
        return self.granted

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """Publish and wait until it is sent (QoS 1: until PUBACK)."""
        info = self.mqtt.publish(topic, payload, qos)
        info.wait_for_publish(5)

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        try:
            self.mqtt.disconnect()
        finally:
            self.mqtt.loop_stop()
