"""Building the simulated fleet from a scenario, and grouping it for the batched stepper.

Devices are numbered in kind order (ECG patches, then cuffs, then sweat patches). Each gets its
identity, battery and random stream from the run's seed tree by its number, so the same
scenario and seed build the same fleet. For the stepper the fleet is split into phase groups:
group ``g`` closes its windows at ``g * window / G + m * window``; devices are spread over the
groups so that the broker sees a steady stream rather than one burst per window, while each
group's signals are still computed in one numpy batch per kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric import ec

from broker.policy import Principal, Role
from devices.battery import PROFILES, Battery
from devices.firmware import Image, UpdateClient
from devices.physiology import CohortParams, WfdbReplay, make_source
from devices.physiology.sources import Source
from devices.wearable import WearableConfig, WearableCore
from twin.core.identity import Ueid
from twin.core.keys import p256_private_key
from twin.core.messages import Kind
from twin.core.seeds import SeedTree
from twin.scenario.schema import Scenario
from twin.sim.broker import Endpoint
from twin.sim.network import LatencySampler, Link
from twin.sim.platform import Identity

PHASE_GROUPS = 10
FACTORY_SEQUENCE = 1
"""Every simulated device leaves the factory running firmware sequence 1."""


def platform_signing_key(seeds: SeedTree) -> ec.EllipticCurvePrivateKey:
    """The platform's firmware-signing key for this run (devices trust its public half)."""
    return p256_private_key(seeds.entropy("platform", "firmware-signing", n_bytes=32),
                            b"medtwin firmware signing")


def _updater(kind: Kind, i: int, seeds: SeedTree, anchor: ec.EllipticCurvePublicKey,
             key: ec.EllipticCurvePrivateKey | None = None) -> UpdateClient:
    """A device's update client. Its firmware-decryption key is the one its QDID root of trust
    derived (``key``), or, for seeded identities, one from the device's own seed stream."""
    key = key or p256_private_key(seeds.entropy("device", i, "firmware", n_bytes=32),
                                  b"medtwin firmware decryption")
    factory = Image(FACTORY_SEQUENCE, hashlib.sha256(f"{kind.value} factory".encode()).digest())
    return UpdateClient(f"{kind.value}/app", anchor, key, factory)
SERIAL_PREFIX = {Kind.ECG_PATCH: "ECG", Kind.BP_CUFF: "BPC", Kind.SWEAT_PATCH: "SWP"}


@dataclass(frozen=True)
class Group:
    """The devices of one kind whose windows close together."""

    kind: Kind
    source: Source
    local: npt.NDArray[np.intp]
    endpoints: tuple[Endpoint, ...]
    offset: int
    """Fleet index of the source's device 0 (sources number their own devices)."""


@dataclass(frozen=True)
class Fleet:
    """The built fleet: endpoints in device order, serials, and the phase groups, each
    with the signal source that computes its windows."""

    endpoints: tuple[Endpoint, ...]
    serials: tuple[str, ...]
    groups: tuple[tuple[Group, ...], ...]

    def phase(self, group: int, window: float) -> float:
        """Offset of a phase group's windows within the window period."""
        return group * window / len(self.groups)


def build_fleet(scenario: Scenario, seeds: SeedTree, access: LatencySampler,
                identities: Sequence[Identity] = ()) -> Fleet:
    """Create every device of the scenario with its core, link and sensor generator.

    Args:
        scenario: the (validated) scenario.
        seeds: the run's seed tree.
        access: the latency sampler of the devices' access network.
        identities: per device, in fleet order, the identity it enrolled with
            (``fleet.identity: qdid``); empty: identities from the run seed.

    Returns:
        The fleet.
    """
    c = scenario.fleet.cohort.model_dump()
    cohort = CohortParams(**{**c, "episode_rates": tuple(sorted(c["episode_rates"].items()))})
    config = WearableConfig(window_s=scenario.window, buffer_limit=scenario.fleet.buffer_windows)
    tenant = scenario.fleet.tenant
    soc = seeds.rng("fleet", "battery").uniform(0.6, 1.0, scenario.device_count())
    anchor = platform_signing_key(seeds).public_key() if scenario.ota else None
    endpoints: list[Endpoint] = []
    serials: list[str] = []
    by_group: list[list[Group]] = [[] for _ in range(PHASE_GROUPS)]
    for kind in Kind:
        n = scenario.fleet.devices.get(kind.value, 0)
        if n == 0:
            continue
        first = len(endpoints)
        for j in range(n):
            i = first + j
            enrolled = identities[i] if identities else None
            ueid = (enrolled.device if enrolled
                    else Ueid.from_random(seeds.entropy("device", i, "ueid")).hex)
            key = enrolled.firmware_key if enrolled else None
            updater = _updater(kind, i, seeds, anchor, key) if anchor else None
            core = WearableCore(ueid, kind, tenant, Battery(PROFILES[kind], float(soc[i])),
                                seeds.rng("device", i), config, updater)
            endpoints.append(Endpoint(Principal(Role.DEVICE, tenant, ueid), core, Link(),
                                      access, index=i, serial=enrolled.serial if enrolled else 0,
                                      expires=enrolled.expires if enrolled else float("inf")))
            serials.append(f"{SERIAL_PREFIX[kind]}-{j + 1:05d}")
        for source, start, count in _sources(scenario, kind, n, cohort, seeds):
            for g in range(PHASE_GROUPS):
                # Phase by index within the kind, so replaying devices keep their phases.
                local = np.array([j - start for j in range(start, start + count)
                                  if j % PHASE_GROUPS == g], dtype=np.intp)
                if len(local):
                    eps = tuple(endpoints[first + start + int(j)] for j in local)
                    by_group[g].append(Group(kind, source, local, eps, first + start))
    return Fleet(tuple(endpoints), tuple(serials), tuple(map(tuple, by_group)))


def _sources(scenario: Scenario, kind: Kind, n: int, cohort: CohortParams, seeds: SeedTree
             ) -> list[tuple[Source, int, int]]:
    """The signal sources of one kind: ``(source, first index within the kind, count)``.

    ECG patches may replay a real WFDB record (the scenario's ``fleet.replay``): the first
    ``devices`` of them, each from its own offset into the record.
    """
    replay = scenario.fleet.replay if kind is Kind.ECG_PATCH else None
    replayed = min(n, replay.devices) if replay else 0
    out: list[tuple[Source, int, int]] = []
    if replay and replayed:
        out.append((WfdbReplay(replay.record, n_devices=replayed, window_s=scenario.window),
                    0, replayed))
    if n > replayed:
        out.append((make_source(kind, n - replayed, cohort, seeds, window_s=scenario.window),
                    replayed, n - replayed))
    return out
