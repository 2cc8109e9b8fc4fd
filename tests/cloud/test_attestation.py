"""The attestation verifier: one test per attack, each asserting the typed error AND that the
verifier's trusted state is unchanged (python-tuf style); plus the happy path and fuzzing."""

from __future__ import annotations

import contextlib

import cbor2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.attestation import AttestationError, AttestationVerifier
from cloud.errors import CloudError
from devices.rot.device import IMPLEMENTATION_ID
from devices.rot.testing import FIRMWARE, injected_device, qdid_device
from devices.rot.token import sign_token
from twin.core.attestation import AttestationClaims, Lifecycle, decode_claims
from twin.core.identity import Ueid

REFERENCE = {s.kind: [s.measure().value] for s in FIRMWARE}


@pytest.fixture
def pair():
    """A booted QDID device, a verifier that trusts it, and a fresh challenge."""
    device = qdid_device(seed=31)
    verifier = AttestationVerifier([IMPLEMENTATION_ID], REFERENCE, nonce_ttl_s=60.0)
    verifier.register(device.ueid, device.attestation_spki)
    nonce = verifier.challenge(np.random.default_rng(0), now=100.0)
    return device, verifier, nonce


def _refused(verifier: AttestationVerifier, token: bytes, now: float, reason: str) -> None:
    before = verifier.state()
    with pytest.raises(AttestationError) as info:
        verifier.verify_token(token, now)
    assert info.value.reason == reason
    assert verifier.state() == before  # trusted state unchanged


def _resign(device, **changes) -> bytes:
    """A token with changed claims, correctly signed by the device's own attestation key."""
    claims = decode_claims(cbor2.loads(device.attest(bytes(32), 0.0)).value[2])
    fields = {f: getattr(claims, f) for f in AttestationClaims.__slots__}
    return sign_token(device.slots.get("attestation"), AttestationClaims(**{**fields, **changes}))


def test_a_fresh_token_from_a_known_device_verifies(pair) -> None:
    device, verifier, nonce = pair
    claims = verifier.verify_token(device.attest(nonce, 101.0), now=102.0)
    assert claims.instance_id == device.ueid and claims.nonce == nonce
    assert [c.kind for c in claims.software] == ["BL", "App"]
    assert Lifecycle.of(claims.lifecycle) is Lifecycle.SECURED
    assert issubclass(AttestationError, CloudError)


def test_tampered_token_is_refused(pair) -> None:
    device, verifier, nonce = pair
    token = bytearray(device.attest(nonce, 101.0))
    at = token.find(b"App")  # change a measured component's type in the signed payload
    token[at : at + 3] = b"Ap1"
    _refused(verifier, bytes(token), 102.0, "signature")


def test_stale_nonce_replay_is_refused(pair) -> None:
    device, verifier, nonce = pair
    token = device.attest(nonce, 101.0)
    verifier.verify_token(token, 102.0)
    _refused(verifier, token, 103.0, "nonce")


def test_expired_nonce_is_refused(pair) -> None:
    device, verifier, nonce = pair
    _refused(verifier, device.attest(nonce, 101.0), 100.0 + 61.0, "nonce")


def test_nonce_the_verifier_never_issued_is_refused(pair) -> None:
    device, verifier, _ = pair
    _refused(verifier, device.attest(bytes(32), 101.0), 102.0, "nonce")


def test_token_signed_by_another_devices_key_is_refused(pair) -> None:
    device, verifier, nonce = pair
    other = qdid_device(seed=31, chip=1)
    verifier.register(other.ueid, other.attestation_spki)
    forged = _resign(other, instance_id=device.ueid, nonce=nonce)  # claims to be `device`
    _refused(verifier, forged, 102.0, "signature")


def test_decommissioned_lifecycle_is_refused(pair) -> None:
    device, verifier, nonce = pair
    device.lifecycle = Lifecycle.DECOMMISSIONED
    _refused(verifier, device.attest(nonce, 101.0), 102.0, "lifecycle")


def test_debug_lifecycle_is_refused(pair) -> None:
    device, verifier, nonce = pair
    device.lifecycle = Lifecycle.NON_PSA_ROT_DEBUG | 0x01
    _refused(verifier, device.attest(nonce, 101.0), 102.0, "lifecycle")


def test_unknown_device_is_refused(pair) -> None:
    _, verifier, nonce = pair
    stranger = injected_device(seed=31)
    _refused(verifier, stranger.attest(nonce, 101.0), 102.0, "unknown_device")


def test_unaccepted_firmware_measurement_is_refused(pair) -> None:
    device, verifier, nonce = pair
    from devices.rot.device import FirmwareImage

    device.boot(*_boot_args(), [FIRMWARE[0], FirmwareImage("App", "6.6.6", bytes(32), b"evil")])
    _refused(verifier, device.attest(nonce, 101.0), 102.0, "measurement")


def test_unaccepted_implementation_is_refused(pair) -> None:
    device, verifier, nonce = pair
    device.implementation_id = bytes(32)
    _refused(verifier, device.attest(nonce, 101.0), 102.0, "implementation")


def test_algorithm_substitution_is_refused(pair) -> None:
    device, verifier, nonce = pair
    item = cbor2.loads(device.attest(nonce, 101.0))
    parts = list(item.value)
    parts[0] = cbor2.dumps({1: -8})  # EdDSA in the protected header
    _refused(verifier, cbor2.dumps(cbor2.CBORTag(18, parts)), 102.0, "malformed")


def test_registration_refuses_a_second_key_for_a_device(pair) -> None:
    device, verifier, _ = pair
    other = qdid_device(seed=31, chip=2)
    before = verifier.state()
    with pytest.raises(AttestationError):
        verifier.register(device.ueid, other.attestation_spki)
    with pytest.raises(AttestationError):
        verifier.register(Ueid.from_random(bytes(16)), b"not a key")
    assert verifier.state() == before


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_raise_only_attestation_error(raw: bytes) -> None:
    verifier = AttestationVerifier([IMPLEMENTATION_ID])
    with pytest.raises(AttestationError):
        verifier.verify_token(raw, 0.0)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=255))
def test_every_single_byte_corruption_is_refused(position: int, flip: int) -> None:
    device = _DEVICE
    verifier = AttestationVerifier([IMPLEMENTATION_ID])
    verifier.register(device.ueid, device.attestation_spki)
    nonce = verifier.challenge(np.random.default_rng(0), 0.0)
    token = bytearray(device.attest(nonce, 0.0))
    token[position % len(token)] ^= flip
    before = verifier.state()
    try:
        verifier.verify_token(bytes(token), 1.0)
    except AttestationError:
        assert verifier.state() == before
    else:  # only the unsigned kid header may change and still verify
        assert bytes(token) != device.attest(nonce, 0.0)


_DEVICE = qdid_device(seed=32)


def _boot_args():
    from devices.rot.physics import NOMINAL

    return NOMINAL, np.random.default_rng(7)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.dictionaries(
    st.sampled_from([6, 10, 256, 265, 2394, 2395, 2396, 2397, 2399]),
    st.one_of(st.integers(), st.binary(max_size=70), st.text(max_size=8), st.floats(),
              st.lists(st.dictionaries(st.integers(1, 6), st.binary(max_size=4)), max_size=3)),
).map(lambda d: cbor2.dumps(d)))
def test_claims_parser_parses_or_raises_decode_error(raw: bytes) -> None:
    from twin.core.errors import DecodeError

    with contextlib.suppress(DecodeError):
        decode_claims(raw)


def test_token_dated_in_the_verifiers_future_is_refused(pair) -> None:
    device, verifier, nonce = pair
    _refused(verifier, device.attest(nonce, 102.0 + 3600.0), 102.0, "nonce")
