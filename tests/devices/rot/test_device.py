"""Device recipes: identity uniqueness and stability, services, flash dumps, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from devices.rot.device import HELPER_BLOCK, QdidDevice
from devices.rot.errors import KeySlotError, ReconstructionError, RotError, StorageError
from devices.rot.extractor import HelperData, enrol, reconstruct
from devices.rot.keys import identity
from devices.rot.metrics import CORNERS
from devices.rot.physics import NOMINAL, Conditions, manufacture
from devices.rot.testing import FIRMWARE, injected_device, qdid_device
from twin.core.identity import Ueid
from twin.core.seeds import SeedTree

MESSAGE = b"ECG window 17"


def _verifies(spki_der: bytes, signature: bytes) -> bool:
    key = serialization.load_der_public_key(spki_der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        key.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def test_two_chips_never_derive_the_same_identity() -> None:
    tree = SeedTree(8)
    chips = manufacture(tree, range(500))
    seeds = reconstruct(chips, enrol(chips, tree.rng("enrol")).helpers, NOMINAL,
                        tree.rng("boot"))
    ueids = {identity(s)[1] for s in seeds if s is not None}
    assert len(ueids) == 500


def test_same_identity_across_reboots_temperatures_and_aging() -> None:
    device = qdid_device(seed=9, chip=3)
    ueid, spki = device.ueid, device.identity_spki
    rng = np.random.default_rng(0)
    for cond in (*CORNERS, Conditions(0.0, 1.0, 5.0), Conditions(45.0, 0.95, 2.0)):
        for _ in range(3):
            device.power_down()
            device.boot(cond, rng, FIRMWARE)
            assert device.ueid == ueid and device.identity_spki == spki


def test_signatures_verify_with_the_identity_key() -> None:
    device = qdid_device(seed=1)
    signature = device.sign(MESSAGE)
    assert _verifies(device.identity_spki, signature)
    assert device.sign(MESSAGE) == signature  # RFC 6979: deterministic


def test_keys_exist_only_while_powered() -> None:
    device = qdid_device(seed=1)
    device.power_down()
    with pytest.raises(KeySlotError):
        device.sign(MESSAGE)
    with pytest.raises(KeySlotError):
        _ = device.ueid


def test_sealed_storage_round_trips_and_detects_tampering() -> None:
    device = qdid_device(seed=1)
    rng = np.random.default_rng(0)
    device.seal("calibration", b"gain=1.02", rng)
    assert device.unseal("calibration") == b"gain=1.02"
    blob = bytearray(device.flash.read("store/calibration") or b"")
    blob[-1] ^= 1
    device.flash.write("store/calibration", bytes(blob))
    with pytest.raises(StorageError):
        device.unseal("calibration")
    with pytest.raises(StorageError):
        device.unseal("missing")


def test_storage_survives_reboot_but_not_a_move_to_another_chip() -> None:
    one, two = qdid_device(seed=1, chip=0), qdid_device(seed=1, chip=1)
    one.seal("k", b"patient 12", np.random.default_rng(0))
    one.boot(Conditions(70.0, 1.1, 10.0), np.random.default_rng(1), FIRMWARE)
    assert one.unseal("k") == b"patient 12"
    two.flash.write("store/k", one.flash.read("store/k") or b"")
    with pytest.raises(StorageError):
        two.unseal("k")


def test_rotation_gives_a_new_identity_from_the_same_silicon() -> None:
    device = qdid_device(seed=2)
    before = device.ueid
    assert device.rotate_identity() == 1
    device.boot(NOMINAL, np.random.default_rng(0), FIRMWARE)
    assert device.ueid != before


def test_boot_measures_firmware_and_draws_a_boot_seed() -> None:
    device = qdid_device(seed=2)
    assert [c.kind for c in device.registers.components] == ["BL", "App"]
    first = device.boot_seed
    device.boot(NOMINAL, np.random.default_rng(99), FIRMWARE)
    assert len(first) == 32 and device.boot_seed != first


def test_bad_nonce_size_is_refused() -> None:
    with pytest.raises(RotError):
        qdid_device(seed=2).attest(b"short", 0.0)


# ------------------------------------------------------------------ flash-dump attack


def _keys_in(dump: dict[str, bytes]) -> list[ec.EllipticCurvePrivateKey]:
    """The attacker's step: try every block in the dump as a private key."""
    found = []
    for blob in dump.values():
        try:
            key = serialization.load_der_private_key(blob, password=None)
        except (ValueError, TypeError):
            continue
        if isinstance(key, ec.EllipticCurvePrivateKey):
            found.append(key)
    return found


def test_flash_dump_of_the_baseline_yields_a_key_that_signs_as_the_device() -> None:
    device = injected_device(seed=4)
    stolen = _keys_in(dict(device.flash.dump()))
    assert stolen
    assert any(_verifies(device.identity_spki, k.sign(MESSAGE, ec.ECDSA(hashes.SHA256())))
               for k in stolen)


def test_flash_dump_of_a_qdid_device_yields_nothing_that_signs() -> None:
    device = qdid_device(seed=4)
    dump = dict(device.flash.dump())
    assert set(dump) == {"rot/helper", "rot/index"}
    assert _keys_in(dump) == []
    helper = HelperData.from_bytes(dump[HELPER_BLOCK])
    # The dump in a cloned board: another chip cannot turn this helper data into the keys.
    clone = QdidDevice(manufacture(SeedTree(4), [1]), device.flash)
    with pytest.raises(ReconstructionError):
        clone.boot(NOMINAL, np.random.default_rng(0))
    # Nor can the attacker treat the offset as the response (it is w XOR a random codeword).
    from devices.rot.extractor import _seed

    guess = np.unpackbits(np.frombuffer(helper.offset, dtype=np.uint8))[:1019]
    assert identity(_seed(guess))[1] != device.ueid


# ------------------------------------------------------------------ determinism


def test_same_seed_same_chip_same_keys_same_token() -> None:
    a, b = qdid_device(seed=77, chip=5), qdid_device(seed=77, chip=5)
    assert a.ueid == b.ueid and a.flash.dump() == b.flash.dump()
    nonce = bytes(32)
    assert a.attest(nonce, 10.0) == b.attest(nonce, 10.0)
    assert qdid_device(seed=78, chip=5).ueid != a.ueid
    assert isinstance(a.ueid, Ueid)
