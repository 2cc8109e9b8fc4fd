"""Revocation: the issuing CA's revocation list, and revoking devices or a whole batch.

The CRL is regenerated on every change (issue 5 item 6) with a strictly increasing CRL number
(RFC 5280 5.2.3), so a broker can refuse a replayed older CRL that would un-revoke a device
(:func:`broker.tls.load_crl` does). A revocation is recorded three ways at once: the
inventory (audited ``revoke`` transition), the CRL, and a :class:`Revocation` result telling
the broker side which identities to drop; the live driver writes the CRL and calls the
embedded broker's ``reload_crl``, which refuses new handshakes and closes live sessions.

A batch revocation is checked whole before anything is written: if one chip cannot be revoked
(unknown, or decommissioned) none is, so a typo in a batch never leaves it half done.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from cloud import pki
from cloud.errors import InventoryError
from cloud.inventory import LIFECYCLE, Event, Inventory

CRL_VALIDITY = timedelta(days=1)
"""nextUpdate - thisUpdate: a broker refuses a CRL past its nextUpdate (fails closed)."""


class RevocationList:
    """The issuing CA's revoked serials and its CRL number.

    Args:
        issuing: the CA whose certificates are listed and which signs the CRL.
        revoked: ``(serial, revocation time)`` pairs already revoked.
        number: the CRL number of the last CRL published (0: none yet).
        next_update: how long each CRL is current.
    """

    def __init__(self, issuing: pki.Authority,
                 revoked: Iterable[tuple[int, datetime]] = (), number: int = 0,
                 next_update: timedelta = CRL_VALIDITY) -> None:
        self.issuing = issuing
        self._revoked: dict[int, datetime] = dict(revoked)
        self.number = number
        self.next_update = next_update

    @classmethod
    def from_crl(cls, issuing: pki.Authority, crl: x509.CertificateRevocationList,
                 next_update: timedelta = CRL_VALIDITY) -> RevocationList:
        """Resume from the last published CRL (its entries and its number).

        Raises:
            InventoryError: the CRL is not this CA's or has no CRL number.
        """
        if crl.issuer != issuing.certificate.subject or not crl.is_signature_valid(
                issuing.key.public_key()):
            raise InventoryError("the CRL on file is not the issuing CA's")
        try:
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            raise InventoryError("the CRL on file has no CRL number (RFC 5280 5.2.3)") from None
        entries = [(r.serial_number, r.revocation_date_utc) for r in crl]
        return cls(issuing, entries, number, next_update)

    def add(self, serial: int, when: datetime) -> None:
        """List a serial (the first revocation time is kept: RFC 5280 5.3.2 is a fact)."""
        self._revoked.setdefault(serial, when)

    def __contains__(self, serial: int) -> bool:
        return serial in self._revoked

    def __len__(self) -> int:
        return len(self._revoked)

    def publish(self, now: datetime) -> x509.CertificateRevocationList:
        """Sign the next CRL (number + 1) listing every revoked serial.

        Args:
            now: thisUpdate; never later than the time the broker reads it (RFC 5280 6.3.3
                treats a CRL from the future as not current).

        Returns:
            The CRL.
        """
        self.number += 1
        return pki.build_crl(self.issuing, self._revoked.items(), now, self.next_update,
                             self.number)


@dataclass(frozen=True, slots=True)
class Revocation:
    """What a revocation did, for the broker side to act on.

    Attributes:
        chips: the chips revoked.
        devices: their device identities: drop their live sessions, forget their grants.
        serials: the certificate serials now on the CRL.
        crl: the regenerated CRL (publish it to every broker: file + reload, or SIGHUP).
    """

    chips: tuple[str, ...]
    devices: tuple[str, ...]
    serials: tuple[int, ...]
    crl: x509.CertificateRevocationList

    @property
    def crl_number(self) -> int:
        """The new CRL's number (RFC 5280 5.2.3)."""
        return int(self.crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


def revoke(inventory: Inventory, revocations: RevocationList, chips: Iterable[str],
           now: float, when: datetime, reason: str = "unspecified") -> Revocation:
    """Revoke one device or a batch: inventory, CRL and the broker's drop list.

    Args:
        inventory: the platform inventory.
        revocations: the issuing CA's list (a new CRL is published from it).
        chips: the chips to revoke.
        now: run time, for the audit events.
        when: the calendar time, for the CRL.
        reason: why, for the audit trail (RFC 5280 5.3.1 reason codes read well here).

    Returns:
        The revocation and the new CRL.

    Raises:
        InventoryError: a chip is unknown or cannot be revoked from its state; nothing at all
            is written then, for any chip of the batch.
    """
    batch = list(dict.fromkeys(chips))
    if not batch:
        raise InventoryError("nothing to revoke")
    records = [inventory.get(chip) for chip in batch]
    for record in records:
        if not LIFECYCLE.allows(record.state, Event.REVOKE):
            raise InventoryError(f"chip {record.chip}: cannot revoke a {record.state.value} chip")
    for record in records:
        if record.certificate_serial:
            revocations.add(record.certificate_serial, when)
        inventory.fire(record.chip, Event.REVOKE, now,
                       {"reason": reason, "serial": str(record.certificate_serial)})
    crl = revocations.publish(when)
    return Revocation(tuple(r.chip for r in records),
                      tuple(r.device for r in records if r.device),
                      tuple(r.certificate_serial for r in records if r.certificate_serial), crl)
