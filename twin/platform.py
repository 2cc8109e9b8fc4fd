"""The security platform wired together: manufacture, register, enrol, onboard, write files.

This is the I/O shell around the sans-IO cores (:mod:`cloud.enrolment`, :mod:`cloud.revocation`,
:mod:`devices.enrolment`): it manufactures QDID chips (:mod:`devices.rot`), registers them as a
tester would, runs each device's enrolment over an in-memory loopback of the prov topics (real
codec, real topics, every check of the enrolment service), and writes the run directory of
issue 5 item 9 that ``openssl``, Mosquitto, ``twin broker --run DIR`` and people rely on::

    DIR/platform.json                         tenant, endpoint, seed, epoch (for revoke/renew)
    DIR/inventory.sqlite                      the inventory with its audit trail
    DIR/pki/root.pem, issuing.pem, crl.pem    trust anchor, issuing CA, its current CRL
    DIR/pki/issuing-key.pem                   the issuing CA's key (0600): revoke/renew sign
    DIR/devices/<device-id>/cert.pem          the operational certificate
    DIR/devices/<device-id>/key.pem           TEST AND DEMO ONLY: the key the device derives
    DIR/devices/<device-id>/device.json       id, chip, tenant, kind, publish/subscribe topics
    DIR/cloud/cert.pem, key.pem               the cloud service's client certificate
    DIR/broker/cert.pem, key.pem              broker certificate followed by the issuing CA
    DIR/broker/ca-bundle.pem                  root + issuing (Mosquitto's cafile)
    DIR/broker/mosquitto.conf, acl            the exported Mosquitto configuration
    DIR/pki/firmware-signing.pem, DIR/ota/    OTA campaigns (twin.platform_ota documents them)

The PKI keys are derived from the run seed, so a seed reproduces the platform: this is a
simulation and demo platform, never a place to keep real keys.

Length: a little over 400 lines; it is the one place that lays out the provisioned
folder, so the file layout of issue 5 item 9 can be reviewed in one read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud import pki
from cloud.attestation import AttestationVerifier
from cloud.enrolment import Enrolment, EnrolmentError, EnrolmentService, on_prov_message
from cloud.errors import InventoryError
from cloud.inventory import Inventory, SqliteInventory
from cloud.onboarding import Grants, cloud_grants, device_grants, mosquitto_acl, mosquitto_conf
from cloud.revocation import Revocation, RevocationList, revoke
from devices.enrolment import EnrolmentClient, EnrolmentFailed, Phase
from devices.rot.device import IMPLEMENTATION_ID, QdidDevice
from devices.rot.physics import NOMINAL, manufacture
from devices.rot.testing import FIRMWARE
from twin.core.events import Publish
from twin.core.keys import p256_private_key
from twin.core.messages import Kind
from twin.core.seeds import SeedTree

ORG = "medtwin"
KINDS = tuple(k.value for k in Kind)
REFERENCE = {stage.kind: [stage.measure().value] for stage in FIRMWARE}
"""Reference measurements the verifier accepts: the boot chain the fleet ships with."""
DEFAULT_ENDPOINT = "mqtts://127.0.0.1:8883"


FleetInventory = SqliteInventory
"""The inventory a provisioned fleet keeps (``DIR/inventory.sqlite``)."""


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def platform_key(tree: SeedTree, label: str) -> ec.EllipticCurvePrivateKey:
    """The platform's key ``label`` ("root", "issuing", "broker", "cloud") from the run seed
    (demo PKI: the seed reproduces it, so never use it for real devices)."""
    return p256_private_key(tree.entropy("platform", label, n_bytes=32),
                            f"medtwin platform {label}".encode())


@dataclass(frozen=True, slots=True)
class Manufactured:
    """A chip fresh from the tester: booted, registered, not yet enrolled."""

    number: int
    chip: str
    kind: str
    device: QdidDevice


class Platform:
    """The platform's parts for one tenant: CAs, verifier, enrolment service, revocations.

    Args:
        root: the root CA certificate.
        issuing: the issuing CA (certificate and key).
        inventory: the inventory.
        tenant: the tenant.
        endpoint: the broker endpoint handed to devices.
        epoch: the calendar time of run time 0.
        validity: device certificate lifetime.
        revocations: the revocation list (resumed from the CRL on file, or empty).
    """

    def __init__(self, root: x509.Certificate, issuing: pki.Authority, inventory: Inventory,
                 tenant: str, endpoint: str, epoch: datetime,
                 validity: timedelta = timedelta(days=7),
                 revocations: RevocationList | None = None) -> None:
        self.root = root
        self.issuing = issuing
        self.inventory = inventory
        self.verifier = AttestationVerifier([IMPLEMENTATION_ID], REFERENCE)
        self.revocations = revocations if revocations is not None else RevocationList(issuing)
        self.service = EnrolmentService(inventory, self.verifier, issuing, tenant, endpoint,
                                        validity, self.revocations, epoch)

    @property
    def tenant(self) -> str:
        """The tenant."""
        return self.service.tenant

    def manufacture(self, tree: SeedTree, number: int, now: float,
                    kind: str = "") -> Manufactured:
        """Make chip ``number``, enrol its PUF on the tester, boot it, register it.

        The tester reads only public values from the booted chip (its UEID and attestation
        public key); the platform never sees a private key. The kind defaults to the
        ``twin provision`` round robin over the kinds.
        """
        chip = manufacture(tree, [number])
        device = QdidDevice.enrol(chip, tree.rng("chip", number, "enrol"))
        device.boot(NOMINAL, tree.rng("chip", number, "boot", 0), FIRMWARE)
        kind = kind or KINDS[number % len(KINDS)]
        self.service.register_chip(device.ueid, device.attestation_spki, now, kind)
        return Manufactured(number, device.ueid.hex, kind, device)

    def enrol(self, client: EnrolmentClient, rng: np.random.Generator, now: float) -> Enrolment:
        """Run one device's enrolment over an in-memory loopback of its prov topics.

        Raises:
            EnrolmentError: the platform refused (the device saw the same reason).
            EnrolmentFailed: the device refused the platform's answer.
        """
        pending = [e for e in client.start() if isinstance(e, Publish)]
        done: Enrolment | None = None
        while pending:
            message = pending.pop(0)
            if message.topic == client.request_topic:
                effects: list[Any] = list(on_prov_message(self.service, message.topic,
                                                          message.payload, rng, now))
                done = next((e for e in effects if isinstance(e, Enrolment)), done)
            else:
                effects = list(client.on_message(message.topic, message.payload, now))
            pending += [e for e in effects if isinstance(e, Publish)]
        if client.phase is Phase.REFUSED:
            raise EnrolmentError(client.reason or "refused", f"chip {client.chip}")
        if done is None or client.phase is not Phase.ENROLLED:
            raise EnrolmentFailed("state", f"chip {client.chip}: the exchange did not finish")
        return done

    def revoke(self, chips: list[str], now: float, reason: str = "unspecified") -> Revocation:
        """Revoke chips (inventory, CRL); see :func:`cloud.revocation.revoke`."""
        return revoke(self.inventory, self.revocations, chips, now,
                      self.service.calendar(now), reason)


# ---------------------------------------------------------------- the run directory


@dataclass(frozen=True, slots=True)
class ProvisionSummary:
    """What ``twin provision`` did."""

    out: Path
    devices: int
    manufacture_s: float
    enrol_s: float
    write_s: float
    states: dict[str, int]

    @property
    def per_second(self) -> float:
        """Enrolment throughput (challenge, attestation, CSR, issuance, inventory, grants)."""
        return self.devices / self.enrol_s if self.enrol_s > 0 else float("inf")


def device_doc(grants: Grants, chip: str, tenant: str, kind: str, number: int) -> dict[str, Any]:
    """The ``device.json`` document: who the device is and exactly what it may use."""
    return {"id": grants.identity, "chip": chip, "chip_number": number, "tenant": tenant,
            "kind": kind, "publish": list(grants.publish), "subscribe": list(grants.subscribe)}


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


def write_crl(out: Path, crl: x509.CertificateRevocationList) -> Path:
    """Replace ``DIR/pki/crl.pem`` atomically (a broker may be reading it)."""
    target = out / "pki" / "crl.pem"
    temp = target.with_suffix(".tmp")
    temp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    os.replace(temp, target)
    return target


def _write_services(out: Path, tree: SeedTree, platform: Platform, root: pki.Authority,
                    when: datetime) -> None:
    """The CAs, the CA key, the first CRL, and the broker and cloud service credentials."""
    issuing = platform.issuing
    _write(out / "pki" / "root.pem", root.pem)
    _write(out / "pki" / "issuing.pem", issuing.pem)
    _write(out / "pki" / "issuing-key.pem", _pem_key(issuing.key), private=True)
    write_crl(out, platform.revocations.publish(when))
    broker_key, cloud_key = platform_key(tree, "broker"), platform_key(tree, "cloud")
    broker = pki.issue_service(issuing, broker_key.public_key(), "broker", ORG, when,
                               server=True, client=False)
    cloud = pki.issue_service(issuing, cloud_key.public_key(), "cloud", platform.tenant, when,
                              server=False, client=True, hosts=("localhost",))
    _write(out / "broker" / "cert.pem", _pem(broker) + issuing.pem)
    _write(out / "broker" / "key.pem", _pem_key(broker_key), private=True)
    _write(out / "broker" / "ca-bundle.pem", root.pem + issuing.pem)
    _write(out / "cloud" / "cert.pem", _pem(cloud))
    _write(out / "cloud" / "key.pem", _pem_key(cloud_key), private=True)


def _write_broker_config(out: Path, grants: list[Grants], tenant: str, port: int) -> None:
    """Mosquitto: the ACL (every device, the cloud) and the mutual-TLS listener."""
    base = out.resolve()
    _write(base / "broker" / "acl", mosquitto_acl([*grants, cloud_grants(tenant)]).encode())
    conf = mosquitto_conf(port=port, cafile=str(base / "broker" / "ca-bundle.pem"),
                          certfile=str(base / "broker" / "cert.pem"),
                          keyfile=str(base / "broker" / "key.pem"),
                          crlfile=str(base / "pki" / "crl.pem"),
                          aclfile=str(base / "broker" / "acl"))
    _write(base / "broker" / "mosquitto.conf", conf.encode())


def provision(out: Path, devices: int, seed: int = 1, tenant: str = "ward-1",
              endpoint: str = DEFAULT_ENDPOINT, validity: timedelta = timedelta(days=7),
              port: int = 8883, progress: Callable[[int], None] | None = None,
              clock: Callable[[], float] | None = None) -> ProvisionSummary:
    """Manufacture, register, enrol and onboard ``devices`` QDID devices; write ``out``.

    Args:
        out: the run directory (must not already hold an inventory).
        devices: how many devices.
        seed: the run seed (chips, platform keys).
        tenant: the tenant.
        endpoint: the broker endpoint devices are given.
        validity: device certificate lifetime.
        port: the Mosquitto listener port.
        progress: called with the number of devices done so far.
        clock: a monotonic clock for the timings (``time.perf_counter``).

    Returns:
        The summary, with separate timings: manufacture (not enrolment), enrolment, files.

    Raises:
        InventoryError: ``out`` already holds an inventory (nothing is overwritten).
        EnrolmentError: a device was refused (a bug: every device here is genuine).
    """
    tick = clock or (lambda: 0.0)
    if (out / "inventory.sqlite").exists():
        raise InventoryError(f"{out} already holds an inventory; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    epoch = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    tree = SeedTree(seed)
    root = pki.make_root(platform_key(tree, "root"), ORG, epoch)
    issuing = pki.make_issuing(root, platform_key(tree, "issuing"), ORG, epoch)
    inventory = FleetInventory(out / "inventory.sqlite")
    platform = Platform(root.certificate, issuing, inventory, tenant, endpoint, epoch, validity)
    _write_services(out, tree, platform, root, epoch)
    (out / "platform.json").write_text(json.dumps({
        "schema": 1, "seed": seed, "tenant": tenant, "endpoint": endpoint,
        "epoch": epoch.isoformat(), "validity_s": validity.total_seconds()}, indent=2) + "\n")
    rng = tree.rng("platform", "nonces")
    grants: list[Grants] = []
    times = [0.0, 0.0, 0.0]
    for number in range(devices):
        t0 = tick()
        made = platform.manufacture(tree, number, 0.0)
        t1 = tick()
        client = EnrolmentClient(made.device, made.chip, tenant, epoch=epoch)
        done = platform.enrol(client, rng, 1.0)
        t2 = tick()
        _write_device(out, made, done, tenant)
        grants.append(done.grants)
        t3 = tick()
        times = [times[0] + t1 - t0, times[1] + t2 - t1, times[2] + t3 - t2]
        if progress is not None:
            progress(number + 1)
    _write_broker_config(out, grants, tenant, port)
    states = inventory.by_state()
    inventory.close()
    return ProvisionSummary(out, devices, times[0], times[1], times[2], states)


def _write_device(out: Path, made: Manufactured, done: Enrolment, tenant: str) -> None:
    folder = out / "devices" / done.device
    identity = made.device.slots.get("identity")
    assert isinstance(identity, ec.EllipticCurvePrivateKey)
    _write(folder / "cert.pem", done.pem)
    _write(folder / "key.pem", _pem_key(identity), private=True)  # test and demo use only
    doc = device_doc(done.grants, made.chip, tenant, made.kind, made.number)
    _write(folder / "device.json", (json.dumps(doc, indent=2) + "\n").encode())


# ---------------------------------------------------------------- acting on a run directory


def open_platform(out: Path) -> tuple[Platform, dict[str, Any]]:
    """Reopen the platform of a run directory written by :func:`provision`.

    Returns:
        The platform (its inventory open: close it) and ``platform.json``.

    Raises:
        InventoryError: a file is missing or unreadable (the message names it).
    """
    try:
        config = json.loads((out / "platform.json").read_text())
        root = pki.load_pem_certificate((out / "pki" / "root.pem").read_bytes(), "root.pem")
        issuing_cert = pki.load_pem_certificate((out / "pki" / "issuing.pem").read_bytes(),
                                                "issuing.pem")
        key = serialization.load_pem_private_key(
            (out / "pki" / "issuing-key.pem").read_bytes(), password=None)
        crl = x509.load_pem_x509_crl((out / "pki" / "crl.pem").read_bytes())
        epoch = datetime.fromisoformat(config["epoch"])
        validity = timedelta(seconds=float(config["validity_s"]))
        tenant, endpoint = str(config["tenant"]), str(config["endpoint"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InventoryError(f"{out} is not a provisioned run directory: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not (out / "inventory.sqlite").exists():
        raise InventoryError(f"{out} is not a provisioned run directory")
    issuing = pki.Authority(issuing_cert, key)
    revocations = RevocationList.from_crl(issuing, crl)
    inventory = FleetInventory(out / "inventory.sqlite")
    return Platform(root, issuing, inventory, tenant, endpoint, epoch, validity,
                    revocations), config


def close_platform(platform: Platform) -> None:
    """Close the platform's inventory file (the other parts hold no open resource)."""
    if isinstance(platform.inventory, SqliteInventory):
        platform.inventory.close()


def run_now(platform: Platform) -> float:
    """Run time now: the wall clock against the run's epoch (this is the CLI's shell)."""
    return (datetime.now(UTC) - platform.service.epoch).total_seconds()


def find_device(inventory: Inventory, device_id: str) -> str:
    """The chip behind a device identity (or a chip ID given directly).

    Raises:
        InventoryError: no such device.
    """
    for record in inventory.records():
        if device_id in (record.device, record.chip):
            return record.chip
    raise InventoryError(f"no device {device_id[:40]!r} in the inventory")


def _rewrite_acl(out: Path, platform: Platform) -> None:
    """The Mosquitto ACL from the inventory: revoked and decommissioned devices drop out."""
    live = [device_grants(platform.tenant, r.device) for r in platform.inventory.records()
            if r.device and r.state.value not in ("revoked", "decommissioned")]
    acl = mosquitto_acl([*live, cloud_grants(platform.tenant)])
    _write(out / "broker" / "acl", acl.encode())


def revoke_device(out: Path, device_id: str, reason: str = "unspecified") -> Revocation:
    """``twin platform revoke``: revoke one device, rewrite the CRL and the ACL.

    Raises:
        InventoryError: unknown device, or one that cannot be revoked (nothing written).
    """
    platform, _ = open_platform(out)
    try:
        done = platform.revoke([find_device(platform.inventory, device_id)], run_now(platform),
                               reason)
        write_crl(out, done.crl)
        _rewrite_acl(out, platform)
        return done
    finally:
        close_platform(platform)


def renew_device(out: Path, device_id: str) -> Enrolment:
    """``twin platform renew``: the device re-attests and sends a fresh CSR; new cert.pem.

    The device is rebuilt from the run seed (the same silicon: ADR 0004 chip streams) and
    boots again, as a real device would before renewing.

    Raises:
        InventoryError: unknown device or unreadable run directory.
        EnrolmentError: the platform refused (a revoked device, for one).
    """
    platform, config = open_platform(out)
    try:
        chip = find_device(platform.inventory, device_id)
        record = platform.inventory.get(chip)
        doc = json.loads((out / "devices" / record.device / "device.json").read_text())
        tree, number = SeedTree(int(config["seed"])), int(doc["chip_number"])
        device = QdidDevice.enrol(manufacture(tree, [number]), tree.rng("chip", number, "enrol"))
        now = run_now(platform)
        device.boot(NOMINAL, tree.rng("chip", number, "boot", "renew", int(now)), FIRMWARE)
        client = EnrolmentClient(device, chip, platform.tenant, epoch=platform.service.epoch)
        done = platform.enrol(client, tree.rng("platform", "nonces", int(now)), now)
        _write(out / "devices" / done.device / "cert.pem", done.pem)
        return done
    except (OSError, ValueError, KeyError) as exc:
        raise InventoryError(f"cannot renew {device_id[:40]!r}: {exc}") from None
    finally:
        close_platform(platform)
