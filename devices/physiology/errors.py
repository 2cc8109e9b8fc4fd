"""Errors of the physiology package.

    MedtwinError (twin.core.errors)
    └── DeviceError (devices.errors)
        └── PhysiologyError     bad model parameters (cohort, rates, sampling rate, rhythm)
            └── RecordError     a WFDB record that cannot be read or replayed
"""

from __future__ import annotations

from devices.errors import DeviceError


class PhysiologyError(DeviceError):
    """Parameters a physiological model cannot honour (a rate below zero, an unknown rhythm)."""


class RecordError(PhysiologyError):
    """A WFDB record that is missing, unreadable or unusable for replay (names the path)."""
