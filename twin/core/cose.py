"""COSE_Sign1 (RFC 9052) with ES256, on pycose, for every signed object the twin carries.

Firmware manifests (SUIT style) and attestation tokens are both a CBOR payload in a
COSE_Sign1 envelope. This module is the one place that turns ``cryptography`` keys into COSE
keys and checks envelopes, so signers and verifiers on the device and the cloud side agree.
Verification raises :class:`SignatureInvalid`; it never returns False.

Decoding goes through :func:`_decode`: cbor2 6 returns a tagged array as a tuple, which
pycose 1.1's ``CoseMessage.decode`` does not accept, so the envelope's outer structure (tag 18,
four items, the unprotected header thawed to a dict) is read here and handed to pycose as the
list it expects.
"""

from __future__ import annotations

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec
from pycose.algorithms import Es256
from pycose.exceptions import CoseException
from pycose.headers import KID, Algorithm
from pycose.keys.curves import P256
from pycose.keys.ec2 import EC2Key
from pycose.messages.sign1message import Sign1Message

from twin.core.errors import MedtwinError


class SignatureInvalid(MedtwinError):
    """A COSE_Sign1 envelope is malformed, uses another algorithm, or does not verify."""


def _cose_key(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> EC2Key:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    if public.curve.name != "secp256r1":
        raise SignatureInvalid("ES256 needs a P-256 key")
    numbers = public.public_numbers()
    d = b""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        d = key.private_numbers().private_value.to_bytes(32, "big")
    return EC2Key(crv=P256, x=numbers.x.to_bytes(32, "big"), y=numbers.y.to_bytes(32, "big"),
                  d=d)


def sign1(payload: bytes, key: ec.EllipticCurvePrivateKey, kid: bytes = b"") -> bytes:
    """Wrap ``payload`` in a COSE_Sign1 envelope signed with ES256 (protected alg and kid)."""
    message = Sign1Message(phdr={Algorithm: Es256, KID: kid}, payload=payload)
    message.key = _cose_key(key)
    return bytes(message.encode())


_COSE_SIGN1_TAG = 18  # RFC 9052 section 4.2


def _decode(envelope: bytes) -> Sign1Message:
    """Parse a tagged COSE_Sign1 envelope.

    Raises:
        SignatureInvalid: not a tagged four-item COSE_Sign1 array.
    """
    try:
        outer = cbor2.loads(envelope)
        if not isinstance(outer, cbor2.CBORTag) or outer.tag != _COSE_SIGN1_TAG:
            raise SignatureInvalid("not a tagged COSE_Sign1 message")
        items = list(outer.value)
        if len(items) != 4:
            raise SignatureInvalid("a COSE_Sign1 message has four items")
        items[1] = dict(items[1])  # the unprotected header arrives as cbor2's frozen map
        return Sign1Message.from_cose_obj(items, allow_unknown_attributes=False)
    except SignatureInvalid:
        raise
    except Exception as exc:  # pycose and cbor2 raise a spread of types for malformed input
        raise SignatureInvalid(f"not a COSE_Sign1 message ({type(exc).__name__})") from None


def verify1(envelope: bytes, public: ec.EllipticCurvePublicKey) -> bytes:
    """Check a COSE_Sign1 envelope against ``public`` and return its payload.

    Raises:
        SignatureInvalid: the bytes are not a COSE_Sign1 message, the algorithm is not ES256,
            or the signature does not verify with ``public``.
    """
    message = _decode(envelope)
    if message.phdr.get(Algorithm) is not Es256:
        raise SignatureInvalid("the envelope is not signed with ES256")
    message.key = _cose_key(public)
    try:
        valid = message.verify_signature()
    except (CoseException, ValueError, TypeError) as exc:
        raise SignatureInvalid(f"signature check failed ({type(exc).__name__})") from None
    if not valid or not isinstance(message.payload, bytes):
        raise SignatureInvalid("the signature does not verify")
    return message.payload


def key_id(envelope: bytes) -> bytes:
    """The kid in an envelope's protected header (unverified: for choosing a key only).

    Raises:
        SignatureInvalid: the bytes are not a COSE_Sign1 message.
    """
    kid = _decode(envelope).phdr.get(KID, b"")
    return bytes(kid) if isinstance(kid, bytes) else b""
