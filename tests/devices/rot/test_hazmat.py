"""Hazmat primitives: key slots, the monotonic counter, measurement registers, flash."""

from __future__ import annotations

import pytest

from devices.rot.errors import CounterError, KeySlotError
from devices.rot.hazmat import Flash, KeySlots, MeasurementRegisters, MonotonicCounter
from twin.core.attestation import SoftwareComponent


def test_slots_are_empty_after_zeroise() -> None:
    slots = KeySlots()
    slots.load("k", b"secret")
    assert slots.get("k") == b"secret"
    slots.zeroise()
    with pytest.raises(KeySlotError):
        slots.get("k")


def test_counter_never_goes_back() -> None:
    counter = MonotonicCounter()
    assert counter.increment() == 1
    counter.advance_to(5)
    with pytest.raises(CounterError):
        counter.advance_to(4)
    assert counter.value == 5


def test_measurements_chain_in_boot_order() -> None:
    a = SoftwareComponent("BL", bytes(32), "1", bytes(32))
    b = SoftwareComponent("App", bytes([1]) * 32, "2", bytes(32))
    one, two = MeasurementRegisters(), MeasurementRegisters()
    one.extend(a)
    one.extend(b)
    two.extend(b)
    two.extend(a)
    assert one.register != two.register and one.components == (a, b)
    one.reset()
    assert one.components == () and one.register == bytes(32)


def test_a_flash_dump_is_a_copy() -> None:
    flash = Flash()
    flash.write("x", b"1")
    dump = flash.dump()
    flash.write("x", b"2")
    assert dump["x"] == b"1" and flash.read("x") == b"2" and flash.read("y") is None
