"""Key derivation: labelled, indexed, unbiased, and the UEID bound to the identity key."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devices.rot.keys import P256_ORDER, DeviceKeys, KeyLabel, expand, identity, p256_key, spki
from twin.core.identity import Ueid

SEED = bytes(range(32))


def _scalar(key: ec.EllipticCurvePrivateKey) -> int:
    return key.private_numbers().private_value


def test_labels_give_independent_keys() -> None:
    scalars = {_scalar(p256_key(SEED, label)) for label in
               (KeyLabel.IDENTITY, KeyLabel.ATTESTATION, KeyLabel.FIRMWARE)}
    assert len(scalars) == 3
    assert expand(SEED, KeyLabel.STORAGE, 0, 32) != expand(SEED, KeyLabel.IDENTITY, 0, 32)


def test_derivation_is_deterministic_and_the_index_rotates_identity() -> None:
    assert _scalar(p256_key(SEED, KeyLabel.IDENTITY)) == _scalar(p256_key(SEED, KeyLabel.IDENTITY))
    first, second = identity(SEED, 0)[1], identity(SEED, 1)[1]
    assert first != second


def test_ueid_is_the_hash_of_the_identity_public_key() -> None:
    key, ueid = identity(SEED)
    assert ueid == Ueid.from_public_key(spki(key.public_key()))
    keys = DeviceKeys.derive(SEED)
    assert _scalar(keys.identity) == _scalar(key) and len(keys.storage) == 32


def test_scalars_are_in_range() -> None:
    for i in range(50):
        assert 1 <= _scalar(p256_key(SEED, KeyLabel.IDENTITY, i)) < P256_ORDER


@pytest.mark.parametrize(("seed", "index"), [(b"short", 0), (SEED, -1), (SEED, 2**32)])
def test_bad_seed_or_index_is_refused(seed: bytes, index: int) -> None:
    with pytest.raises(ValueError):
        expand(seed, KeyLabel.IDENTITY, index, 32)
