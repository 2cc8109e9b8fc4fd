"""The gate: every decision the real broker takes about a peer, in one sans-IO object.

The amqtt plugins and the hardened broker call it; it calls :class:`broker.policy.BrokerPolicy`
(the same rules the simulated broker applies), :func:`broker.identity.principal_from_certificate`
and the per-identity :class:`broker.ratelimit.RateLimiter`. It remembers which principal each
client id was admitted as (client ids are bound to identities, so the map cannot be
confused), and which certificate serials are revoked.

No I/O and no clock: the peer's certificate arrives as DER bytes and ``now`` as a number, so
the gate is tested without sockets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from broker.identity import DEFAULT_CLOUD_NAMES, principal_from_certificate
from broker.policy import AccessDenied, BrokerPolicy, Principal
from broker.ratelimit import RateLimiter, Verdict


class ClientIdRejected(AccessDenied):
    """The MQTT client id is not the certificate's identity (CONNACK 0x02, MQTT-3.2.2-3)."""


@dataclass(frozen=True, slots=True)
class Admission:
    """One admitted connection: who, and with which certificate."""

    principal: Principal
    serial: int
    not_after: datetime


class Gate:
    """Admission, publish, subscribe and revocation decisions for one broker.

    Args:
        policy: the access policy shared with the simulated broker.
        limiter: per-identity rate limits.
        cloud_names: service CNs that act as the cloud tier.
    """

    def __init__(self, policy: BrokerPolicy, limiter: RateLimiter | None = None,
                 cloud_names: Collection[str] = DEFAULT_CLOUD_NAMES) -> None:
        self.policy = policy
        self.limiter = limiter or RateLimiter()
        self.cloud_names = frozenset(cloud_names)
        self.revoked_serials: frozenset[int] = frozenset()
        self.admitted: dict[str, Admission] = {}
        self.refusals: Counter[str] = Counter()
        self.on_cut: Callable[[str], None] = lambda client_id: None

    def admit(self, der: bytes | None, client_id: str, will_topic: str | None,
              now: float) -> Admission:
        """Decide a CONNECT, before the broker touches any existing session.

        Args:
            der: the verified peer certificate (DER) from the TLS layer, or None.
            client_id: the client id in CONNECT.
            will_topic: the will topic if the will flag is set (stock amqtt publishes the
                will without asking the topic ACL, so it is checked here, at CONNECT).
            now: monotonic seconds (connection-rate limit).

        Returns:
            The admission, also remembered under ``client_id``.

        Raises:
            ClientIdRejected: the client id belongs to another identity (MQTT-3.1.4-2 would
                let it end that identity's session).
            AccessDenied: no or unreadable certificate, a revoked serial (RFC 5280 6.3,
                checked again because a resumed or long-lived session skips the CRL), an
                identity the certificate does not prove, a policy refusal, a forbidden will
                topic, or too many CONNECTs.
        """
        try:
            cert = self._certificate(der)
            if cert.serial_number in self.revoked_serials:
                raise AccessDenied("certificate revoked")
            who = principal_from_certificate(cert, self.cloud_names)
            self.policy.authorize_connect(who)
            try:
                self.policy.authorize_client_id(who, client_id)
            except AccessDenied as exc:
                raise ClientIdRejected(str(exc)) from None
            if will_topic is not None:
                self.policy.authorize_publish(who, will_topic)
            if not self.limiter.connect(who, now):
                raise AccessDenied("reconnecting too fast")
        except AccessDenied as exc:
            self.refusals[f"connect: {exc}"] += 1
            raise
        admission = Admission(who, cert.serial_number, cert.not_valid_after_utc)
        self.admitted[client_id] = admission
        return admission

    @staticmethod
    def _certificate(der: bytes | None) -> x509.Certificate:
        if not der:
            raise AccessDenied("no client certificate")
        try:
            return x509.load_der_x509_certificate(der)
        except ValueError:
            raise AccessDenied("unreadable client certificate") from None

    def authenticated(self, client_id: str, der: bytes | None) -> bool:
        """Whether ``client_id`` was admitted with exactly this certificate."""
        admission = self.admitted.get(client_id)
        if admission is None or not der:
            return False
        try:
            serial = x509.load_der_x509_certificate(der).serial_number
        except ValueError:
            return False
        return serial == admission.serial and serial not in self.revoked_serials

    def principal(self, client_id: str | None) -> Principal | None:
        """The principal ``client_id`` was admitted as, if any."""
        admission = self.admitted.get(client_id or "")
        return None if admission is None else admission.principal

    def publish(self, client_id: str | None, topic: str, now: float) -> bool:
        """Whether a PUBLISH may be routed; over the rate limit it is dropped, and a flood
        is cut (the session is forgotten and ``on_cut`` is called with the client id)."""
        who = self.principal(client_id)
        if who is None:
            self.refusals["publish: not admitted"] += 1
            return False
        try:
            self.policy.authorize_publish(who, topic)
        except AccessDenied as exc:
            self.refusals[f"publish: {exc}"] += 1
            return False
        verdict = self.limiter.message(who, now)
        if verdict is Verdict.CUT and client_id is not None:
            self.refusals["publish: flood, session cut"] += 1
            # The session ends asynchronously, and the PUBLISHes it already sent are still
            # read: forgotten now, none of them is routed, however the bucket refills.
            self.forget(client_id)
            self.on_cut(client_id)
        return verdict is Verdict.PASS

    def subscribe(self, client_id: str | None, topic_filter: str) -> bool:
        """Whether a SUBSCRIBE to ``topic_filter`` may be granted."""
        who = self.principal(client_id)
        if who is None:
            self.refusals["subscribe: not admitted"] += 1
            return False
        try:
            self.policy.authorize_subscribe(who, topic_filter)
        except AccessDenied as exc:
            self.refusals[f"subscribe: {exc}"] += 1
            return False
        return True

    def receive(self, client_id: str | None) -> bool:
        """Whether a session may be sent messages (its subscriptions were authorised when
        made; a revoked identity's session gets nothing, even while it is being dropped)."""
        admission = self.admitted.get(client_id or "")
        return admission is not None and admission.serial not in self.revoked_serials

    def forget(self, client_id: str) -> None:
        """Drop what the gate knows about a session that no longer exists."""
        self.admitted.pop(client_id, None)

    def revoke(self, serials: Iterable[int]) -> list[str]:
        """Put a new set of revoked serials in force (the whole set from the current CRL).

        Returns:
            Client ids of admitted sessions whose certificate is now revoked; the caller
            must end them (a revoked certificate is valid for no use, RFC 5280 6.3).
        """
        self.revoked_serials = frozenset(serials)
        return [cid for cid, a in self.admitted.items() if a.serial in self.revoked_serials]

    def expired(self, now: datetime) -> list[str]:
        """Client ids whose certificate has expired since they connected (RFC 5280 6.1.3:
        validity is checked at the time of use, and a session is a use that lasts)."""
        return [cid for cid, a in self.admitted.items() if a.not_after < now]
