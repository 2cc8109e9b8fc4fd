"""OTA campaigns: a staged rollout of one signed release to a fleet, stopped by failures.

A sans-IO core with its lifecycle as a table::

    planned -start-> canary -canary_passed-> rollout -all_reported-> completed
    canary|rollout -failure_budget_spent-> paused

The canary is the first ``canary_fraction`` of the targets (at least one device). The rest
are offered the update only when every canary device has reported ``installed``; a canary
device that reports ``reverted`` (the image failed its self test and the device went back to
its previous image) or ``rejected`` (a check refused the image) spends the failure budget and
the campaign pauses, so a broken release never reaches the whole fleet. Devices report with a
``DeviceEvent("update", {"outcome", "sequence"})`` on their next connection.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.errors import CampaignError
from cloud.firmware import Release
from cloud.inventory import Record, State
from twin.core.lifecycle import TransitionTable


class CampaignState(StrEnum):
    """Where a campaign is."""

    PLANNED = "planned"
    CANARY = "canary"
    ROLLOUT = "rollout"
    PAUSED = "paused"
    COMPLETED = "completed"


class CampaignEvent(StrEnum):
    """What moved it."""

    START = "start"
    CANARY_PASSED = "canary_passed"
    BUDGET_SPENT = "failure_budget_spent"
    ALL_REPORTED = "all_reported"


C, E = CampaignState, CampaignEvent
CAMPAIGN = TransitionTable.build("ota campaign", [
    (C.PLANNED, E.START, C.CANARY),
    (C.CANARY, E.CANARY_PASSED, C.ROLLOUT),
    ((C.CANARY, C.ROLLOUT), E.BUDGET_SPENT, C.PAUSED),
    ((C.CANARY, C.ROLLOUT), E.ALL_REPORTED, C.COMPLETED),
])


@dataclass(frozen=True, slots=True)
class Offer:
    """One device's copy of the update: the release plus its wrapped content key."""

    device: str
    envelope: bytes
    wrapped_key: bytes
    ciphertext: bytes


class Campaign:
    """One release rolled out to a set of devices.

    Args:
        release: the signed, encrypted release.
        targets: device UEID -> its firmware-decryption public key, in rollout order.
        canary_fraction: share of targets in the canary stage (at least one device).
        failure_budget: failures tolerated before pausing (0: the first failure pauses).
    """

    def __init__(self, release: Release, targets: Mapping[str, ec.EllipticCurvePublicKey],
                 canary_fraction: float = 0.05, failure_budget: int = 0) -> None:
        if not targets:
            raise ValueError("a campaign needs at least one target device")
        if not 0.0 < canary_fraction <= 1.0:
            raise ValueError(f"canary_fraction must be within (0, 1], got {canary_fraction}")
        self.release = release
        self.state = CampaignState.PLANNED
        self._targets = dict(targets)
        order = list(self._targets)
        size = max(1, math.ceil(canary_fraction * len(order)))
        self._canary, self._rest = order[:size], order[size:]
        self._budget = failure_budget
        self.outcomes: dict[str, str] = {}
        self.offered: list[str] = []

    def _fire(self, event: CampaignEvent) -> None:
        self.state = CAMPAIGN.next(self.state, event)

    def _offers(self, devices: list[str]) -> list[Offer]:
        self.offered += devices
        r = self.release
        return [Offer(d, r.envelope, r.wrap_for(self._targets[d]), r.ciphertext)
                for d in devices]

    def start(self) -> list[Offer]:
        """Begin the canary stage; returns the offers to send now.

        Raises:
            TransitionError: the campaign has already started.
        """
        self._fire(CampaignEvent.START)
        return self._offers(self._canary)

    def report(self, device: str, outcome: str) -> list[Offer]:
        """Record a device's outcome; returns any offers the campaign now sends.

        Reports from devices that were not offered this release, or a second report from one
        device, are ignored (a replayed or forged report cannot advance the campaign).
        """
        if device not in self.offered or device in self.outcomes:
            return []
        self.outcomes[device] = outcome
        if self.state not in (CampaignState.CANARY, CampaignState.ROLLOUT):
            return []
        if self.failures > self._budget:
            self._fire(CampaignEvent.BUDGET_SPENT)
            return []
        if len(self.outcomes) < len(self.offered):
            return []
        if self.state is CampaignState.CANARY and self._rest:
            self._fire(CampaignEvent.CANARY_PASSED)
            return self._offers(self._rest)
        self._fire(CampaignEvent.ALL_REPORTED)
        return []

    @property
    def failures(self) -> int:
        """Devices that reported anything but ``installed``."""
        return sum(1 for o in self.outcomes.values() if o != "installed")

    def summary(self) -> dict[str, int | str]:
        """State and counts, for the report."""
        counts: dict[str, int | str] = {"state": self.state.value,
                                        "sequence": self.release.manifest.sequence,
                                        "targets": len(self._targets),
                                        "offered": len(self.offered)}
        for outcome in ("installed", "reverted", "rejected"):
            counts[outcome] = sum(1 for o in self.outcomes.values() if o == outcome)
        counts["pending"] = len(self.offered) - len(self.outcomes)
        return counts


@dataclass(frozen=True, slots=True)
class StartCampaign:
    """An event for the cloud core: begin rolling out ``campaign``."""

    campaign: Campaign


OTA_STATES = (State.ONBOARDED, State.ACTIVE)
"""Inventory states that take updates (quarantined, revoked and decommissioned devices do not)."""


@dataclass(frozen=True, slots=True)
class Targets:
    """The devices of one component a release is for, from the inventory.

    Attributes:
        component: e.g. ``"bp_cuff/app"``.
        keys: device identity -> its firmware-decryption public key, in inventory order.
        chips: device identity -> chip (for the audit trail).
        without_key: devices that would qualify but have no firmware key on record (enrolled
            before the key was recorded: they renew, then they can be offered updates).
    """

    component: str
    keys: Mapping[str, ec.EllipticCurvePublicKey]
    chips: Mapping[str, str]
    without_key: tuple[str, ...]


def plan_targets(records: list[Record], kind: str, sequence: int) -> Targets:
    """Choose a release's targets: the ``kind`` devices in :data:`OTA_STATES`.

    The platform refuses to publish what every device would refuse anyway (PSA goal 6:
    anti-rollback): a version not newer than one a target already runs.

    Raises:
        CampaignError: ``"rollback"`` or ``"replay"`` (naming the first such device),
            ``"no_targets"`` (no device of that kind can take it).
    """
    eligible = [r for r in records if r.kind == kind and r.state in OTA_STATES and r.device]
    for record in eligible:
        if record.firmware >= sequence:
            reason = "replay" if record.firmware == sequence else "rollback"
            raise CampaignError(reason, f"device {record.device[:16]}... runs version "
                                        f"{record.firmware}, not older than {sequence}")
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for record in eligible:
        if record.firmware_key:
            key = serialization.load_der_public_key(record.firmware_key)
            assert isinstance(key, ec.EllipticCurvePublicKey)  # checked at enrolment
            keys[record.device] = key
    if not keys:
        why = (" has a firmware key on record (enrolled before keys were recorded: renew "
               "them first)" if eligible else " is in a state that takes updates")
        raise CampaignError("no_targets", f"no {kind} device{why}")
    return Targets(f"{kind}/app", keys, {r.device: r.chip for r in eligible},
                   tuple(r.device for r in eligible if not r.firmware_key))
