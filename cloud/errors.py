"""The cloud package's exceptions (house style 6: one tree per package, documented here).

::

    MedtwinError                 (twin.core.errors)
    └── CloudError               anything the cloud tier refuses on purpose
        ├── StoreError           the run store cannot be created, opened, read or written
        ├── IngestRejected       a delivered message failed verification; carries ``reason``
        ├── CertificateRejected  path validation, profile or revocation check failed (pki)
        ├── InventoryError       an unknown chip or device, or a refused lifecycle change
        ├── CampaignError        an OTA campaign the platform refuses to publish; ``reason``
        └── StripError           an ECG strip the cloud's analyser cannot read (confirm)

:class:`IngestRejected` exists so code that verifies one message at a time can raise a single
typed error (house style 4); :class:`cloud.ingest.CloudCore` catches it and turns it into a
``Reject`` effect, so a peer's bad bytes never escape the core as an exception.
"""

from __future__ import annotations

from twin.core.errors import MedtwinError


class CloudError(MedtwinError):
    """Base of every error the cloud tier raises deliberately."""


class StoreError(CloudError):
    """The run store could not do what was asked; the message names the file and the reason."""


class IngestRejected(CloudError):
    """A message delivered to the cloud failed a verification check.

    Attributes:
        reason: a short, stable code for counting and reports: ``"topic"``, ``"decode"``,
            ``"identity_mismatch"``, ``"channel_mismatch"``, ``"kind_mismatch"``,
            ``"duplicate"`` or ``"too_old"``.
        detail: a human-readable explanation (never more than a short prefix of peer data).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class CertificateRejected(CloudError):
    """A certificate failed path validation, its profile, or the revocation check."""


class InventoryError(CloudError):
    """The inventory refused: unknown chip, duplicate registration, or a lifecycle event
    the device's state does not allow. Nothing is written when it is raised."""


class CampaignError(CloudError):
    """The platform refused to publish an OTA campaign (nothing is written).

    Attributes:
        reason: ``"rollback"`` (older than what a target runs), ``"replay"`` (the same
            version again, or a campaign already published), ``"no_targets"`` or ``"image"``.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"campaign refused ({reason})" + (f": {detail}" if detail else ""))
        self.reason = reason


class StripError(CloudError):
    """A signal strip the cloud's analyser cannot read (too short, too slow, not finite)."""
