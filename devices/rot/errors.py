"""Errors of the root-of-trust package (house style 6: one tree, documented here).

::

    MedtwinError                   (twin.core.errors)
    └── DeviceError                (devices.errors)
        └── RotError               anything the root of trust refuses on purpose
            ├── HelperDataError    stored helper data that is malformed or for another code
            ├── ReconstructionError  a noisy PUF read that the code could not correct
            ├── KeySlotError       a key asked for while its slot is empty (not booted,
            │                      zeroised at power-down, or not provisioned)
            ├── StorageError       a sealed blob that is missing, or fails authentication
            └── CounterError       a monotonic counter asked to go backwards

Messages never contain secret material (seeds, keys, response bits): an error may end up in a
log the attacker reads.
"""

from __future__ import annotations

from devices.errors import DeviceError


class RotError(DeviceError):
    """Base of the root of trust's errors."""


class HelperDataError(RotError):
    """Helper data (the only thing the QDID device stores) is malformed or for another code."""


class ReconstructionError(RotError):
    """The fuzzy extractor could not recover the enrolled seed from this read.

    Raised when the BCH decoder reports more errors than it can correct, or when the decoded
    response does not match the check value stored at enrolment (a miscorrection). Either way
    no key is derived: a wrong key is worse than none.
    """


class KeySlotError(RotError):
    """A key slot is empty: the device is not booted, was powered down, or has no such key."""


class StorageError(RotError):
    """A sealed object is missing, or failed AES-GCM authentication (tampered or wrong key)."""


class CounterError(RotError):
    """A monotonic counter was asked to decrease (PSA goal 6: anti-rollback)."""
