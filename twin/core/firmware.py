"""The firmware manifest: what the platform signs and the device checks before it installs.

In the spirit of SUIT (RFC 9019 architecture, the SUIT manifest draft): the manifest names
the component, a monotonically increasing sequence number (the version the device's
anti-rollback counter compares, PSA goal 6), the size and SHA-256 digest of the plaintext
image, and how the image is encrypted: AES-256-GCM under a content key that is wrapped for
each device with ECDH-ES (P-256) + HKDF-SHA256 + AES key wrap (RFC 3394), the way COSE's
``ECDH-ES+A256KW`` does. The manifest is CBOR inside a COSE_Sign1 envelope
(:mod:`twin.core.cose`); the encrypted image authenticates the manifest bytes as AAD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cbor2

from twin.core.errors import MedtwinError, brief

MANIFEST_VERSION = 1
KEK_INFO = b"medtwin firmware kek v1"
"""HKDF info for the key-encryption key; the component and sequence number are appended."""


FIRMWARE_KEY_OID = "2.25.268081473080251316816093786727445282001"
"""CSR extension carrying the device's firmware-decryption public key (SPKI DER).

The device puts it in the CSR its identity key signs, and the attestation token vouches for
that identity key, so the platform learns the key it will wrap firmware content keys for
through the same attested exchange, never from an unauthenticated side channel. The OID is a
UUID OID (ITU-T X.667, arc 2.25): minted without registration, unique by construction."""


SELF_TEST_FAIL = b"MEDTWIN-SELFTEST-FAIL"
"""The twin's images are synthetic: one that starts with this marker fails its power-on self
test after installation (a release that is correctly signed but broken), so a campaign can be
shown stopping at the canary stage and the device reverting to its previous image."""


def self_test(image: bytes) -> bool:
    """Whether a (synthetic) image passes its power-on self test once booted."""
    return not image.startswith(SELF_TEST_FAIL)


class ManifestError(MedtwinError):
    """Bytes that are not a valid manifest (after the signature has been checked)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """A signed firmware description.

    Attributes:
        component: what the image is for, e.g. ``"ecg_patch/app"``.
        sequence: the version; a device installs only a strictly greater one.
        size: plaintext image size in bytes.
        digest: SHA-256 of the plaintext image.
        nonce: the AES-GCM nonce of the encrypted image (12 bytes).
        epk: the campaign's ephemeral ECDH public key, X9.62 uncompressed point (65 bytes).
    """

    component: str
    sequence: int
    size: int
    digest: bytes
    nonce: bytes
    epk: bytes


def encode_manifest(m: Manifest) -> bytes:
    """CBOR bytes of a manifest (the payload the platform signs)."""
    return cbor2.dumps({"v": MANIFEST_VERSION, "c": m.component, "s": m.sequence,
                        "z": m.size, "d": m.digest, "n": m.nonce, "e": m.epk})


def _field(obj: dict[Any, Any], key: str, kind: type, check: Any = None) -> Any:
    value = obj.get(key)
    if type(value) is not kind or (check is not None and not check(value)):
        raise ManifestError(f"manifest field {key!r}: bad value {brief(value)}")
    return value


def decode_manifest(data: bytes) -> Manifest:
    """Parse manifest bytes.

    Raises:
        ManifestError: naming the field that is missing or wrong.
    """
    try:
        obj = cbor2.loads(data)
    except Exception as exc:  # a malformed (but signed) payload is still refused, typed
        raise ManifestError(f"manifest is not CBOR ({type(exc).__name__})") from None
    if type(obj) is not dict or obj.get("v") != MANIFEST_VERSION:
        raise ManifestError("not a version-1 manifest map")
    return Manifest(
        component=_field(obj, "c", str, lambda s: 0 < len(s) <= 64),
        sequence=_field(obj, "s", int, lambda n: 0 <= n < 2**32),
        size=_field(obj, "z", int, lambda n: 0 <= n <= 16 * 2**20),
        digest=_field(obj, "d", bytes, lambda b: len(b) == 32),
        nonce=_field(obj, "n", bytes, lambda b: len(b) == 12),
        epk=_field(obj, "e", bytes, lambda b: len(b) == 65),
    )


def kek_info(component: str, sequence: int) -> bytes:
    """HKDF info binding a wrapped key to one component and version."""
    return KEK_INFO + b"/" + component.encode() + b"/" + str(sequence).encode()
