"""Signing the PSA initial attestation token (device side; the verifier is cloud.attestation).

The token is COSE_Sign1 (RFC 9052 section 4.2) with protected header ``{alg: ES256}`` and the
instance ID as ``kid`` in the unprotected header (a hint only: the verifier trusts the signed
claim). The envelope is made by :func:`twin.core.cose.sign1` (pycose structure, deterministic
RFC 6979 ECDSA from ``cryptography``), so a given seed gives byte-identical tokens.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from twin.core.attestation import AttestationClaims, encode_claims
from twin.core.cose import sign1


def sign_token(key: ec.EllipticCurvePrivateKey, claims: AttestationClaims) -> bytes:
    """Sign claims into a tagged COSE_Sign1 token.

    Args:
        key: the attestation key (P-256).
        claims: the claims to attest.

    Returns:
        The token bytes (CBOR tag 18); the instance ID rides as an unprotected ``kid``.
    """
    return sign1(encode_claims(claims), key, claims.instance_id.raw, protect_kid=False)
