"""The root of trust's primitives ("hazmat", as pyca/cryptography names its low layer).

Recipes (``devices.rot.device``) are built from these, and only from these:

* :class:`KeySlots`: volatile key registers, filled at boot, zeroised at power-down;
* :class:`MonotonicCounter`: a counter that only goes up (PSA goal 6, anti-rollback);
* :class:`MeasurementRegisters`: hash-chained boot measurements (PSA goal 4, secure boot),
  read out into the attestation token's software components;
* :class:`Flash`: the device's non-volatile memory, which an attacker with the board can dump.

Python cannot truly wipe memory: zeroising drops the slot's references, which is what the
model needs (a key is unusable after power-down, and a flash dump never contains it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from types import MappingProxyType

from devices.rot.errors import CounterError, KeySlotError
from twin.core.attestation import SoftwareComponent


class KeySlots:
    """Volatile key storage: keys live here between boot and power-down, nowhere else."""

    __slots__ = ("_slots",)

    def __init__(self) -> None:
        self._slots: dict[str, object] = {}

    def load(self, name: str, key: object) -> None:
        """Put a key in a slot (boot does this after derivation)."""
        self._slots[name] = key

    def get(self, name: str) -> object:
        """The key in slot ``name``.

        Raises:
            KeySlotError: if the slot is empty (not booted, or zeroised at power-down).
        """
        try:
            return self._slots[name]
        except KeyError:
            raise KeySlotError(f"key slot {name!r} is empty: boot the device first") from None

    def zeroise(self) -> None:
        """Drop every key (power-down)."""
        self._slots.clear()

    def __len__(self) -> int:
        return len(self._slots)


class MonotonicCounter:
    """A non-volatile counter that never decreases (PSA goal 6: anti-rollback).

    Args:
        value: initial value (0 for a new chip).
    """

    __slots__ = ("_value",)

    def __init__(self, value: int = 0) -> None:
        if value < 0:
            raise CounterError("a monotonic counter starts at 0 or more")
        self._value = value

    @property
    def value(self) -> int:
        """The current value."""
        return self._value

    def increment(self) -> int:
        """Add one and return the new value."""
        self._value += 1
        return self._value

    def advance_to(self, value: int) -> None:
        """Raise the counter to ``value`` (an update's security version).

        Raises:
            CounterError: if ``value`` is below the current value (a rollback).
        """
        if value < self._value:
            raise CounterError(f"counter is at {self._value}; refusing to go back to {value}")
        self._value = value


class MeasurementRegisters:
    """Boot measurements: each component's hash is recorded and chained into one register.

    The chain is TCG-PCR style, ``r = SHA-256(r || SHA-256(component map))``, so the order of
    the boot stages is attested too; the components themselves go into the token (RFC 9783
    section 4.4.1).
    """

    __slots__ = ("_components", "_register")

    def __init__(self) -> None:
        self._register = bytes(32)
        self._components: list[SoftwareComponent] = []

    def extend(self, component: SoftwareComponent) -> None:
        """Record one measured component (boot stage order matters)."""
        entry = hashlib.sha256(component.kind.encode() + b"\0" + component.value
                               + component.version.encode() + b"\0" + component.signer_id)
        self._register = hashlib.sha256(self._register + entry.digest()).digest()
        self._components.append(component)

    @property
    def components(self) -> tuple[SoftwareComponent, ...]:
        """The components measured since the last reset, in boot order."""
        return tuple(self._components)

    @property
    def register(self) -> bytes:
        """The chained register value."""
        return self._register

    def reset(self) -> None:
        """Clear at power-down (measurements are per boot)."""
        self.__init__()  # type: ignore[misc]


class Flash:
    """The device's non-volatile memory (in-memory; the seam a real part would implement)."""

    __slots__ = ("_blocks",)

    def __init__(self) -> None:
        self._blocks: dict[str, bytes] = {}

    def write(self, name: str, data: bytes) -> None:
        """Write (or replace) a named block."""
        self._blocks[name] = bytes(data)

    def read(self, name: str) -> bytes | None:
        """A named block, or None if it was never written."""
        return self._blocks.get(name)

    def dump(self) -> Mapping[str, bytes]:
        """Everything in flash: the *attack capability* of an adversary holding the board."""
        return MappingProxyType(dict(self._blocks))
