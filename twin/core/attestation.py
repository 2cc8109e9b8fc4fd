"""The attestation token format shared by the device (which signs) and the cloud (which verifies).

A token is a PSA initial attestation token (RFC 9783, formerly draft-tschofenig-rats-psa-token):
a COSE_Sign1 (RFC 9052 section 4.2, CBOR tag 18) whose payload is a CBOR map of EAT claims
(RFC 9711). This module is the *model and claims codec* only: pure, no keys, no signing. The
device side builds :class:`AttestationClaims` and signs them with
:func:`twin.core.cose.sign1`; the verifier parses with :func:`decode_claims`, which returns
valid claims or raises DecodeError.

Deviations from the PSA profile, on purpose: the instance ID is the project's 17-byte UEID
(RFC 9711 section 4.2.1 type 0x01 with 16 bytes, see ``twin.core.identity``) rather than PSA's
33 bytes, so the token names the device exactly as topics and certificates do; and the EAT
``iat`` claim is included so the verifier can refuse tokens dated in its future.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import cbor2

from twin.core.errors import DecodeError, IdentityError
from twin.core.identity import Ueid

PROFILE: Final = "tag:psacertified.org,2023:psa#tfm"  # RFC 9783 section 4.2.8 (eat_profile)

# Claim keys (RFC 9711 / CWT registry, RFC 9783 section 4).
NONCE: Final = 10  # EAT nonce, RFC 9711 section 4.1
UEID: Final = 256  # EAT ueid: the instance ID, RFC 9711 section 4.2.1
PROFILE_KEY: Final = 265  # eat_profile, RFC 9711 section 4.3.2
IAT: Final = 6  # CWT issued-at, RFC 8392 section 3.1.6
CLIENT_ID: Final = 2394  # psa-client-id, RFC 9783 section 4.2.1
LIFECYCLE: Final = 2395  # psa-lifecycle, RFC 9783 section 4.2.2
IMPLEMENTATION_ID: Final = 2396  # psa-implementation-id, RFC 9783 section 4.2.3
BOOT_SEED: Final = 2397  # psa-boot-seed, RFC 9783 section 4.2.4
SW_COMPONENTS: Final = 2399  # psa-software-components, RFC 9783 section 4.4.1

# Software component map keys (RFC 9783 section 4.4.1).
SW_TYPE: Final = 1
SW_VALUE: Final = 2
SW_VERSION: Final = 4
SW_SIGNER: Final = 5
SW_DESC: Final = 6

NONCE_SIZES: Final = frozenset({32, 48, 64})  # RFC 9783 section 4.1.1
BOOT_SEED_SIZES: Final = range(8, 33)  # RFC 9783 section 4.2.4: 8 to 32 bytes
IMPLEMENTATION_ID_BYTES: Final = 32
MAX_TOKEN: Final = 4096
_MAX_COMPONENTS: Final = 16


class Lifecycle(IntEnum):
    """PSA security lifecycle states (RFC 9783 section 4.2.2; low byte is IMPLEMENTATION DEFINED).

    Only ``SECURED`` (0x3000-0x30ff) is a state in which a verifier should trust the device.
    """

    UNKNOWN = 0x0000
    ASSEMBLY_AND_TEST = 0x1000
    PSA_ROT_PROVISIONING = 0x2000
    SECURED = 0x3000
    NON_PSA_ROT_DEBUG = 0x4000
    RECOVERABLE_PSA_ROT_DEBUG = 0x5000
    DECOMMISSIONED = 0x6000

    @classmethod
    def of(cls, code: int) -> Lifecycle:
        """The major state of a lifecycle code (its high byte).

        Raises:
            DecodeError: if the major state is not one of the seven.
        """
        try:
            return cls(code & 0xFF00)
        except ValueError:
            raise DecodeError(f"claim {LIFECYCLE}: unknown lifecycle state") from None


@dataclass(frozen=True, slots=True)
class SoftwareComponent:
    """One measured software component (RFC 9783 section 4.4.1).

    Attributes:
        kind: measurement type, e.g. ``"BL"``, ``"PRoT"``, ``"App"``.
        value: the measurement (SHA-256 of the image).
        version: the component's version text.
        signer_id: hash of the key that signed the image.
    """

    kind: str
    value: bytes
    version: str
    signer_id: bytes
    desc: str = "sha-256"

    def to_map(self) -> dict[int, Any]:
        """The CBOR map form."""
        return {SW_TYPE: self.kind, SW_VALUE: self.value, SW_VERSION: self.version,
                SW_SIGNER: self.signer_id, SW_DESC: self.desc}


@dataclass(frozen=True, slots=True)
class AttestationClaims:
    """The claims of one token (the model; :func:`encode_claims` is the wire form)."""

    nonce: bytes
    instance_id: Ueid
    implementation_id: bytes
    lifecycle: int
    boot_seed: bytes
    software: tuple[SoftwareComponent, ...]
    iat: float
    client_id: int = 1
    profile: str = PROFILE


def encode_claims(claims: AttestationClaims) -> bytes:
    """The token payload: a deterministic CBOR map (RFC 8949 section 4.2.1 core rules)."""
    doc = {
        PROFILE_KEY: claims.profile, NONCE: claims.nonce, UEID: claims.instance_id.raw,
        IMPLEMENTATION_ID: claims.implementation_id, LIFECYCLE: claims.lifecycle,
        BOOT_SEED: claims.boot_seed, CLIENT_ID: claims.client_id, IAT: claims.iat,
        SW_COMPONENTS: [c.to_map() for c in claims.software],
    }
    return cbor2.dumps(doc, canonical=True)


def decode_claims(payload: bytes) -> AttestationClaims:
    """Parse and type-check a token payload (the claims, not the signature).

    Args:
        payload: the COSE_Sign1 payload.

    Returns:
        The claims.

    Raises:
        DecodeError: naming the claim that is missing, mistyped or out of range.
    """
    if type(payload) is not bytes or len(payload) > MAX_TOKEN:
        raise DecodeError("token payload must be bytes of at most 4 KiB")
    try:
        doc = cbor2.loads(payload)
    except (cbor2.CBORError, ValueError, TypeError, RecursionError) as exc:
        raise DecodeError(f"token payload is not CBOR: {type(exc).__name__}") from None
    if not isinstance(doc, dict):
        raise DecodeError("token payload is not a CBOR map")
    nonce = _claim(doc, NONCE, bytes)
    if len(nonce) not in NONCE_SIZES:
        raise DecodeError(f"claim {NONCE}: nonce must be 32, 48 or 64 bytes")
    try:
        instance = Ueid(_claim(doc, UEID, bytes))
    except IdentityError as exc:
        raise DecodeError(f"claim {UEID}: {exc}") from None
    impl = _claim(doc, IMPLEMENTATION_ID, bytes)
    if len(impl) != IMPLEMENTATION_ID_BYTES:
        raise DecodeError(f"claim {IMPLEMENTATION_ID}: implementation ID must be 32 bytes")
    lifecycle = _claim(doc, LIFECYCLE, int)
    if not 0 <= lifecycle <= 0xFFFF:
        raise DecodeError(f"claim {LIFECYCLE}: lifecycle must be a 16-bit code")
    Lifecycle.of(lifecycle)
    seed = _claim(doc, BOOT_SEED, bytes)
    if len(seed) not in BOOT_SEED_SIZES:
        raise DecodeError(f"claim {BOOT_SEED}: boot seed must be 8 to 32 bytes")
    iat = doc.get(IAT)
    # A finite number of seconds; a bignum would overflow float() (RFC 8392 NumericDate).
    if not ((type(iat) is int and abs(iat) <= 2**53)
            or (type(iat) is float and math.isfinite(iat))):
        raise DecodeError(f"claim {IAT}: issued-at must be a finite number")
    return AttestationClaims(nonce, instance, impl, lifecycle, seed,
                             _components(doc.get(SW_COMPONENTS)), float(iat),
                             _claim(doc, CLIENT_ID, int), _claim(doc, PROFILE_KEY, str))


def _claim(doc: dict[Any, Any], key: int, kind: type) -> Any:
    value = doc.get(key)
    if type(value) is not kind:
        raise DecodeError(f"claim {key}: missing or not {kind.__name__}")
    return value


def _components(value: Any) -> tuple[SoftwareComponent, ...]:
    """RFC 9783 section 4.4.1: a non-empty array of component maps."""
    if type(value) is not list or not 1 <= len(value) <= _MAX_COMPONENTS:
        raise DecodeError(f"claim {SW_COMPONENTS}: must be a list of 1 to 16 components")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise DecodeError(f"claim {SW_COMPONENTS}: a component is not a map")
        out.append(SoftwareComponent(_claim(item, SW_TYPE, str), _claim(item, SW_VALUE, bytes),
                                     _claim(item, SW_VERSION, str),
                                     _claim(item, SW_SIGNER, bytes), _claim(item, SW_DESC, str)))
    return tuple(out)
