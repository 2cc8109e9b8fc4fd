"""Platform benchmark (``twin bench``): zero-touch enrolment throughput, end to end.

Measured, never asserted (house style 11). Issue 5's target: 10,000 devices onboarded in under
10 s on a 2-core machine, i.e. at least 1,000 devices/s. The timed part is the platform's
work for each device, exactly as :meth:`cloud.enrolment.EnrolmentService.enrol` does it:

* the attestation check (COSE_Sign1 ES256 verify, claims, nonce freshness, measurements);
* the CSR check (RFC 2986 self-signature: proof of possession) and the key binding;
* certificate issuance (one ECDSA P-256 signature by the issuing CA);
* the inventory write (``provision`` and ``onboard``, each an audited SQLite transaction);
* the policy update (the device's grants, and the Mosquitto ACL for the whole fleet).

Also reported (``sim_identities``): what ``fleet.identity: qdid`` costs a simulated run before
it starts, per device: manufacture, PUF enrolment and boot, registration, the device's token
and CSR, and the platform's checks and certificate (everything :class:`twin.sim.platform.
SimPlatform` does), for a smaller fleet, extrapolated linearly to 10,000 devices.

Not timed, and reported separately: manufacturing the chips (PUF model, fuzzy-extractor
enrolment, first boot, registration: the factory's work, not the platform's) and the devices'
own work (signing the token and the CSR: done by each device in parallel in a real fleet).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from cloud.enrolment import Enrolment
from cloud.inventory import Inventory, MemoryInventory
from cloud.onboarding import Grants, cloud_grants, mosquitto_acl
from devices.enrolment import EnrolmentClient
from twin.bench.platform_shards import EnrolmentShards, ShardConfig
from twin.core.messages import ProvisioningRequest
from twin.core.seeds import SeedTree
from twin.platform import FleetInventory, Platform

BLOCK = 500
TARGET_PER_S = 1000.0
SIM_DEVICES = 1000


def run_platform_bench(devices: int = 10_000, seed: int = 1, inventory: str = "sqlite",
                       workers: int = 2, sim_devices: int = SIM_DEVICES) -> dict[str, Any]:
    """Measure enrolment throughput for ``devices`` QDID devices.

    Args:
        devices: fleet size.
        seed: run seed.
        inventory: ``"sqlite"`` (the file-backed inventory ``twin provision`` uses) or
            ``"memory"`` (to separate the database's cost from the rest).
        workers: 1 runs everything in this process; more shards the chips over that many
            worker processes with this process as the single inventory writer
            (:mod:`twin.bench.platform_shards`).
        sim_devices: fleet size for the ``sim_identities`` figure (0 skips it).

    Returns:
        A JSON-able dict: timings of each phase, devices/s for the timed part and whether it
        met the 1,000/s target.
    """
    with tempfile.TemporaryDirectory(prefix="medtwin-bench-") as folder:
        store: Inventory = (FleetInventory(Path(folder) / "inventory.sqlite")
                            if inventory == "sqlite" else MemoryInventory())
        platform, config = _platform(seed, store)
        if workers > 1:
            result = _measure_sharded(store, config, workers, devices)
        else:
            result = _measure(platform, SeedTree(seed), devices)
        if isinstance(store, FleetInventory):
            store.close()
    result.update({"benchmark": "platform", "devices": devices, "inventory": inventory,
                   "workers": workers,
                   "target_per_s": TARGET_PER_S,
                   "meets_target": result["enrol_per_s"] >= TARGET_PER_S,
                   "sim_identities": (sim_identities(min(devices, sim_devices), seed)
                                      if sim_devices else None)})
    return result


def sim_identities(devices: int, seed: int = 1) -> dict[str, Any]:
    """Time the enrolment of a simulated QDID fleet (``fleet.identity: qdid``), everything in.

    Returns:
        Devices, seconds, milliseconds a device, and the linear extrapolation to 10,000.
    """
    from twin.core.messages import Kind
    from twin.sim.platform import SimPlatform

    kinds = [list(Kind)[i % len(Kind)] for i in range(devices)]
    t0 = time.perf_counter()
    SimPlatform(SeedTree(seed), "bench").enrol_fleet(kinds)
    seconds = time.perf_counter() - t0
    return {"devices": devices, "seconds": round(seconds, 3),
            "ms_per_device": round(seconds / devices * 1e3, 3),
            "extrapolated_10000_s": round(seconds / devices * 10_000, 1)}


def _platform(seed: int, store: Inventory) -> tuple[Platform, ShardConfig]:
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives import serialization

    from cloud import pki
    from twin.platform import ORG, platform_key

    tree = SeedTree(seed)
    epoch = datetime(2026, 1, 5, 8, tzinfo=UTC)
    root = pki.make_root(platform_key(tree, "root"), ORG, epoch)
    issuing = pki.make_issuing(root, platform_key(tree, "issuing"), ORG, epoch)
    endpoint, validity = "mqtts://127.0.0.1:8883", timedelta(days=7)
    key_pem = issuing.key.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    config = ShardConfig(seed, "bench", endpoint, epoch, validity, root.pem, issuing.pem,
                         key_pem)
    return Platform(root.certificate, issuing, store, "bench", endpoint, epoch,
                    validity), config


def _measure_sharded(store: Inventory, config: ShardConfig, workers: int,
                     devices: int) -> dict[str, Any]:
    """The timed phase per block: the shards enrol their pending requests in parallel, then
    this process (the single writer) applies their journals, one transaction per block."""
    made_s = enrol_s = write_s = parent_cpu = shard_cpu = busiest = 0.0
    grants: list[Grants] = []
    t0 = time.perf_counter()
    shards = EnrolmentShards(config, workers)
    start_s = time.perf_counter() - t0
    try:
        for start in range(0, devices, BLOCK * workers):
            t0 = time.perf_counter()
            store.apply(shards.prepare(range(start, min(start + BLOCK * workers, devices))))
            t1, c1 = time.perf_counter(), time.process_time()
            results = shards.enrol()
            t2 = time.perf_counter()
            store.apply([row for result in results for row in result.rows])
            t3, c3 = time.perf_counter(), time.process_time()
            made_s, enrol_s, write_s = made_s + t1 - t0, enrol_s + t2 - t1, write_s + t3 - t2
            parent_cpu += c3 - c1
            shard_cpu += sum(result.cpu_s for result in results)
            busiest += max(result.cpu_s for result in results)
            grants += [g for result in results for g in result.grants]
    finally:
        shards.close()
    t0, c0 = time.perf_counter(), time.process_time()
    acl = mosquitto_acl([*grants, cloud_grants(config.tenant)])
    acl_s, acl_cpu = time.perf_counter() - t0, time.process_time() - c0
    timed = enrol_s + write_s + acl_s
    return {
        "manufacture_and_device_side_s": round(made_s, 3), "pool_start_s": round(start_s, 3),
        "enrol_s": round(timed, 3), "shards_wall_s": round(enrol_s, 3),
        "write_s": round(write_s, 3), "acl_s": round(acl_s, 4), "acl_bytes": len(acl),
        "enrol_per_s": round(devices / timed, 1) if timed > 0 else None,
        "enrol_us_per_device": round(timed / devices * 1e6, 1),
        "cpu_s": {"shards": round(shard_cpu, 3), "writer": round(parent_cpu + acl_cpu, 3)},
        "cpu_us_per_device": round((shard_cpu + parent_cpu + acl_cpu) / devices * 1e6, 1),
        # A projection, not a measurement: the rate if each process had a core to itself
        # (the busiest shard's CPU time each block, plus the writer's, in sequence).
        "cpu_bound_per_s": round(devices / (busiest + parent_cpu + acl_cpu), 1),
        "onboarded": store.by_state().get("onboarded", 0),
        "excluded": "starting the worker processes, manufacture (PUF, fuzzy extractor, "
                    "first boot, registration) and the devices' token and CSR signatures "
                    "(all run in the shards before each timed phase)",
    }


def _measure(platform: Platform, tree: SeedTree, devices: int) -> dict[str, Any]:
    rng = tree.rng("bench", "nonces")
    made_s = device_s = enrol_s = cpu_s = 0.0
    issued: list[Enrolment] = []
    for start in range(0, devices, BLOCK):  # blocks bound memory: a chip model is 64 KiB
        requests: list[ProvisioningRequest] = []
        for number in range(start, min(start + BLOCK, devices)):
            t0 = time.perf_counter()
            made = platform.manufacture(tree, number, 0.0)
            t1 = time.perf_counter()
            client = EnrolmentClient(made.device, made.chip, platform.tenant)
            nonce = platform.service.challenge(made.chip, rng, 0.0)
            requests.append(client.request(nonce, 0.0))
            t2 = time.perf_counter()
            made_s, device_s = made_s + t1 - t0, device_s + t2 - t1
        t0, c0 = time.perf_counter(), time.process_time()
        issued += [platform.service.enrol(request, 1.0) for request in requests]
        enrol_s, cpu_s = enrol_s + time.perf_counter() - t0, cpu_s + time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    acl = mosquitto_acl([*(e.grants for e in issued), cloud_grants(platform.tenant)])
    acl_s, cpu_s = time.perf_counter() - t0, cpu_s + time.process_time() - c0
    timed = enrol_s + acl_s
    return {
        "manufacture_s": round(made_s, 3), "device_side_s": round(device_s, 3),
        "enrol_s": round(timed, 3), "acl_s": round(acl_s, 4), "acl_bytes": len(acl),
        "enrol_per_s": round(devices / timed, 1) if timed > 0 else None,
        "enrol_us_per_device": round(timed / devices * 1e6, 1),
        "cpu_s": round(cpu_s, 3), "cpu_us_per_device": round(cpu_s / devices * 1e6, 1),
        "end_to_end_per_s": round(devices / (timed + device_s), 1),
        "onboarded": platform.inventory.by_state().get("onboarded", 0),
        "excluded": "manufacture (PUF, fuzzy extractor, first boot, registration) and the "
                    "devices' token and CSR signatures; end_to_end_per_s includes the latter",
    }
