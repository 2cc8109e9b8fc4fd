"""COSE_Sign1 (RFC 9052) with ES256: the one envelope for every signed object in the twin.

Firmware manifests (SUIT style) and attestation tokens are both a CBOR payload in a COSE_Sign1
envelope; this module is the only place that makes or checks one. pycose builds and parses
the message structure; the signature itself is computed and checked with ``cryptography``:
deterministic ECDSA (RFC 6979), so a seed gives byte-identical envelopes, and OpenSSL speed
(pycose's pure-Python ECDSA measured 2.3 ms to sign and 6.2 ms to verify here). COSE carries
the signature as fixed-length ``r || s`` (RFC 9053 section 2.1), not DER.

Parsing goes through :func:`open1`: cbor2 6 decodes a tagged array as a tuple and its maps as
frozen maps, which pycose 1.1's ``decode`` rejects, so the outer structure is read here and
handed to pycose as the list and dict it was written for. Verification raises
:class:`SignatureInvalid`; it never returns False.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from pycose.algorithms import Es256
from pycose.headers import KID, Algorithm
from pycose.messages.sign1message import Sign1Message

from twin.core.errors import MedtwinError

COSE_SIGN1_TAG: Final = 18  # RFC 9052 section 4.2
ALG_HEADER: Final = 1  # RFC 9052 section 3.1, header label "alg"
KID_HEADER: Final = 4  # RFC 9052 section 3.1, header label "kid"
ES256: Final = -7  # RFC 9053 section 2.1
SIGNATURE_BYTES: Final = 64
MAX_ENVELOPE: Final = 256 * 1024
_ECDSA: Final = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)  # RFC 6979
_ECDSA_VERIFY: Final = ec.ECDSA(hashes.SHA256())


class SignatureInvalid(MedtwinError):
    """A COSE_Sign1 envelope is malformed, not ES256, or its signature does not verify."""


@dataclass(frozen=True, slots=True)
class Sign1:
    """The parts of a parsed (not yet verified) COSE_Sign1 message."""

    protected: bytes
    unprotected: Mapping[Any, Any]
    payload: bytes
    signature: bytes

    @property
    def kid(self) -> bytes:
        """The key id, protected or not (a hint for choosing a key, never trusted)."""
        header = cbor2.loads(self.protected) if self.protected else {}
        kid = header.get(KID_HEADER, self.unprotected.get(KID_HEADER, b""))
        return kid if isinstance(kid, bytes) else b""


def sig_structure(protected: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """The bytes a COSE_Sign1 signature covers (RFC 9052 section 4.4, context "Signature1")."""
    return cbor2.dumps(["Signature1", protected, external_aad, payload])


def sign1(payload: bytes, key: ec.EllipticCurvePrivateKey, kid: bytes = b"", *,
          protect_kid: bool = True) -> bytes:
    """Wrap ``payload`` in a tagged COSE_Sign1 signed with ES256 (alg always protected).

    Args:
        payload: the bytes to sign.
        key: a P-256 private key.
        kid: key identifier to carry.
        protect_kid: put ``kid`` in the protected header (True) or the unprotected one.
    """
    phdr: dict[Any, Any] = {Algorithm: Es256}
    uhdr: dict[Any, Any] = {}
    if kid:
        (phdr if protect_kid else uhdr)[KID] = kid
    message = Sign1Message(phdr=phdr, uhdr=uhdr, payload=payload)
    r, s = decode_dss_signature(key.sign(sig_structure(message.phdr_encoded, payload), _ECDSA))
    message.signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return bytes(message.encode(tag=True, sign=False))


def open1(envelope: bytes) -> Sign1:
    """Parse a tagged COSE_Sign1 and check its form (not its signature).

    Raises:
        SignatureInvalid: not bytes of a sane size, not tag 18 over four items, the algorithm
            is not ES256 in the protected header (which stops algorithm substitution, RFC 9052
            section 3.1), or the payload or signature has the wrong form.
    """
    if type(envelope) is not bytes or len(envelope) > MAX_ENVELOPE:
        raise SignatureInvalid(f"an envelope is bytes of at most {MAX_ENVELOPE}")
    try:
        outer = cbor2.loads(envelope)
        if not isinstance(outer, cbor2.CBORTag) or outer.tag != COSE_SIGN1_TAG:
            raise SignatureInvalid("not a tagged COSE_Sign1 message")
        items = list(outer.value) if isinstance(outer.value, (list, tuple)) else []
        if len(items) != 4 or not isinstance(items[1], Mapping):
            raise SignatureInvalid("a COSE_Sign1 message has four items")
        items[1] = unprotected = dict(items[1])
        message: Any = Sign1Message.from_cose_obj(items, True)  # consumes ``items``
        protected, payload, signature = message.phdr_encoded, message.payload, message.signature
        header = cbor2.loads(protected) if type(protected) is bytes and protected else None
    except SignatureInvalid:
        raise
    except Exception as exc:  # pycose and cbor2 raise a zoo of types on hostile input
        raise SignatureInvalid(f"not a COSE_Sign1 message ({type(exc).__name__})") from None
    if not isinstance(header, dict) or header.get(ALG_HEADER) != ES256:
        raise SignatureInvalid("the envelope is not signed with ES256 (protected)")
    if type(payload) is not bytes or type(signature) is not bytes or len(signature) != 64:
        raise SignatureInvalid("payload or signature has the wrong form")
    return Sign1(protected, unprotected, payload, signature)


def check1(message: Sign1, public: ec.EllipticCurvePublicKey) -> None:
    """Check a parsed envelope's signature with ``public``.

    Raises:
        SignatureInvalid: the signature does not verify.
    """
    der = encode_dss_signature(int.from_bytes(message.signature[:32], "big"),
                               int.from_bytes(message.signature[32:], "big"))
    try:
        public.verify(der, sig_structure(message.protected, message.payload), _ECDSA_VERIFY)
    except InvalidSignature:
        raise SignatureInvalid("the signature does not verify") from None


def verify1(envelope: bytes, public: ec.EllipticCurvePublicKey) -> bytes:
    """Parse, check with ``public``, and return the payload.

    Raises:
        SignatureInvalid: as :func:`open1` and :func:`check1`.
    """
    message = open1(envelope)
    check1(message, public)
    return message.payload


def key_id(envelope: bytes) -> bytes:
    """The kid an envelope carries (unverified: for choosing a key only).

    Raises:
        SignatureInvalid: the bytes are not a COSE_Sign1 message.
    """
    return open1(envelope).kid
