"""Deterministic key derivation shared by every party that must make keys from seed material.

A P-256 private scalar must lie in ``[1, n-1]``. Reducing 48 bytes (384 bits) of HKDF output
modulo ``n - 1`` and adding one leaves a bias of about 2**-128, the method of FIPS 186-5
appendix A.2.1 ("key pair generation using extra random bits"). HKDF is RFC 5869 with SHA-256.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def hkdf(ikm: bytes, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    """RFC 5869 HKDF-SHA256 of ``ikm`` for the context ``info``."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def p256_private_key(ikm: bytes, info: bytes) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key derived from ``ikm`` for the context ``info`` (FIPS 186-5 A.2.1)."""
    scalar = int.from_bytes(hkdf(ikm, info, 48), "big") % (P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())
