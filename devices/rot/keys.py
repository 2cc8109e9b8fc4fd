"""Keys on demand: everything a device uses is derived from its PUF seed, at boot, by label.

HKDF-Expand (RFC 5869 section 2.3) with the seed as PRK and a labelled ``info``:
``"medtwin/qdid/v1/" || label || "/" || index (4 bytes, big-endian)``. Distinct labels give
independent keys (RFC 5869 section 3.2: ``info`` binds a key to its use); the *derivation
index* lets the platform rotate a device to a new identity without changing the silicon
(the index is public configuration, not a secret).

Elliptic-curve private keys take 48 bytes of HKDF output, reduced ``mod (n - 1)`` plus 1
(FIPS 186-5 appendix A.2.1, "key pair generation using extra random bits"): 128 extra bits make
the bias of the reduction negligible (< 2**-128), and the result is never 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from twin.core.identity import Ueid

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SEED_BYTES = 32
_INFO_PREFIX = b"medtwin/qdid/v1/"
_MAX_INDEX = 2**32 - 1


class KeyLabel(StrEnum):
    """What a derived key is for (the HKDF ``info`` label)."""

    IDENTITY = "identity"  # ECDSA P-256: TLS client certificate, message signing (PSA goal 1)
    ATTESTATION = "attestation"  # ECDSA P-256: the PSA initial attestation key (goal 3)
    STORAGE = "storage"  # AES-256-GCM: secure storage (goal 9)
    FIRMWARE = "firmware"  # ECDH P-256: the platform encrypts firmware to its public key


def expand(seed: bytes, label: KeyLabel, index: int, length: int) -> bytes:
    """HKDF-Expand the seed for one labelled use.

    Args:
        seed: the 32-byte PRK recovered by the fuzzy extractor.
        label: what the key is for.
        index: the derivation index (0 until the platform rotates the identity).
        length: bytes of output.

    Returns:
        ``length`` bytes of key material.

    Raises:
        ValueError: for a seed that is not 32 bytes or an index outside 0..2**32-1, since
            either would silently change every key the device has.
    """
    if len(seed) != SEED_BYTES:
        raise ValueError(f"seed must be {SEED_BYTES} bytes")
    if not 0 <= index <= _MAX_INDEX:
        raise ValueError(f"derivation index must be in 0..2**32-1, got {index}")
    info = _INFO_PREFIX + label.value.encode() + b"/" + index.to_bytes(4, "big")
    return HKDFExpand(hashes.SHA256(), length, info).derive(seed)


def p256_key(seed: bytes, label: KeyLabel, index: int = 0) -> ec.EllipticCurvePrivateKey:
    """An ECDSA/ECDH P-256 private key for ``label`` (FIPS 186-5 A.2.1 reduction).

    Raises:
        ValueError: as :func:`expand`.
    """
    material = int.from_bytes(expand(seed, label, index, 48), "big")
    return ec.derive_private_key(material % (P256_ORDER - 1) + 1, ec.SECP256R1())


def spki(key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo DER of a public key (what the UEID hashes)."""
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True, slots=True)
class DeviceKeys:
    """The keys one boot derives (held in the hazmat key slots, never written to flash)."""

    identity: ec.EllipticCurvePrivateKey
    attestation: ec.EllipticCurvePrivateKey
    storage: bytes
    firmware: ec.EllipticCurvePrivateKey
    index: int

    @classmethod
    def derive(cls, seed: bytes, index: int = 0) -> DeviceKeys:
        """Derive all four keys for a derivation index.

        Raises:
            ValueError: as :func:`expand`.
        """
        return cls(p256_key(seed, KeyLabel.IDENTITY, index),
                   p256_key(seed, KeyLabel.ATTESTATION, index),
                   expand(seed, KeyLabel.STORAGE, index, 32),
                   p256_key(seed, KeyLabel.FIRMWARE, index), index)


def identity(seed: bytes, index: int = 0) -> tuple[ec.EllipticCurvePrivateKey, Ueid]:
    """The identity key alone and its UEID (the fleet-boot fast path).

    Returns:
        The private key and ``Ueid.from_public_key(SPKI)`` (RFC 9711 section 4.2.1, type RAND).

    Raises:
        ValueError: as :func:`expand`.
    """
    key = p256_key(seed, KeyLabel.IDENTITY, index)
    return key, Ueid.from_public_key(spki(key.public_key()))
