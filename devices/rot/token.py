"""Signing the PSA initial attestation token (device side; the verifier is cloud.attestation).

The token is COSE_Sign1 (RFC 9052 section 4.2) with protected header ``{alg: ES256}`` and the
instance ID as ``kid`` in the unprotected header (a hint only: the verifier trusts the signed
claim). pycose builds and serialises the message; the signature itself comes from
``cryptography`` with deterministic ECDSA (RFC 6979), so a given seed gives byte-identical
tokens, and is converted to the fixed-length ``r || s`` form COSE requires (RFC 9053 section
2.1) rather than the DER form of X.509.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pycose.algorithms import Es256
from pycose.headers import KID, Algorithm
from pycose.messages.sign1message import Sign1Message

from twin.core.attestation import AttestationClaims, encode_claims, sig_structure

DETERMINISTIC_ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)  # RFC 6979


def sign_token(key: ec.EllipticCurvePrivateKey, claims: AttestationClaims) -> bytes:
    """Sign claims into a tagged COSE_Sign1 token.

    Args:
        key: the attestation key (P-256).
        claims: the claims to attest.

    Returns:
        The token bytes (CBOR tag 18).
    """
    payload = encode_claims(claims)
    message = Sign1Message(phdr={Algorithm: Es256}, uhdr={KID: claims.instance_id.raw},
                           payload=payload)
    der = key.sign(sig_structure(message.phdr_encoded, payload), DETERMINISTIC_ECDSA)
    r, s = decode_dss_signature(der)
    message.signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    token: bytes = message.encode(tag=True, sign=False)
    return token
