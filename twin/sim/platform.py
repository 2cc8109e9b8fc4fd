"""The security platform in a simulated run: the fleet enrols through it, revocations use it.

With ``fleet.identity: qdid`` every simulated device is a QDID chip: manufactured from the
run's seed tree (the same per-chip streams ``twin provision`` uses), its PUF enrolled on the
tester and read at boot, its keys derived on demand, registered in the inventory, then
enrolled over an in-memory loopback of its prov topics by the platform's real enrolment
service (attestation token over a platform nonce, CSR with the firmware key, certificate).
The run keeps only what a device needs afterwards (its identity, certificate serial and
firmware-decryption key, about 1 KB); the chip's cell arrays (64 KiB each) are dropped as
soon as it has enrolled, so a large fleet does not hold 640 MB of silicon.

Revocations go through :func:`cloud.revocation.revoke` (audited inventory transition and a
new CRL); the driver hands the CRL and the names to the simulated broker, which checks both
on every connect exactly as the real broker does (TLS CRL check, then ``broker.policy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from cloud import pki
from cloud.inventory import Event, MemoryInventory, State
from cloud.ota import Targets, plan_targets
from cloud.revocation import Revocation
from devices.enrolment import EnrolmentClient
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
    """

    chip: str
    device: str
    serial: int
    firmware_key: ec.EllipticCurvePrivateKey


def fleet_kinds(scenario: Scenario) -> list[Kind]:
    """Each device's kind, in fleet order (the sim numbers devices in kind order)."""
    return [kind for kind in Kind for _ in range(scenario.fleet.devices.get(kind.value, 0))]


class SimPlatform:
    """The platform of one simulated run (PKI from the run seed, in-memory inventory).

    Args:
        seeds: the run's seed tree.
        tenant: the fleet's tenant.
    """

    def __init__(self, seeds: SeedTree, tenant: str) -> None:
        self.seeds = seeds
        root = pki.make_root(platform_key(seeds, "root"), ORG, RUN_EPOCH)
        issuing = pki.make_issuing(root, platform_key(seeds, "issuing"), ORG, RUN_EPOCH)
        self.platform = Platform(root.certificate, issuing, MemoryInventory(), tenant,
                                 ENDPOINT, RUN_EPOCH, VALIDITY)
        self.identities: list[Identity] = []
        self.revocations: list[Revocation] = []

    def enrol_fleet(self, kinds: list[Kind]) -> list[Identity]:
        """Manufacture, register and enrol one QDID device per entry of ``kinds``, at t = 0.

        Raises:
            EnrolmentError, EnrolmentFailed: a genuine device was refused (a bug).
        """
        rng = self.seeds.rng("platform", "nonces")
        for number, kind in enumerate(kinds):
            made = self.platform.manufacture(self.seeds, number, 0.0, kind.value)
            client = EnrolmentClient(made.device, made.chip, self.platform.tenant)
            done = self.platform.enrol(client, rng, 0.0)
            self.identities.append(Identity(done.chip, done.device, done.serial,
                                            made.device.firmware_key()))
        return self.identities

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

    def ota_targets(self, kind: str, sequence: int) -> Targets:
        """The release's targets from the inventory: the firmware keys recorded at enrolment.

        Raises:
            CampaignError: a rollback or replay, or no device that can take it.
        """
        return plan_targets(self.platform.inventory.records(), kind, sequence)

    def summary(self) -> dict[str, Any]:
        """For the report: what the platform did in this run."""
        last = self.revocations[-1].crl_number if self.revocations else None
        return {"enrolled": len(self.identities),
                "inventory": self.platform.inventory.by_state(),
                "revocations": len(self.revocations),
                "revoked": sum(len(r.chips) for r in self.revocations),
                "crl_number": last}
