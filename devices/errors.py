"""Errors of the device package.

    MedtwinError (twin.core.errors)
    └── DeviceError
        └── BatteryError   a power profile or battery state that cannot exist

Lifecycle refusals are :class:`twin.core.errors.TransitionError`, shared with every lifecycle.
"""

from __future__ import annotations

from twin.core.errors import MedtwinError


class DeviceError(MedtwinError):
    """Base of the device package's errors."""


class BatteryError(DeviceError):
    """A power profile or battery state that cannot exist (negative capacity, current...)."""
