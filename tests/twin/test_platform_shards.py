"""Enrolment sharded over worker processes decides exactly what one process decides."""

from __future__ import annotations

from cloud.inventory import MemoryInventory
from twin.bench.platform import _measure, _measure_sharded, _platform
from twin.core.seeds import SeedTree

DEVICES = 12


def test_sharded_enrolment_writes_the_inventory_one_process_writes():
    serial_store, sharded_store = MemoryInventory(), MemoryInventory()
    serial, _ = _platform(3, serial_store)
    _measure(serial, SeedTree(3), DEVICES)
    _, config = _platform(3, sharded_store)
    result = _measure_sharded(sharded_store, config, 2, DEVICES)

    assert result["onboarded"] == DEVICES
    # Same chips, same states, same certificate serials (deterministic issuance), and every
    # lifecycle step audited in the single writer's inventory, in each chip's order.
    assert sorted(serial_store.records(), key=lambda r: r.chip) == sorted(
        sharded_store.records(), key=lambda r: r.chip)
    for record in sharded_store.records():
        events = [a.event for a in sharded_store.audit(record.chip)]
        assert events == [a.event for a in serial_store.audit(record.chip)]
        assert events == ["register", "assign", "provision", "onboard"]
