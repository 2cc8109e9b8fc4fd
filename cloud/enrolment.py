"""Zero-touch enrolment: attested silicon plus a CSR in, an operational certificate out.

A sans-IO core in the style of cloud fleet provisioning (issue 5, item 3). The platform knows
each chip from manufacture (its instance ID and attestation public key in the inventory, never
a private key). To enrol, a device proves three things in one request
(:class:`~twin.core.messages.ProvisioningRequest`), checked in this order:

1. **the chip is ours and may enrol**: registered, and its lifecycle state admits enrolment
   (:data:`ADMISSION`; a revoked, quarantined or decommissioned chip is refused);
2. **possession of the identity key**: the CSR's self-signature verifies (RFC 2986 section 3,
   "proof of possession") and the key is ECDSA P-256;
3. **the silicon vouches for that key, now**: the PSA attestation token names as its instance
   ID the UEID of that very key, ``Ueid.from_public_key(CSR SPKI)`` (RFC 9711 4.2.1), is signed
   by the chip's registered attestation key, and is fresh over a platform nonce (RFC 9334 10,
   RFC 9783; :class:`~cloud.attestation.AttestationVerifier`).

The binding of 2 and 3 is how the token carries the identity key: the QDID device's UEID *is*
the hash of its identity public key, so a token over "UEID = H(K)" signed by the attestation
key is the silicon's statement "K is my identity key". A CSR for any other key (a key
substitution) has another hash and is refused before the verifier is asked.

Only then is the certificate issued (:func:`cloud.pki.issue_device` names it from the key, not
from the request) and the inventory updated: ``provision`` then ``onboard`` on first enrolment;
an audited ``renew`` (same key, fresh CSR) or ``rotate`` (a new key from the next PUF derivation
index; the superseded certificate goes on the CRL) afterwards. Every refusal raises
:class:`EnrolmentError` with a stable ``reason``, writes an audit event, and changes nothing
else in the inventory. Revocation is :mod:`cloud.revocation`.

Length: a little over 400 lines; the admission table, the checks and the MQTT exchange
read as one protocol. The revocation list already lives apart (cloud.revocation).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import numpy as np
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud import pki
from cloud.attestation import AttestationError, AttestationVerifier, parse_token
from cloud.errors import CertificateRejected, CloudError
from cloud.inventory import AuditEvent, Event, Inventory, Record, State, Step
from cloud.onboarding import Grants, device_grants
from cloud.revocation import RevocationList
from twin.core import codec, topics
from twin.core.attestation import decode_claims
from twin.core.clock import RUN_EPOCH
from twin.core.cose import Sign1
from twin.core.errors import DecodeError, IdentityError, TopicError
from twin.core.events import Notice, Publish
from twin.core.firmware import FIRMWARE_KEY_OID
from twin.core.identity import Ueid
from twin.core.messages import ProvisioningRequest, ProvisioningResponse

MAX_CSR = 2048
"""A P-256 CSR is about 250 bytes DER; anything far larger is not one."""


class EnrolmentError(CloudError):
    """An enrolment was refused. One type for every reason (house style 4).

    Attributes:
        reason: a short, stable code: ``"unknown_chip"``, ``"revoked"``, ``"quarantined"``,
            ``"decommissioned"``, ``"csr"`` (unparsable, bad self-signature, not P-256),
            ``"key_mismatch"`` (the token does not name the CSR's key), ``"superseded"`` (a key
            the chip was rotated away from), ``"malformed"`` (the
            token or request cannot be read) or ``"attestation"`` (the verifier refused).
        cause: for ``"attestation"``, the verifier's own reason (``"nonce"`` for a replay).
        detail: a human-readable explanation (never more than a short prefix of peer data).
    """

    def __init__(self, reason: str, detail: str = "", cause: str = "") -> None:
        super().__init__(f"enrolment refused ({reason}){': ' + detail if detail else ''}")
        self.reason = reason
        self.cause = cause
        self.detail = detail


class Kind(StrEnum):
    """What an accepted request did."""

    ENROL = "enrol"  # first certificate: provision, then onboard
    RENEW = "renew"  # a fresh certificate for the same identity key
    ROTATE = "rotate"  # a certificate for a new identity key (next PUF derivation index)


ADMISSION: Mapping[State, Kind | str] = {
    State.REGISTERED: Kind.ENROL,
    State.PROVISIONED: Kind.ENROL,  # an enrolment interrupted between provision and onboard
    State.ONBOARDED: Kind.RENEW,
    State.ACTIVE: Kind.RENEW,
    State.QUARANTINED: "quarantined",  # no fresh credentials while under investigation
    State.REVOKED: "revoked",  # RFC 5280 3.3: a revoked device stays out
    State.DECOMMISSIONED: "decommissioned",
}
"""Inventory state -> what a valid request does there, or the refusal reason (house style 2).
``RENEW`` becomes ``ROTATE`` when the attested key is not the device's current one."""


@dataclass(frozen=True, slots=True)
class Enrolment:
    """An accepted request: what was issued and what the broker side must now allow.

    Attributes:
        chip: the chip's instance ID (hex).
        device: the device identity the certificate names (UEID hex of the identity key).
        kind: enrol, renew or rotate.
        certificate: the issued operational certificate.
        grants: the topics the device may use (the broker policy update).
        superseded: for a rotation, the previous device identity, whose certificate is now
            on the CRL (the broker must drop its session and forget its grants).
        crl: for a rotation, the regenerated CRL; otherwise None.
    """

    chip: str
    device: str
    kind: Kind
    certificate: x509.Certificate
    grants: Grants
    superseded: str = ""
    crl: x509.CertificateRevocationList | None = None

    @property
    def serial(self) -> int:
        """The certificate's serial number."""
        return self.certificate.serial_number

    @property
    def pem(self) -> bytes:
        """The certificate, PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class EnrolmentService:
    """The platform's enrolment endpoint (sans-IO: ``now`` is passed in, seconds of run time).

    Args:
        inventory: the chips and their lifecycle (the platform's trusted state).
        verifier: the attestation verifier; it issues the nonces.
        issuing: the issuing CA that signs device certificates.
        tenant: the tenant devices are enrolled into.
        endpoint: the broker endpoint returned to devices (e.g. ``mqtts://host:8883``).
        validity: operational certificate lifetime (short, issue 5 item 2).
        revocations: the issuing CA's revocation list (shared with revocation).
        epoch: the calendar instant of ``now == 0`` (certificates need dates).
    """

    inventory: Inventory
    verifier: AttestationVerifier
    issuing: pki.Authority
    tenant: str
    endpoint: str
    validity: timedelta = timedelta(days=7)
    revocations: RevocationList | None = None
    epoch: datetime = RUN_EPOCH
    refusals: list[AuditEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.revocations is None:
            self.revocations = RevocationList(self.issuing)

    def calendar(self, now: float) -> datetime:
        """The calendar time of run time ``now``."""
        return self.epoch + timedelta(seconds=now)

    # ------------------------------------------------------------ manufacture and challenge

    def register_chip(self, chip: Ueid, attestation_spki: bytes, now: float,
                      kind: str = "") -> Record:
        """Register a manufactured chip: its instance ID and attestation public key.

        Raises:
            InventoryError: the chip is already registered.
            AttestationError: the key is not a P-256 SPKI (``"registration"``).
        """
        self.verifier.register(chip, attestation_spki)  # checks the key before we store it
        record = self.inventory.register(chip.hex, attestation_spki, now, {"kind": kind})
        if kind:
            record = self.inventory.update(chip.hex, now, "assign", {"kind": kind}, kind=kind)
        return record

    def challenge(self, chip: str, rng: np.random.Generator, now: float) -> bytes:
        """A fresh platform nonce for one enrolment attempt (RFC 9334 10.2).

        Raises:
            EnrolmentError: ``"unknown_chip"`` (audited): nonces are not handed to strangers,
                so an unknown sender cannot fill the verifier's table of outstanding nonces.
        """
        if self.inventory.find(chip) is None:
            error = EnrolmentError("unknown_chip", chip[:40])
            self._audit_refusal(chip, error, now)
            raise error
        return self.verifier.challenge(rng, now)

    # ------------------------------------------------------------ the request

    def handle(self, request: ProvisioningRequest, now: float) -> ProvisioningResponse:
        """Answer an enrolment request; a refusal is an answer, never an exception.

        Args:
            request: the device's request (already decoded by the codec).
            now: the platform's time.

        Returns:
            The certificate (PEM) and endpoint, or ``accepted=False`` with the reason code.
        """
        try:
            done = self.enrol(request, now)
        except EnrolmentError as exc:
            return ProvisioningResponse(request.device, request.nonce, False, reason=exc.reason)
        return ProvisioningResponse(request.device, request.nonce, True, done.pem,
                                    self.endpoint)

    def enrol(self, request: ProvisioningRequest, now: float) -> Enrolment:
        """Check a request and, if every check passes, issue and record the certificate.

        Args:
            request: the device's request.
            now: the platform's time.

        Returns:
            What was issued and the broker policy update.

        Raises:
            EnrolmentError: for any failed check (module docstring); the refusal is audited
                and the inventory is otherwise unchanged.
        """
        try:
            record = self._admit(request.device)
            public, ueid, firmware_key = _check_csr(request.csr)
            envelope = self._check_binding(request, ueid)
            self._check_not_superseded(record, ueid)
            self._attest(envelope, ueid, record, now)
        except EnrolmentError as exc:
            self._audit_refusal(request.device, exc, now)
            raise
        return self._issue(record, public, ueid, firmware_key, now)

    def _admit(self, chip: str) -> Record:
        """Check 1: a registered chip in a state that admits enrolment."""
        record = self.inventory.find(chip)
        if record is None:
            raise EnrolmentError("unknown_chip", chip[:40])
        admitted = ADMISSION[record.state]
        if not isinstance(admitted, Kind):
            raise EnrolmentError(admitted, f"chip is {record.state.value}")
        return record

    def _check_binding(self, request: ProvisioningRequest, ueid: Ueid) -> Sign1:
        """Check 3a: the token names the CSR's key and answers the nonce in the request.

        The claims are read here before their signature is checked: this is a cheap filter
        that refuses a key substitution early; :meth:`_attest` then authenticates the same
        claims, so nothing is trusted on the strength of this read alone.

        Returns:
            The parsed (not yet verified) envelope, for :meth:`_attest`.
        """
        try:
            envelope = parse_token(request.token)
            claims = decode_claims(envelope.payload)
        except AttestationError as exc:
            raise EnrolmentError("malformed", f"token: {exc}") from None
        except DecodeError as exc:
            raise EnrolmentError("malformed", f"token: {exc}") from None
        if claims.instance_id != ueid:  # RFC 9711 4.2.1: the UEID is H(identity key)
            raise EnrolmentError("key_mismatch", "the token does not attest the CSR's key")
        if not hmac.compare_digest(claims.nonce, request.nonce):
            raise EnrolmentError("malformed", "the token answers another nonce")
        return envelope

    def _check_not_superseded(self, record: Record, ueid: Ueid) -> None:
        """A rotation never goes back: a key this chip was rotated away from (perhaps because
        it leaked) is not certified again, whatever index the device's flash now names."""
        if record.device in ("", ueid.hex):
            return
        if any(a.event == "rotate" and a.detail.get("previous") == ueid.hex
               for a in self.inventory.audit(record.chip)):
            raise EnrolmentError("superseded", "this identity key was rotated away from")

    def _attest(self, envelope: Sign1, ueid: Ueid, record: Record, now: float) -> None:
        """Check 3b: the chip's attestation key signed a fresh, acceptable token.

        The verifier looks keys up by the token's instance ID; after a rotation that is a UEID
        it has not seen, so the chip's registered attestation key is bound to it first. That
        is safe before the signature check: the CSR proved possession of the key the UEID
        hashes, and only this chip's silicon can sign for it with this attestation key. A
        binding made for a token that then fails is undone, so a refused request leaves the
        verifier's trusted state as it was (and strangers cannot fill it with junk).
        """
        fresh = not self.verifier.is_registered(ueid)
        try:
            self.verifier.register(ueid, record.attestation_key)
            self.verifier.verify_envelope(envelope, now)
        except AttestationError as exc:
            if fresh:
                self.verifier.forget(ueid)
            raise EnrolmentError("attestation", str(exc), exc.reason) from None

    # ------------------------------------------------------------ issuing and recording

    def _issue(self, record: Record, public: ec.EllipticCurvePublicKey, ueid: Ueid,
               firmware_key: bytes, now: float) -> Enrolment:
        kind = ADMISSION[record.state]
        assert isinstance(kind, Kind)
        if kind is Kind.RENEW and record.device != ueid.hex:
            kind = Kind.ROTATE
        try:
            cert = pki.issue_device(self.issuing, public, self.tenant, self.calendar(now),
                                    self.validity)
        except CertificateRejected as exc:  # cannot happen after _check_csr: say so loudly
            raise CloudError(f"issuing failed after every check passed: {exc}") from exc
        serial = cert.serial_number
        detail = {"serial": str(serial), "device": ueid.hex}
        if kind is Kind.ENROL:
            self._record_enrolment(record, ueid.hex, serial, firmware_key, now, detail)
        elif kind is Kind.RENEW:
            self.inventory.update(record.chip, now, "renew", detail, certificate_serial=serial,
                                  firmware_key=firmware_key)
        else:
            return self._rotate(record, ueid, cert, firmware_key, now, detail)
        return Enrolment(record.chip, ueid.hex, kind, cert, device_grants(self.tenant, ueid.hex))

    def _record_enrolment(self, record: Record, device: str, serial: int, firmware_key: bytes,
                          now: float, detail: Mapping[str, str]) -> None:
        fields: dict[str, str | int | bytes] = {
            "device": device, "tenant": self.tenant, "certificate_serial": serial,
            "firmware_key": firmware_key}
        onboard: Step = (Event.ONBOARD, {"grants": device}, {})
        if record.state is State.REGISTERED:  # provision and onboard: one atomic write
            self.inventory.fire_chain(record.chip, [(Event.PROVISION, detail, fields), onboard],
                                      now)
        else:  # PROVISIONED: finish an interrupted enrolment with the new certificate
            self.inventory.update(record.chip, now, "reissue", detail, **fields)
            self.inventory.fire_chain(record.chip, [onboard], now)

    def _rotate(self, record: Record, ueid: Ueid, cert: x509.Certificate, firmware_key: bytes,
                now: float, detail: Mapping[str, str]) -> Enrolment:
        """A new identity from the same silicon: the old certificate is superseded (RFC 5280
        5.3.1 reason superseded) and goes on the CRL, so the old key is useless from now on."""
        assert self.revocations is not None
        when = self.calendar(now)
        if record.certificate_serial:
            self.revocations.add(record.certificate_serial, when)
        crl = self.revocations.publish(when)
        self.inventory.update(record.chip, now, "rotate",
                              {**detail, "previous": record.device,
                               "revoked_serial": str(record.certificate_serial)},
                              device=ueid.hex, certificate_serial=cert.serial_number,
                              firmware_key=firmware_key)
        return Enrolment(record.chip, ueid.hex, Kind.ROTATE, cert,
                         device_grants(self.tenant, ueid.hex), record.device, crl)

    def _audit_refusal(self, chip: str, error: EnrolmentError, now: float) -> None:
        """Every refusal is evidence (issue 5 item 3): in the service's refusal log, and in
        the chip's own audit trail when the chip is known (its record is left as it was)."""
        detail = {"reason": error.reason, "cause": error.cause, "detail": error.detail[:200]}
        self.refusals.append(AuditEvent(now, chip[:40], "enrol_refused", detail))
        if self.inventory.find(chip) is not None:
            self.inventory.update(chip, now, "enrol_refused", detail)


# ---------------------------------------------------------------- the MQTT binding

PlatformEffect = Publish | Notice | Enrolment
"""What :func:`on_prov_message` asks of the driver: publish the answer, log the notice, and
for an :class:`Enrolment` apply its grants to the broker policy (and publish its CRL, if any)."""


def on_prov_message(service: EnrolmentService, topic: str, payload: bytes,
                    rng: np.random.Generator, now: float) -> list[PlatformEffect]:
    """Handle one message on ``medtwin/v1/{tenant}/{chip}/prov/request``.

    The exchange is two round trips over the prov topics (ADR 0010): a request with an empty
    token and CSR asks for a challenge and is answered ``accepted=False, reason="challenge"``
    with the nonce; the device then sends the real request. A peer's bad bytes give a notice,
    never an exception.

    Args:
        service: the enrolment service.
        topic: the topic it arrived on.
        payload: the CBOR payload.
        rng: randomness for nonces.
        now: the platform's time.

    Returns:
        Effects for the driver.
    """
    try:
        where = topics.parse(topic)
        message = codec.decode(payload)
    except (TopicError, DecodeError) as exc:
        return [Notice("platform", "enrol_refused", {"reason": "malformed",
                                                     "detail": str(exc)[:200]})]
    if (where.channel is not topics.Channel.PROV or where.rest != "request"
            or where.tenant != service.tenant or not isinstance(message, ProvisioningRequest)
            or message.device != where.device):
        return [Notice("platform", "enrol_refused", {"reason": "malformed", "topic": topic[:120]})]
    answer = topics.build(where.tenant, where.device, topics.Channel.PROV, "response")
    effects: list[PlatformEffect] = []
    if not message.token and not message.csr:
        try:
            nonce = service.challenge(message.device, rng, now)
        except EnrolmentError as exc:
            response = ProvisioningResponse(message.device, b"", False, reason=exc.reason)
            effects.append(Notice("platform", "enrol_refused", {
                "chip": message.device, "reason": exc.reason, "cause": "challenge"}))
        else:
            response = ProvisioningResponse(message.device, nonce, False, reason="challenge")
    else:
        try:
            done = service.enrol(message, now)
        except EnrolmentError as exc:
            response = ProvisioningResponse(message.device, message.nonce, False,
                                            reason=exc.reason)
            effects.append(Notice("platform", "enrol_refused", {
                "chip": message.device, "reason": exc.reason, "cause": exc.cause}))
        else:
            response = ProvisioningResponse(message.device, message.nonce, True, done.pem,
                                            service.endpoint)
            effects += [done, Notice("platform", "enrolled", {
                "chip": done.chip, "device": done.device, "kind": done.kind.value})]
    return [Publish(answer, codec.encode(response)), *effects]


def _check_csr(der: bytes) -> tuple[ec.EllipticCurvePublicKey, Ueid, bytes]:
    """Check 2: a well-formed RFC 2986 request, self-signed by a P-256 key.

    Returns:
        The requested public key, the UEID it hashes to, and the firmware-decryption public
        key the request carries (SPKI DER, :data:`~twin.core.firmware.FIRMWARE_KEY_OID`;
        empty if absent: such a device cannot be offered encrypted firmware).

    Raises:
        EnrolmentError: ``"csr"``.
    """
    if type(der) is not bytes or not 0 < len(der) <= MAX_CSR:
        raise EnrolmentError("csr", f"a CSR is 1..{MAX_CSR} bytes of DER")
    try:
        csr = x509.load_der_x509_csr(der)
        public = csr.public_key()
        valid = csr.is_signature_valid  # RFC 2986 3: signed with the requested key's pair
    except (ValueError, TypeError, x509.UnsupportedGeneralNameType) as exc:
        raise EnrolmentError("csr", f"not a certification request: {exc}") from None
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise EnrolmentError("csr", "identity keys must be ECDSA P-256")
    if not valid:
        raise EnrolmentError("csr", "the CSR signature does not verify (no proof of possession)")
    spki = public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        return public, Ueid.from_public_key(spki), _firmware_key(csr)
    except IdentityError as exc:  # pragma: no cover - a hash always has the right length
        raise EnrolmentError("csr", str(exc)) from None


def _firmware_key(csr: x509.CertificateSigningRequest) -> bytes:
    """The firmware-decryption SPKI from a (signature-checked) CSR, re-encoded canonically.

    Raises:
        EnrolmentError: ``"csr"`` if the extension is there but is not a P-256 public key.
    """
    try:
        ext = csr.extensions.get_extension_for_oid(x509.ObjectIdentifier(FIRMWARE_KEY_OID))
    except x509.ExtensionNotFound:
        return b""
    except ValueError as exc:  # duplicate or malformed extensions
        raise EnrolmentError("csr", f"extensions: {exc}") from None
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    try:
        key = serialization.load_der_public_key(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise EnrolmentError("csr", "the firmware key is not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise EnrolmentError("csr", "firmware keys must be P-256 (ECDH-ES)")
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
