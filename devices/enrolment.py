"""The device side of zero-touch enrolment: ask for a challenge, attest, send a CSR, accept.

A sans-IO core over the prov topics (``medtwin/v1/{tenant}/{chip}/prov/request`` and
``.../prov/response``, payloads by :mod:`twin.core.codec`). The device names itself by its chip
instance ID (the UEID it was registered under at manufacture), which stays the same through an
identity rotation; the certificate it receives names its *current* identity key.

::

    (any) -start-> awaiting_challenge -challenge-> awaiting_certificate
    awaiting_certificate -accepted-> enrolled
    awaiting_challenge|awaiting_certificate -refused-> refused

The device trusts nothing in the answer it cannot check: the certificate must be for its own
identity key (an answer carrying another key's certificate is refused), and answers to a nonce
it did not send are ignored. Renewal is the same exchange with a fresh CSR, due once the
certificate is within ``renew_window`` of expiry (issue 5 item 6); rotation is the same
exchange after :meth:`devices.rot.device.QdidDevice.rotate_identity` and a reboot.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devices.errors import DeviceError
from devices.rot.device import RotDevice
from twin.core import codec, topics
from twin.core.clock import RUN_EPOCH
from twin.core.errors import DecodeError, TopicError
from twin.core.events import Notice, Publish, Subscribe
from twin.core.lifecycle import TransitionTable
from twin.core.messages import ProvisioningRequest, ProvisioningResponse


class EnrolmentFailed(DeviceError):
    """The platform refused the enrolment, or its answer failed the device's checks.

    Attributes:
        reason: the platform's reason code, or ``"certificate"`` (unreadable, or not for this
            device's identity key) or ``"state"`` (no request outstanding).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"enrolment failed ({reason})" + (f": {detail}" if detail else ""))
        self.reason = reason


class Phase(StrEnum):
    """Where the device is in the exchange."""

    IDLE = "idle"
    AWAITING_CHALLENGE = "awaiting_challenge"
    AWAITING_CERTIFICATE = "awaiting_certificate"
    ENROLLED = "enrolled"
    REFUSED = "refused"


class Step(StrEnum):
    """What moved the exchange on."""

    START = "start"
    CHALLENGE = "challenge"
    ACCEPTED = "accepted"
    REFUSED = "refused"


P = Phase
EXCHANGE = TransitionTable.build("enrolment", [
    (tuple(Phase), Step.START, P.AWAITING_CHALLENGE),  # also a retry after a lost answer
    (P.AWAITING_CHALLENGE, Step.CHALLENGE, P.AWAITING_CERTIFICATE),
    (P.AWAITING_CERTIFICATE, Step.ACCEPTED, P.ENROLLED),
    ((P.AWAITING_CHALLENGE, P.AWAITING_CERTIFICATE), Step.REFUSED, P.REFUSED),
])

DeviceEffect = Publish | Subscribe | Notice


@dataclass
class EnrolmentClient:
    """One device's enrolment client.

    Args:
        device: the booted root of trust (signs the token and the CSR).
        chip: the chip's registered instance ID (hex).
        tenant: the tenant it enrols into.
        renew_window: renew once the certificate has less than this left.
        epoch: the calendar instant of ``now == 0``.
    """

    device: RotDevice
    chip: str
    tenant: str
    renew_window: timedelta = timedelta(days=2)
    epoch: datetime = RUN_EPOCH
    phase: Phase = Phase.IDLE
    certificate: x509.Certificate | None = None
    endpoint: str = ""
    reason: str = ""
    _nonce: bytes = b""

    def _step(self, step: Step) -> None:
        self.phase = EXCHANGE.next(self.phase, step)

    @property
    def request_topic(self) -> str:
        """Where this device publishes its requests."""
        return topics.build(self.tenant, self.chip, topics.Channel.PROV, "request")

    @property
    def response_topic(self) -> str:
        """Where the platform answers."""
        return topics.build(self.tenant, self.chip, topics.Channel.PROV, "response")

    def start(self) -> list[DeviceEffect]:
        """Begin (or renew, or re-enrol after a rotation): subscribe and ask for a challenge.

        A start during an exchange abandons it (a lost answer): the platform's nonce for it
        expires unused.
        """
        self._step(Step.START)
        self._nonce = b""
        hello = ProvisioningRequest(self.chip, b"", b"", b"")
        return [Subscribe(self.response_topic), Publish(self.request_topic, codec.encode(hello))]

    def request(self, nonce: bytes, now: float) -> ProvisioningRequest:
        """The enrolment request for a platform nonce: a token over it and a fresh CSR.

        Args:
            nonce: the platform's challenge.
            now: the device's time (the token's ``iat``).

        Returns:
            The request.

        Raises:
            KeySlotError: the device is not booted.
            RotError: a nonce of a size the token profile does not allow.
        """
        if self.phase is not Phase.AWAITING_CHALLENGE:  # used directly, without the hello
            self._step(Step.START)
        token, csr = self.device.attest(nonce, now), self.device.csr(self.tenant)
        self._step(Step.CHALLENGE)
        self._nonce = bytes(nonce)
        return ProvisioningRequest(self.chip, self._nonce, token, csr)

    def on_message(self, topic: str, payload: bytes, now: float) -> list[DeviceEffect]:
        """Handle a message on the response topic.

        Args:
            topic: where it arrived.
            payload: the CBOR payload.
            now: the device's time.

        Returns:
            The next request to publish, or a notice of the outcome; nothing for noise.
        """
        if topic != self.response_topic:
            return []
        try:
            response = codec.decode(payload)
        except (DecodeError, TopicError):
            return []
        if not isinstance(response, ProvisioningResponse) or response.device != self.chip:
            return []
        if self.phase is Phase.AWAITING_CHALLENGE:
            if response.reason == "challenge" and not response.accepted:
                request = self.request(response.nonce, now)
                return [Publish(self.request_topic, codec.encode(request))]
            if response.accepted:
                return []  # nothing was requested yet: not ours
        elif self.phase is not Phase.AWAITING_CERTIFICATE:
            return []
        try:
            self.accept(response)
        except EnrolmentFailed as exc:
            return [Notice("device", "enrol_failed", {"chip": self.chip, "reason": exc.reason})]
        return [Notice("device", "enrolled", {"chip": self.chip,
                                              "device": self.device.ueid.hex})]

    def accept(self, response: ProvisioningResponse) -> x509.Certificate:
        """Check the platform's answer and keep the certificate.

        Raises:
            EnrolmentFailed: a refusal (its reason), an answer to another nonce (``"state"``),
                or a certificate that is unreadable or not for this device's identity key
                (``"certificate"``); the device keeps its previous certificate then.
        """
        if not EXCHANGE.allows(self.phase, Step.REFUSED):
            raise EnrolmentFailed("state", f"no request outstanding ({self.phase.value})")
        if self._nonce and not hmac.compare_digest(response.nonce, self._nonce):
            raise EnrolmentFailed("state", "an answer to a request this device did not send")
        if not response.accepted:
            self.reason = response.reason
            self._step(Step.REFUSED)
            raise EnrolmentFailed(response.reason or "refused")
        if not EXCHANGE.allows(self.phase, Step.ACCEPTED):
            raise EnrolmentFailed("state", "a certificate before any request was sent")
        try:
            cert = x509.load_pem_x509_certificate(response.certificate)
        except ValueError:
            raise EnrolmentFailed("certificate", "not a PEM certificate") from None
        public = cert.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        if not hmac.compare_digest(public, self.device.identity_spki):
            raise EnrolmentFailed("certificate", "the certificate is for another key")
        self._step(Step.ACCEPTED)
        self.certificate, self.endpoint, self.reason = cert, response.endpoint, ""
        return cert

    def renewal_due(self, now: float) -> bool:
        """Whether the certificate is missing or within ``renew_window`` of its expiry."""
        if self.certificate is None:
            return True
        left = self.certificate.not_valid_after_utc - (self.epoch + timedelta(seconds=now))
        return left <= self.renew_window
