"""The inventory: registration, audited lifecycle, refusals that change nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cloud.errors import InventoryError
from cloud.inventory import (
    SCHEMA_VERSION,
    Event,
    Inventory,
    MemoryInventory,
    SqliteInventory,
    State,
)


@pytest.fixture(params=["memory", "sqlite"])
def inventory(request, tmp_path: Path) -> Inventory:
    if request.param == "memory":
        return MemoryInventory()
    return SqliteInventory(tmp_path / "inventory.sqlite")


CHIP = "01" + "cd" * 16


def test_registration_then_the_documented_path_to_active(inventory: Inventory):
    inventory.register(CHIP, b"attestation-spki", 0.0, {"batch": "B1"})
    inventory.fire(CHIP, Event.PROVISION, 1.0, device="01" + "ee" * 16, tenant="ward-7",
                   kind="ecg_patch", certificate_serial=2**158 + 5)
    inventory.fire(CHIP, Event.ONBOARD, 2.0)
    record = inventory.fire(CHIP, Event.ACTIVATE, 3.0)
    assert record.state is State.ACTIVE
    assert inventory.get(CHIP) == record
    assert record.certificate_serial == 2**158 + 5  # 159-bit serials survive storage
    events = [a.event for a in inventory.audit(CHIP)]
    assert events == ["register", "provision", "onboard", "activate"]
    assert inventory.audit(CHIP)[1].detail == {"from": "registered", "to": "provisioned"}


def test_a_second_registration_is_refused_and_changes_nothing(inventory: Inventory):
    inventory.register(CHIP, b"genuine-key", 0.0)
    with pytest.raises(InventoryError, match="already registered"):
        inventory.register(CHIP, b"attacker-key", 1.0)
    assert inventory.get(CHIP).attestation_key == b"genuine-key"
    assert len(inventory.audit()) == 1


def test_an_event_the_state_does_not_allow_is_refused_and_changes_nothing(inventory):
    inventory.register(CHIP, b"k", 0.0)
    with pytest.raises(InventoryError, match="not allowed"):
        inventory.fire(CHIP, Event.ACTIVATE, 1.0)
    assert inventory.get(CHIP).state is State.REGISTERED
    assert len(inventory.audit()) == 1


def test_a_revoked_device_cannot_be_provisioned_again(inventory: Inventory):
    inventory.register(CHIP, b"k", 0.0)
    inventory.fire(CHIP, Event.REVOKE, 1.0, {"reason": "stolen"})
    with pytest.raises(InventoryError):
        inventory.fire(CHIP, Event.PROVISION, 2.0)
    assert inventory.get(CHIP).state is State.REVOKED


def test_unknown_chip_is_named(inventory: Inventory):
    with pytest.raises(InventoryError, match="unknown chip"):
        inventory.get("01" + "00" * 16)
    assert inventory.find("nope") is None


def test_update_is_audited_without_a_state_change(inventory: Inventory):
    inventory.register(CHIP, b"k", 0.0)
    record = inventory.update(CHIP, 5.0, "firmware", {"version": 3}, firmware=3)
    assert record.firmware == 3 and record.state is State.REGISTERED
    assert inventory.audit(CHIP)[-1].event == "firmware"


def test_by_state_counts(inventory: Inventory):
    for i in range(3):
        inventory.register(f"01{i:032x}", b"k", 0.0)
    inventory.fire("01" + f"{0:032x}", Event.REVOKE, 1.0)
    assert inventory.by_state() == {"registered": 2, "revoked": 1}


def test_sqlite_inventory_persists_across_reopen(tmp_path: Path):
    path = tmp_path / "inv.sqlite"
    first = SqliteInventory(path)
    first.register(CHIP, b"k", 0.0)
    first.fire(CHIP, Event.PROVISION, 1.0)
    first.close()
    again = SqliteInventory(path)
    assert again.get(CHIP).state is State.PROVISIONED
    assert [a.event for a in again.audit()] == ["register", "provision"]


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path):
    path = tmp_path / "inv.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InventoryError, match=r"inv\.sqlite"):
        SqliteInventory(path)


def test_a_version_1_inventory_gains_an_empty_firmware_key_column(tmp_path: Path):
    """Files written before the firmware key was recorded open, keep every row, and say so."""
    path = tmp_path / "inv.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE chips (chip TEXT PRIMARY KEY, attestation_key BLOB NOT NULL,
          state TEXT NOT NULL, device TEXT NOT NULL, tenant TEXT NOT NULL, kind TEXT NOT NULL,
          patient TEXT NOT NULL, firmware INTEGER NOT NULL, certificate_serial TEXT NOT NULL);
        CREATE TABLE audit (t REAL NOT NULL, chip TEXT NOT NULL, event TEXT NOT NULL,
          detail TEXT NOT NULL);
        INSERT INTO chips VALUES ('c1', x'01', 'onboarded', 'd1', 't', 'bp_cuff', '', 1, '7');
    """)
    db.close()
    inventory = SqliteInventory(path)
    record = inventory.get("c1")
    assert (record.state, record.certificate_serial, record.firmware_key) == (
        State.ONBOARDED, 7, b"")
    inventory.update("c1", 1.0, "renew", firmware_key=b"spki")
    inventory.close()
    again = SqliteInventory(path)
    assert again.get("c1").firmware_key == b"spki"
    assert again._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    again.close()


def test_an_inventory_from_a_newer_schema_is_refused(tmp_path: Path):
    path = tmp_path / "inv.sqlite"
    SqliteInventory(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(InventoryError, match="newer"):
        SqliteInventory(path)


def test_a_chain_of_events_is_written_whole_or_not_at_all(inventory: Inventory):
    inventory.register(CHIP, b"k", 0.0)
    before = (inventory.get(CHIP), inventory.audit())
    with pytest.raises(InventoryError):  # onboard, then provision: the second is not allowed
        inventory.fire_chain(CHIP, [(Event.PROVISION, {}, {"device": "d"}),
                                    (Event.ONBOARD, {}, {}), (Event.PROVISION, {}, {})], 1.0)
    assert (inventory.get(CHIP), inventory.audit()) == before
    done = inventory.fire_chain(CHIP, [(Event.PROVISION, {}, {"device": "d"}),
                                       (Event.ONBOARD, {"grants": "d"}, {})], 1.0)
    assert (done.state, done.device) == (State.ONBOARDED, "d")
    assert [(a.event, a.detail["to"]) for a in inventory.audit(CHIP)[1:]] == [
        ("provision", "provisioned"), ("onboard", "onboarded")]
