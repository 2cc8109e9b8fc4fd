"""COSE_Sign1 envelopes: round trip, and every refusal is SignatureInvalid."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.core.cose import SignatureInvalid, key_id, sign1, verify1
from twin.core.keys import p256_private_key

KEY = p256_private_key(b"cose-test", b"signer")
OTHER = p256_private_key(b"cose-test", b"other")
ENVELOPE = sign1(b"payload", KEY, b"kid-1")


def test_round_trip_returns_the_payload_and_kid():
    assert verify1(ENVELOPE, KEY.public_key()) == b"payload"
    assert key_id(ENVELOPE) == b"kid-1"


def test_another_key_is_refused():
    with pytest.raises(SignatureInvalid, match="does not verify"):
        verify1(ENVELOPE, OTHER.public_key())


def test_a_flipped_bit_anywhere_is_refused():
    for i in range(len(ENVELOPE)):
        bad = bytearray(ENVELOPE)
        bad[i] ^= 0x01
        with pytest.raises(SignatureInvalid):
            verify1(bytes(bad), KEY.public_key())


def test_an_untagged_or_short_array_is_refused():
    items = list(cbor2.loads(ENVELOPE).value)
    with pytest.raises(SignatureInvalid, match="tagged"):
        verify1(cbor2.dumps(items), KEY.public_key())
    with pytest.raises(SignatureInvalid, match="four items"):
        verify1(cbor2.dumps(cbor2.CBORTag(18, items[:3])), KEY.public_key())


def test_a_payload_swapped_under_a_valid_signature_is_refused():
    items = list(cbor2.loads(ENVELOPE).value)
    items[2] = b"another payload"
    with pytest.raises(SignatureInvalid):
        verify1(cbor2.dumps(cbor2.CBORTag(18, items)), KEY.public_key())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_signature_invalid_only(data: bytes):
    with pytest.raises(SignatureInvalid):
        verify1(data, KEY.public_key())
