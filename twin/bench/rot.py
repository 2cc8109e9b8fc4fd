"""Root-of-trust benchmark (``twin bench``): enrolment, fleet boot, attestation throughput.

Measured, never asserted (house style 11). The target from issue 4: reconstruct the seed and
derive the identity key (and its UEID) for 10,000 devices in under 5 s on one core, so that
fleet boot does not dominate a run. Chips are made and enrolled in blocks of 1,000 to bound
memory (the cell model holds 64 KiB per chip).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from cloud.attestation import AttestationVerifier
from devices.rot.device import IMPLEMENTATION_ID, FirmwareImage, QdidDevice
from devices.rot.extractor import enrol, reconstruct
from devices.rot.keys import identity
from devices.rot.metrics import WORST_CORNER
from devices.rot.physics import NOMINAL, manufacture
from twin.core.seeds import SeedTree

BLOCK = 1000


def run_rot_bench(devices: int = 10_000, tokens: int = 500, seed: int = 1) -> dict[str, Any]:
    """Measure the root of trust's throughput.

    Args:
        devices: fleet size for enrolment and boot.
        tokens: attestation tokens to create and verify.
        seed: run seed.

    Returns:
        A JSON-able dict: per-second rates, the fleet-boot time for ``devices`` and whether
        it met the 5 s target, and the reconstruction failures seen (expected 0).
    """
    tree = SeedTree(seed)
    enrol_s = boot_s = 0.0
    failures = 0
    for start in range(0, devices, BLOCK):
        numbers = range(start, min(start + BLOCK, devices))
        chips = manufacture(tree, numbers)
        t0 = time.perf_counter()
        helpers = enrol(chips, tree.rng("bench", "enrol", start)).helpers
        t1 = time.perf_counter()
        # Fleet boot: one batched PUF read, then per device decode + HKDF + P-256 + UEID.
        seeds = reconstruct(chips, helpers, WORST_CORNER, tree.rng("bench", "boot", start))
        for s in seeds:
            if s is None:
                failures += 1
            else:
                identity(s)
        t2 = time.perf_counter()
        enrol_s += t1 - t0
        boot_s += t2 - t1
    create, verify = _attestation_rates(tree, tokens)
    return {
        "benchmark": "rot",
        "devices": devices,
        "enrolments_per_s": round(devices / enrol_s),
        "fleet_boot_s": round(boot_s, 3),
        "fleet_boot_target_s": 5.0,
        "fleet_boot_met_target": boot_s < 5.0,
        "reconstructions_with_identity_per_s": round(devices / boot_s),
        "boot_condition": "worst corner -20C/0.9V/10y",
        "reconstruction_failures": failures,
        "attestation_tokens_created_per_s": round(create),
        "attestation_tokens_verified_per_s": round(verify),
    }


def _attestation_rates(tree: SeedTree, tokens: int) -> tuple[float, float]:
    """Tokens per second created by one device and verified by one verifier."""
    device = QdidDevice.enrol(manufacture(tree, [0]), tree.rng("bench", "device"))
    device.boot(NOMINAL, tree.rng("bench", "device", "boot"),
                [FirmwareImage("BL", "1.0.0", bytes(32), b"bootloader"),
                 FirmwareImage("App", "1.0.0", bytes(32), b"application")])
    verifier = AttestationVerifier([IMPLEMENTATION_ID])
    verifier.register(device.ueid, device.attestation_spki)
    rng = np.random.default_rng(0)
    nonces = [verifier.challenge(rng, 0.0) for _ in range(tokens)]
    t0 = time.perf_counter()
    made = [device.attest(n, 1.0) for n in nonces]
    t1 = time.perf_counter()
    for token in made:
        verifier.verify_token(token, 2.0)
    t2 = time.perf_counter()
    return tokens / (t1 - t0), tokens / (t2 - t1)


if __name__ == "__main__":
    import json

    print(json.dumps(run_rot_bench(), indent=2))
