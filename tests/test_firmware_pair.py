"""Signed, encrypted firmware between the platform and a device: one test per named attack.

Each attack test asserts the typed refusal (FirmwareRejected with its reason) AND that the
device's trusted state (running image, anti-rollback counter, staged slot) is unchanged.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloud.firmware import Release, build_release
from devices.errors import FirmwareRejected
from devices.firmware import Image, UpdateClient
from twin.core.cose import sign1
from twin.core.firmware import encode_manifest
from twin.core.keys import p256_private_key

SIGNING = p256_private_key(b"platform", b"firmware-signing")
SECRET = b"platform firmware secret"
COMPONENT = "ecg_patch/app"


Device = tuple[UpdateClient, ec.EllipticCurvePrivateKey]


def device(seed: bytes = b"chip-1", sequence: int = 3) -> Device:
    key = p256_private_key(seed, b"firmware-decryption")
    return UpdateClient(COMPONENT, SIGNING.public_key(), key, Image(sequence, b"\x00" * 32)), key


def release(sequence: int = 4, image: bytes = b"firmware image " * 100,
            signer: ec.EllipticCurvePrivateKey = SIGNING) -> Release:
    return build_release(image, COMPONENT, sequence, signer, SECRET)


def snapshot(client: UpdateClient) -> tuple[object, ...]:
    return client.running, client.counter, client.staged


def refused(client: UpdateClient, reason: str, envelope: bytes, wrapped: bytes,
            ciphertext: bytes) -> None:
    before = snapshot(client)
    with pytest.raises(FirmwareRejected) as err:
        client.stage(envelope, wrapped, ciphertext)
    assert err.value.reason == reason
    assert snapshot(client) == before


def test_a_genuine_update_installs_and_advances_the_counter_on_confirm():
    client, key = device()
    rel = release()
    staged = client.stage(rel.envelope, rel.wrap_for(key.public_key()), rel.ciphertext)
    assert staged.sequence == 4 and client.counter == 3
    client.boot_staged()
    client.confirm()
    assert client.running.sequence == 4 and client.counter == 4


def test_unsigned_firmware_is_refused():
    client, key = device()
    rel = release()
    unsigned = encode_manifest(rel.manifest)  # the manifest without its COSE envelope
    refused(client, "signature", unsigned, rel.wrap_for(key.public_key()), rel.ciphertext)


def test_firmware_signed_by_the_wrong_key_is_refused():
    client, key = device()
    rogue = release(signer=p256_private_key(b"attacker", b"signing"))
    refused(client, "signature", rogue.envelope, rogue.wrap_for(key.public_key()),
            rogue.ciphertext)


def test_tampered_ciphertext_is_refused():
    client, key = device()
    rel = release()
    tampered = bytearray(rel.ciphertext)
    tampered[10] ^= 0xFF
    refused(client, "decrypt", rel.envelope, rel.wrap_for(key.public_key()), bytes(tampered))


def test_rollback_to_an_older_signed_version_is_refused():
    client, key = device(sequence=5)
    old = release(sequence=4)  # genuinely signed by the platform, but older
    refused(client, "rollback", old.envelope, old.wrap_for(key.public_key()), old.ciphertext)


def test_equal_version_replay_is_refused():
    client, key = device()
    rel = release(sequence=4)
    client.stage(rel.envelope, rel.wrap_for(key.public_key()), rel.ciphertext)
    client.boot_staged()
    client.confirm()
    refused(client, "replay", rel.envelope, rel.wrap_for(key.public_key()), rel.ciphertext)


def test_a_key_wrapped_for_another_device_does_not_decrypt():
    client, _ = device(b"chip-1")
    _, other_key = device(b"chip-2")
    rel = release()
    refused(client, "decrypt", rel.envelope, rel.wrap_for(other_key.public_key()),
            rel.ciphertext)


def test_a_ciphertext_moved_under_another_signed_manifest_is_refused():
    client, key = device()
    a, b = release(sequence=4, image=b"A" * 500), release(sequence=5, image=b"B" * 500)
    refused(client, "decrypt", b.envelope, b.wrap_for(key.public_key()), a.ciphertext)


def test_a_signed_manifest_whose_digest_does_not_match_is_refused():
    client, key = device()
    rel = release()
    forged_manifest = encode_manifest(rel.manifest.__class__(
        rel.manifest.component, rel.manifest.sequence, rel.manifest.size, b"\x11" * 32,
        rel.manifest.nonce, rel.manifest.epk))
    # Signed by the real key (an insider mistake), so only the digest check can catch it.
    envelope = sign1(forged_manifest, SIGNING, b"fw-signing")
    ciphertext = AESGCM(rel.content_key).encrypt(rel.manifest.nonce, b"firmware image " * 100,
                                                 forged_manifest)
    refused(client, "digest", envelope, rel.wrap_for(key.public_key()), ciphertext)


def test_firmware_for_another_component_is_refused():
    client, key = device()
    other = build_release(b"x" * 100, "bp_cuff/app", 9, SIGNING, SECRET)
    refused(client, "component", other.envelope, other.wrap_for(key.public_key()),
            other.ciphertext)


def test_a_trial_image_that_fails_is_reverted_and_the_counter_is_kept():
    client, key = device()
    rel = release()
    client.stage(rel.envelope, rel.wrap_for(key.public_key()), rel.ciphertext)
    client.boot_staged()
    previous = client.revert()
    assert previous.sequence == 3 and client.running.sequence == 3 and client.counter == 3
    with pytest.raises(FirmwareRejected) as err:
        client.confirm()
    assert err.value.reason == "state"


def test_releases_are_reproducible():
    assert release().ciphertext == release().ciphertext
