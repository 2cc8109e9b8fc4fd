"""Verifying PSA attestation tokens (PSA goal 3), with the verifier's trusted state.

The verifier is a small state machine in the python-tuf style: it holds *trusted state*
(the devices it knows and their attestation keys, the implementation IDs and reference
measurements it accepts, the nonces it has issued and the ones already used) and
:meth:`AttestationVerifier.verify_token` either returns the verified claims and updates that
state, or raises :class:`AttestationError` and leaves it exactly as it was. Checks follow the
RATS architecture (RFC 9334 section 8) and the PSA token profile (RFC 9783), in this order:

1. the token is a COSE_Sign1 with ``alg`` ES256 in the protected header (RFC 9052 4.2);
2. its claims parse and are well-typed (RFC 9783 section 4);
3. the instance ID names a registered device (RFC 9783 section 4.2.1 / 4.1, "known device");
4. the signature verifies with *that* device's attestation key (RFC 9052 section 4.4);
5. the profile and implementation ID are ones this verifier accepts;
6. the lifecycle is SECURED (RFC 9783 section 4.2.2; decommissioned or debug devices fail);
7. the nonce is one we issued, unexpired and unused, and ``iat`` is not in our future
   (freshness, RFC 9334 section 10);
8. every software component matches a reference value, if reference values are configured.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.errors import CloudError
from twin.core.attestation import (
    MAX_TOKEN,
    PROFILE,
    AttestationClaims,
    Lifecycle,
    decode_claims,
)
from twin.core.cose import Sign1, SignatureInvalid, check1, open1
from twin.core.errors import DecodeError
from twin.core.identity import Ueid

NONCE_BYTES = 32


class AttestationError(CloudError):
    """A token was refused. One type for every reason (house style 4).

    Attributes:
        reason: a short, stable code: ``"malformed"``, ``"unknown_device"``, ``"signature"``,
            ``"profile"``, ``"implementation"``, ``"lifecycle"``, ``"nonce"``,
            ``"measurement"`` or ``"registration"``.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"attestation refused ({reason}){': ' + detail if detail else ''}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifierState:
    """A snapshot of the trusted state, for audits and for tests of "state unchanged"."""

    devices: frozenset[tuple[bytes, bytes]]
    outstanding: frozenset[tuple[bytes, float]]
    used: frozenset[bytes]
    last_boot_seed: frozenset[tuple[bytes, bytes]]


class AttestationVerifier:
    """The verifier's trusted state and the token check.

    Args:
        implementation_ids: PSA implementation IDs of RoT designs this verifier accepts.
        reference_values: accepted measurements per measurement type; None skips the check.
        nonce_ttl_s: how long an issued nonce stays valid.
        max_skew_s: how far in the verifier's future a token's ``iat`` may be.
    """

    def __init__(self, implementation_ids: Iterable[bytes],
                 reference_values: Mapping[str, Iterable[bytes]] | None = None,
                 nonce_ttl_s: float = 300.0, max_skew_s: float = 60.0) -> None:
        self._implementations = frozenset(implementation_ids)
        self._reference = (None if reference_values is None
                           else {k: frozenset(v) for k, v in reference_values.items()})
        self._ttl = nonce_ttl_s
        self._skew = max_skew_s
        self._keys: dict[bytes, ec.EllipticCurvePublicKey] = {}
        self._spki: dict[bytes, bytes] = {}
        self._outstanding: dict[bytes, float] = {}
        self._used: set[bytes] = set()
        self._boot_seeds: dict[bytes, bytes] = {}

    def register(self, instance_id: Ueid, attestation_spki: bytes) -> None:
        """Trust a device's attestation key (from enrolment, over an authenticated channel).

        Raises:
            AttestationError: ``"registration"`` if the key is not a P-256 SPKI, or the device
                is already registered with a different key (re-registration must be explicit).
        """
        try:
            key = serialization.load_der_public_key(attestation_spki)
        except (ValueError, TypeError):
            raise AttestationError("registration", "not a public key") from None
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise AttestationError("registration", "attestation key must be P-256")
        known = self._spki.get(instance_id.raw)
        if known is not None and not hmac.compare_digest(known, attestation_spki):
            raise AttestationError("registration", "device already has another key")
        self._keys[instance_id.raw] = key
        self._spki[instance_id.raw] = bytes(attestation_spki)

    def is_registered(self, instance_id: Ueid) -> bool:
        """Whether ``instance_id`` has a trusted attestation key."""
        return instance_id.raw in self._keys

    def forget(self, instance_id: Ueid) -> None:
        """Drop a registration (undo one made for a request that then failed)."""
        self._keys.pop(instance_id.raw, None)
        self._spki.pop(instance_id.raw, None)

    def challenge(self, rng: np.random.Generator, now: float) -> bytes:
        """Issue a fresh nonce for one attestation (RFC 9334 section 10.2, nonce-based)."""
        for old in [n for n, t in self._outstanding.items() if now - t > self._ttl]:
            del self._outstanding[old]  # expired challenges can never be answered
        nonce = rng.bytes(NONCE_BYTES)
        self._outstanding[nonce] = now
        return nonce

    def verify_token(self, token: bytes, now: float) -> AttestationClaims:
        """Verify a token; on success consume its nonce and record its boot seed.

        Args:
            token: the COSE_Sign1 bytes from the device.
            now: the verifier's time.

        Returns:
            The verified claims.

        Raises:
            AttestationError: for any failed check (see the module docstring); the trusted
                state is then unchanged.
        """
        return self.verify_envelope(_parse(token), now)

    def verify_envelope(self, envelope: Sign1, now: float) -> AttestationClaims:
        """:meth:`verify_token` for an envelope already parsed with :func:`parse_token` (so
        a caller that reads the claims first does not parse the COSE structure twice).

        Raises:
            AttestationError: as :meth:`verify_token`.
        """
        try:
            claims = decode_claims(envelope.payload)
        except DecodeError as exc:
            raise AttestationError("malformed", str(exc)) from None
        key = self._keys.get(claims.instance_id.raw)
        if key is None:
            raise AttestationError("unknown_device", claims.instance_id.hex)
        try:
            check1(envelope, key)
        except SignatureInvalid:
            raise AttestationError("signature", "token signature does not verify") from None
        self._check_claims(claims, now)
        # Every check passed: only now does the trusted state change.
        del self._outstanding[claims.nonce]
        self._used.add(claims.nonce)
        self._boot_seeds[claims.instance_id.raw] = claims.boot_seed
        return claims

    def _check_claims(self, claims: AttestationClaims, now: float) -> None:
        if claims.profile != PROFILE:
            raise AttestationError("profile", claims.profile[:64])
        if not any(hmac.compare_digest(claims.implementation_id, i)
                   for i in self._implementations):
            raise AttestationError("implementation", "implementation ID not accepted")
        if Lifecycle.of(claims.lifecycle) is not Lifecycle.SECURED:
            raise AttestationError("lifecycle", Lifecycle.of(claims.lifecycle).name)
        issued = self._outstanding.get(claims.nonce)
        if claims.nonce in self._used:
            raise AttestationError("nonce", "nonce already used (replay)")
        if issued is None or not 0.0 <= now - issued <= self._ttl:
            raise AttestationError("nonce", "nonce not issued by this verifier, or expired")
        if claims.iat > now + self._skew:  # RFC 8392 3.1.6: issued in our future is suspect
            raise AttestationError("nonce", "token issued in the verifier's future")
        if self._reference is not None:
            for component in claims.software:
                accepted = self._reference.get(component.kind, frozenset())
                if component.value not in accepted:
                    raise AttestationError("measurement", f"{component.kind[:32]} not accepted")

    def state(self) -> VerifierState:
        """A snapshot of the trusted state."""
        return VerifierState(frozenset(self._spki.items()),
                             frozenset(self._outstanding.items()), frozenset(self._used),
                             frozenset(self._boot_seeds.items()))


def parse_token(token: bytes) -> Sign1:
    """Parse a token's COSE_Sign1 envelope, checking its form but not its signature.

    Raises:
        AttestationError: ``"malformed"``.
    """
    return _parse(token)


def _parse(token: bytes) -> Sign1:
    """Parse the token's COSE_Sign1 envelope (checks 1 of the module docstring).

    Raises:
        AttestationError: ``"malformed"`` for anything that is not a tagged ES256 Sign1.
    """
    if type(token) is not bytes or len(token) > MAX_TOKEN:
        raise AttestationError("malformed", "token must be bytes of at most 4 KiB")
    try:
        return open1(token)
    except SignatureInvalid as exc:
        raise AttestationError("malformed", str(exc)) from None
