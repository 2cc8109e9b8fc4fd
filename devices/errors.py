"""Errors of the device package.

    MedtwinError (twin.core.errors)
    └── DeviceError
        ├── BatteryError       a power profile or battery state that cannot exist
        └── FirmwareRejected   an update failed a check; nothing was installed

Lifecycle refusals are :class:`twin.core.errors.TransitionError`, shared with every lifecycle.
"""

from __future__ import annotations

from twin.core.errors import MedtwinError


class DeviceError(MedtwinError):
    """Base of the device package's errors."""


class BatteryError(DeviceError):
    """A power profile or battery state that cannot exist (negative capacity, current...)."""


class FirmwareRejected(DeviceError):
    """A firmware update failed one of the device's checks; the running image is untouched.

    Attributes:
        reason: a stable code: ``"signature"``, ``"manifest"``, ``"component"``,
            ``"rollback"`` (older than the anti-rollback counter), ``"replay"`` (equal to it),
            ``"decrypt"`` (key unwrap or authenticated decryption failed), ``"digest"``,
            ``"state"`` (nothing to confirm or revert).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"firmware rejected ({reason})" + (f": {detail}" if detail else ""))
        self.reason = reason
