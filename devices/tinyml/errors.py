"""Errors of the TinyML package.

    MedtwinError (twin.core.errors)
    └── DeviceError (devices.errors)
        └── TinyMLError         anything the on-device models refuse
            ├── ModelError      a model file missing, unreadable, or not the expected shape
            └── InputError      a batch the model cannot take (shape, rate, length)
"""

from __future__ import annotations

from devices.errors import DeviceError


class TinyMLError(DeviceError):
    """Base of the TinyML package's errors."""


class ModelError(TinyMLError):
    """A model file that is missing, unreadable, or not what its adapter expects (names it)."""


class InputError(TinyMLError):
    """A batch the model cannot take: wrong shape, rate or window length."""
