"""Ueid: the device-identity format (RFC 9711 section 4.2.1, type RAND)."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.core.errors import IdentityError, MedtwinError
from twin.core.identity import URI_PREFIX, Ueid, is_device_id

material = st.binary(min_size=16, max_size=16)
HEX = "01" + "ab" * 16


@given(material)
def test_from_random_forms(raw: bytes) -> None:
    ueid = Ueid.from_random(raw)
    assert ueid.raw == b"\x01" + raw
    assert ueid.hex == "01" + raw.hex()
    assert len(ueid.hex) == 34
    assert str(ueid) == ueid.hex
    assert ueid.uri == URI_PREFIX + ueid.hex
    assert ueid.uri.startswith("urn:medtwin:device:")


@given(material)
def test_parse_and_from_uri_round_trip(raw: bytes) -> None:
    ueid = Ueid.from_random(raw)
    assert Ueid.parse(ueid.hex) == ueid
    assert Ueid.from_uri(ueid.uri) == ueid
    assert Ueid(ueid.raw) == ueid
    assert is_device_id(ueid.hex)


@given(material, material)
def test_equality_hash_and_order_follow_the_bytes(a: bytes, b: bytes) -> None:
    x, y = Ueid.from_random(a), Ueid.from_random(b)
    assert (x == y) == (a == b)
    assert (x < y) == (a < b)
    if a == b:
        assert hash(x) == hash(y)


def test_ueid_is_frozen() -> None:
    ueid = Ueid.parse(HEX)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ueid.raw = b"\x01" + bytes(16)  # type: ignore[misc]


@given(st.binary(max_size=200))
def test_from_public_key_is_deterministic_and_bound_to_the_key(spki: bytes) -> None:
    ueid = Ueid.from_public_key(spki)
    assert Ueid.from_public_key(spki) == ueid
    assert ueid.raw == b"\x01" + hashlib.sha256(spki).digest()[:16]


def test_different_keys_give_different_ueids() -> None:
    keys = [bytes([i]) * 91 for i in range(100)]
    assert len({Ueid.from_public_key(k) for k in keys}) == 100


@pytest.mark.parametrize("raw", [b"", bytes(1), bytes(15), bytes(17), bytes(32)])
def test_from_random_refuses_wrong_length_material(raw: bytes) -> None:
    with pytest.raises(IdentityError, match="16 bytes"):
        Ueid.from_random(raw)


@pytest.mark.parametrize(
    "raw", [b"", b"\x01", b"\x01" + bytes(15), b"\x01" + bytes(17), b"\x02" + bytes(16), bytes(17)]
)
def test_constructor_refuses_malformed_raw(raw: bytes) -> None:
    with pytest.raises(IdentityError):
        Ueid(raw)


@pytest.mark.parametrize(
    "text",
    [
        "", "01", HEX.upper(), "0X" + HEX[2:], "02" + "ab" * 16, "00" + "ab" * 16, HEX[:-1],
        HEX + "a", HEX + "ab", HEX[:-1] + "g", " " + HEX, HEX + " ", "01 " + "ab" * 16,
        HEX.replace("b", "B", 1), "\n" + HEX, URI_PREFIX + HEX, "０１" + "ab" * 16,
    ],
)
def test_parse_refuses_malformed_text(text: str) -> None:
    with pytest.raises(IdentityError):
        Ueid.parse(text)
    assert not is_device_id(text)


@pytest.mark.parametrize("value", [None, 1, bytes.fromhex(HEX), ["01"]])
def test_parse_refuses_non_strings(value: Any) -> None:
    with pytest.raises(IdentityError):
        Ueid.parse(value)
    assert not is_device_id(value)


def test_parse_refuses_a_trailing_newline() -> None:
    # identity._HEX is r"^01[0-9a-f]{32}$" used with .match(): "$" also matches just before a
    # final "\n", so "<hex>\n" is accepted (and bytes.fromhex ignores the newline).
    with pytest.raises(IdentityError):
        Ueid.parse(HEX + "\n")


def test_is_device_id_refuses_a_trailing_newline() -> None:
    assert not is_device_id(HEX + "\n")


def test_parse_error_quotes_the_text_briefly() -> None:
    with pytest.raises(IdentityError) as info:
        Ueid.parse("x" * 1000)
    assert len(str(info.value)) < 120


@pytest.mark.parametrize(
    "uri",
    [
        "", HEX, "urn:medtwin:device:", "urn:medtwin:device:" + HEX.upper(),
        "URN:medtwin:device:" + HEX, "urn:medtwin:devices:" + HEX, "urn:other:device:" + HEX,
        "urn:medtwin:device:" + HEX + "/x", "urn:medtwin:device:02" + "ab" * 16,
        " urn:medtwin:device:" + HEX,
    ],
)
def test_from_uri_refuses_malformed_uris(uri: str) -> None:
    with pytest.raises(IdentityError):
        Ueid.from_uri(uri)


@pytest.mark.parametrize("value", [None, 1, b"urn:medtwin:device:" + HEX.encode()])
def test_from_uri_refuses_non_strings(value: Any) -> None:
    with pytest.raises(IdentityError):
        Ueid.from_uri(value)


def test_from_uri_refuses_a_trailing_newline() -> None:
    with pytest.raises(IdentityError):
        Ueid.from_uri(URI_PREFIX + HEX + "\n")


@given(st.text(alphabet="0123456789abcdefABx \n", max_size=40))
def test_is_device_id_agrees_with_parse(text: str) -> None:
    try:
        ueid = Ueid.parse(text)
    except IdentityError:
        assert not is_device_id(text)
        return
    assert is_device_id(text)
    assert ueid.hex == text  # what parse accepts is exactly the canonical form


def test_identity_error_is_a_medtwin_error() -> None:
    assert issubclass(IdentityError, MedtwinError)
