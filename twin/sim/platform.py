"""The security platform in a simulated run: the fleet enrols through it, revocations use it.

With ``fleet.identity: qdid`` every simulated device is a QDID chip: manufactured from the
run's seed tree (the same per-chip streams ``twin provision`` uses), its PUF enrolled on the
tester and read at boot, its keys derived on demand, registered in the inventory, then
enrolled over an in-memory loopback of its prov topics by the platform's real enrolment
service (attestation token over a platform nonce, CSR with the firmware key, certificate).
The run keeps only what a device needs afterwards (its identity, certificate serial and
firmware-decryption key, about 1 KB); the chip's cell arrays (64 KiB each) are dropped as
soon as it has enrolled, so a large fleet does not hold 640 MB of silicon.

Renewal boots the device again from its silicon and runs the same exchange with a fresh
nonce and CSR, over the simulated broker (:mod:`twin.sim.platform_events`): the device's
endpoint publishes on its ``prov/request`` topic and the platform's endpoint answers.
Revocations go through :func:`cloud.revocation.revoke` (audited inventory transition and a
new CRL); the driver hands the CRL and the names to the
simulated broker, which checks both on every connect exactly as the real broker does (TLS
validity and CRL checks, then ``broker.policy``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from cloud import pki
from cloud.enrolment import Enrolment, on_prov_message
from cloud.inventory import Event, MemoryInventory, State
from cloud.ota import Targets, plan_targets
from cloud.revocation import Revocation
from devices.enrolment import EnrolmentClient
from devices.rot.device import QdidDevice
from devices.rot.hazmat import Flash
from devices.rot.physics import NOMINAL, manufacture
from devices.rot.testing import FIRMWARE
from twin.core.clock import RUN_EPOCH
from twin.core.messages import Kind
from twin.core.seeds import SeedTree
from twin.platform import ORG, Platform, platform_key
from twin.scenario.schema import Revocation as RevocationEvent
from twin.scenario.schema import Scenario

ENDPOINT = "sim://broker"
VALIDITY = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Identity:
    """What an enrolled device keeps from enrolment.

    Attributes:
        chip: the chip's instance ID (its inventory key).
        device: the device identity its certificate names (UEID hex of the identity key).
        serial: the certificate's serial number (what a CRL lists).
        firmware_key: the PUF-derived firmware-decryption key the update client holds.
        number: the chip's number (its silicon is made again from the seed to re-boot).
        flash: its flash (helper data, derivation index: public, a few hundred bytes).
        expires: the certificate's notAfter, in run seconds.
    """

    chip: str
    device: str
    serial: int
    firmware_key: ec.EllipticCurvePrivateKey
    number: int
    flash: Flash
    expires: float


def _expires(done: Enrolment) -> float:
    """A certificate's notAfter in run seconds."""
    return (done.certificate.not_valid_after_utc - RUN_EPOCH).total_seconds()


def fleet_kinds(scenario: Scenario) -> list[Kind]:
    """Each device's kind, in fleet order (the sim numbers devices in kind order)."""
    return [kind for kind in Kind for _ in range(scenario.fleet.devices.get(kind.value, 0))]


class SimPlatform:
    """The platform of one simulated run (PKI from the run seed, in-memory inventory).

    Args:
        seeds: the run's seed tree.
        tenant: the fleet's tenant.
        validity: the lifetime of the certificates it issues.
    """

    def __init__(self, seeds: SeedTree, tenant: str, validity: timedelta = VALIDITY) -> None:
        self.seeds = seeds
        root = pki.make_root(platform_key(seeds, "root"), ORG, RUN_EPOCH)
        issuing = pki.make_issuing(root, platform_key(seeds, "issuing"), ORG, RUN_EPOCH)
        self.platform = Platform(root.certificate, issuing, MemoryInventory(), tenant,
                                 ENDPOINT, RUN_EPOCH, validity)
        self.identities: list[Identity] = []
        self._chips: dict[str, str] = {}  # device identity -> chip
        self.revocations: list[Revocation] = []
        self.renewals = 0
        self._nonces = seeds.rng("platform", "nonces")

    def enrol_fleet(self, kinds: list[Kind]) -> list[Identity]:
        """Manufacture, register and enrol one QDID device per entry of ``kinds``, at t = 0.

        Raises:
            EnrolmentError, EnrolmentFailed: a genuine device was refused (a bug).
        """
        for number, kind in enumerate(kinds):
            made = self.platform.manufacture(self.seeds, number, 0.0, kind.value)
            client = EnrolmentClient(made.device, made.chip, self.platform.tenant)
            done = self.platform.enrol(client, self._nonces, 0.0)
            self.identities.append(Identity(done.chip, done.device, done.serial,
                                            made.device.firmware_key(), number,
                                            made.device.flash, _expires(done)))
            self._chips[done.device] = done.chip
        return self.identities

    def renewal_client(self, number: int, now: float) -> EnrolmentClient:
        """Device ``number`` about to renew: it boots (its PUF read again, its keys derived
        on demand) and its enrolment client will attest over a fresh nonce with a fresh CSR."""
        old = self.identities[number]
        device = QdidDevice(manufacture(self.seeds, [old.number]), old.flash)
        device.boot(NOMINAL, self.seeds.rng("chip", old.number, "boot", "renew", int(now)),
                    FIRMWARE)
        return EnrolmentClient(device, old.chip, self.platform.tenant)

    def renewed(self, number: int, certificate: x509.Certificate) -> Identity:
        """Device ``number`` holds a new certificate: keep its serial and expiry."""
        old = self.identities[number]
        expires = (certificate.not_valid_after_utc - RUN_EPOCH).total_seconds()
        renewed = replace(old, serial=certificate.serial_number, expires=expires)
        self.identities[number] = renewed
        self.renewals += 1
        return renewed

    def on_prov_message(self, topic: str, payload: bytes, now: float) -> list[Any]:
        """The platform's enrolment endpoint: one message from a ``prov/request`` topic.

        Returns:
            What to publish and notices (see :func:`cloud.enrolment.on_prov_message`); the
            :class:`~cloud.enrolment.Enrolment` record itself stays here (a renewal keeps
            the device's identity and grants, so the broker has nothing to change).
        """
        effects = on_prov_message(self.platform.service, topic, payload, self._nonces, now)
        return [e for e in effects if not isinstance(e, Enrolment)]

    def connected(self, number: int, now: float) -> None:
        """A device's session came up: its first one makes it ``active`` in the inventory
        (audited), as a platform sees a device go into service."""
        chip = self.identities[number].chip
        if self.platform.inventory.get(chip).state is State.ONBOARDED:
            self.platform.inventory.fire(chip, Event.ACTIVATE, now)

    def revoke(self, event: RevocationEvent, now: float) -> Revocation:
        """Revoke the event's devices (by fleet number, or a whole kind) through the platform.

        Raises:
            InventoryError: a device cannot be revoked (e.g. already revoked); nothing written.
        """
        if event.batch is not None:
            chips = [r.chip for r in self.platform.inventory.records() if r.kind == event.batch]
        else:
            chips = [self.identities[n].chip for n in event.devices]
        done = self.platform.revoke(chips, now, event.reason)
        self.revocations.append(done)
        return done

    def firmware_reported(self, device: str, sequence: int, outcome: str, now: float) -> bool:
        """Record the firmware a device reports running (after an update, or a revert) in the
        inventory, audited with the version it replaces; nothing is written when the version
        is already the one on record, or the device is not one of this fleet's.

        The report is the device's own word over its authenticated session (its certificate,
        the broker's ACL and the cloud's sequence window vouch for who said it, not for what
        it runs); the next renewal's attestation measures the boot chain again.

        Returns:
            Whether the inventory changed.
        """
        chip = self._chips.get(device)
        if chip is None:
            return False
        record = self.platform.inventory.get(chip)
        if record.firmware == sequence:
            return False
        self.platform.inventory.update(chip, now, "firmware", {
            "previous": record.firmware, "sequence": sequence, "outcome": outcome},
            firmware=sequence)
        return True

    def ota_targets(self, kind: str, sequence: int) -> Targets:
        """The release's targets from the inventory: the firmware keys recorded at enrolment.

        Raises:
            CampaignError: a rollback or replay, or no device that can take it.
        """
        return plan_targets(self.platform.inventory.records(), kind, sequence)

    def summary(self) -> dict[str, Any]:
        """For the report: what the platform did in this run."""
        last = self.revocations[-1].crl_number if self.revocations else None
        return {"enrolled": len(self.identities), "renewed": self.renewals,
                "inventory": self.platform.inventory.by_state(),
                "revocations": len(self.revocations),
                "revoked": sum(len(r.chips) for r in self.revocations),
                "crl_number": last}
