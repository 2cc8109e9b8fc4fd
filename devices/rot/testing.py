"""Test helpers shipped beside the code (house style 6, attrs/structlog's habit).

They build enrolled, booted devices in one call, deterministically from a seed, for the
project's tests and for other packages' protocol-pair tests (the cloud verifier, the broker).
"""

from __future__ import annotations

from devices.rot.device import FirmwareImage, InjectedKeyDevice, QdidDevice
from devices.rot.physics import NOMINAL, Conditions, manufacture
from twin.core.seeds import SeedTree

SIGNER = bytes(range(32))
FIRMWARE = (FirmwareImage("BL", "1.0.0", SIGNER, b"medtwin bootloader"),
            FirmwareImage("App", "1.4.2", SIGNER, b"medtwin wearable application"))
"""A two-stage boot chain (PSA measurement types "BL" and "App")."""


def qdid_device(seed: int = 1, chip: int = 0, cond: Conditions = NOMINAL,
                boot: bool = True) -> QdidDevice:
    """Manufacture chip ``chip`` of run ``seed``, enrol it, and (by default) boot it.

    Args:
        seed: run seed.
        chip: chip number (its stream is ``("chip", chip, ...)``).
        cond: boot conditions.
        boot: whether to boot it (with :data:`FIRMWARE`).

    Returns:
        The device.
    """
    tree = SeedTree(seed)
    device = QdidDevice.enrol(manufacture(tree, [chip]), tree.rng("chip", chip, "enrol"))
    if boot:
        device.boot(cond, tree.rng("chip", chip, "boot", 0), FIRMWARE)
    return device


def injected_device(seed: int = 1, number: int = 0, boot: bool = True) -> InjectedKeyDevice:
    """A baseline device provisioned by station stream ``("station", number)``, booted."""
    tree = SeedTree(seed)
    device = InjectedKeyDevice.provision(tree.rng("station", number))
    if boot:
        device.boot(tree.rng("station", number, "boot"), FIRMWARE)
    return device
