"""The device-identity format used in topics, certificates and the inventory.

A device is named by its Universal Entity ID (UEID, RFC 9711 section 4.2.1): one type byte
followed by the identifier. medtwin uses type ``0x01`` (RAND) with 16 bytes, which RFC 9711
allows for identifiers that are unique by construction. When the root of trust exists the 16
bytes are the first half of SHA-256 over the identity public key (SubjectPublicKeyInfo, DER),
so the name is bound to the key the device proves possession of in mutual TLS.

Text forms:
    * hex, lowercase, 34 characters: the device segment of every MQTT topic;
    * ``urn:medtwin:device:<hex>``: the SAN URI of the device certificate.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from twin.core.errors import IdentityError, brief

UEID_TYPE_RAND = 0x01
UEID_ID_BYTES = 16
URI_PREFIX = "urn:medtwin:device:"
_HEX = re.compile(r"01[0-9a-f]{32}")  # always fullmatch(): "$" would let a trailing "\n" in


@dataclass(frozen=True, order=True, slots=True)
class Ueid:
    """A device's UEID (type byte plus 16 identifier bytes)."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 1 + UEID_ID_BYTES or self.raw[0] != UEID_TYPE_RAND:
            raise IdentityError(
                f"UEID must be 0x01 followed by {UEID_ID_BYTES} bytes, got {len(self.raw)} bytes"
            )

    @classmethod
    def from_random(cls, material: bytes) -> Ueid:
        """A UEID from 16 bytes of unique material (a chip's serial entropy).

        Raises:
            IdentityError: if ``material`` is not 16 bytes.
        """
        if len(material) != UEID_ID_BYTES:
            raise IdentityError(f"UEID material must be {UEID_ID_BYTES} bytes, got {len(material)}")
        return cls(bytes([UEID_TYPE_RAND]) + material)

    @classmethod
    def from_public_key(cls, spki_der: bytes) -> Ueid:
        """The UEID bound to an identity public key: ``0x01 || SHA-256(SPKI)[:16]``."""
        return cls.from_random(hashlib.sha256(spki_der).digest()[:UEID_ID_BYTES])

    @classmethod
    def parse(cls, text: str) -> Ueid:
        """Parse the 34-character lowercase hex form.

        Raises:
            IdentityError: naming the malformed text.
        """
        if not isinstance(text, str) or not _HEX.fullmatch(text):
            shown = brief(text, 48)
            raise IdentityError(f"not a device UEID (34 lowercase hex digits, 01...): {shown}")
        return cls(bytes.fromhex(text))

    @classmethod
    def from_uri(cls, uri: str) -> Ueid:
        """Parse a certificate SAN URI ``urn:medtwin:device:<hex>``.

        Raises:
            IdentityError: if the URI has another scheme or a malformed UEID.
        """
        if not isinstance(uri, str) or not uri.startswith(URI_PREFIX):
            raise IdentityError(f"not a medtwin device URI: {brief(uri, 64)}")
        return cls.parse(uri[len(URI_PREFIX) :])

    @property
    def hex(self) -> str:
        """The topic and database form."""
        return self.raw.hex()

    @property
    def uri(self) -> str:
        """The certificate SAN URI form."""
        return URI_PREFIX + self.raw.hex()

    def __str__(self) -> str:
        return self.hex


def is_device_id(text: str) -> bool:
    """Whether ``text`` is a well-formed UEID hex string (no exception, for hot paths)."""
    return isinstance(text, str) and _HEX.fullmatch(text) is not None
