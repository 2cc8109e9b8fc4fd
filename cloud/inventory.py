"""The platform inventory: every chip registered at manufacture, every device's lifecycle.

A chip is registered with its instance ID and attestation public key (never a private key:
QDID keys are derived inside the silicon). From then on a device moves through the platform
lifecycle below, one audited transition at a time; the audit row and the state change are
written in one transaction, so the inventory never shows a state without the event that led
to it.

::

    registered -provision-> provisioned -onboard-> onboarded -activate-> active
    onboarded|active -quarantine-> quarantined -release-> active
    (any but decommissioned) -revoke-> revoked
    (any but decommissioned) -decommission-> decommissioned
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from cloud.errors import InventoryError
from twin.core.errors import TransitionError
from twin.core.lifecycle import TransitionTable


class State(StrEnum):
    """A device's platform lifecycle state."""

    REGISTERED = "registered"
    PROVISIONED = "provisioned"
    ONBOARDED = "onboarded"
    ACTIVE = "active"
    QUARANTINED = "quarantined"
    REVOKED = "revoked"
    DECOMMISSIONED = "decommissioned"


class Event(StrEnum):
    """What the platform did to a device."""

    PROVISION = "provision"
    ONBOARD = "onboard"
    ACTIVATE = "activate"
    QUARANTINE = "quarantine"
    RELEASE = "release"
    REVOKE = "revoke"
    DECOMMISSION = "decommission"


S = State
_LIVE = (S.REGISTERED, S.PROVISIONED, S.ONBOARDED, S.ACTIVE, S.QUARANTINED)
LIFECYCLE = TransitionTable.build("inventory", [
    (S.REGISTERED, Event.PROVISION, S.PROVISIONED),
    (S.PROVISIONED, Event.ONBOARD, S.ONBOARDED),
    (S.ONBOARDED, Event.ACTIVATE, S.ACTIVE),
    ((S.ONBOARDED, S.ACTIVE), Event.QUARANTINE, S.QUARANTINED),
    (S.QUARANTINED, Event.RELEASE, S.ACTIVE),
    (_LIVE, Event.REVOKE, S.REVOKED),
    ((*_LIVE, S.REVOKED), Event.DECOMMISSION, S.DECOMMISSIONED),
])


@dataclass(frozen=True, slots=True)
class Record:
    """What the platform knows about one chip and the device built on it.

    Attributes:
        chip: the chip's instance ID (hex), fixed for its life.
        attestation_key: the chip's attestation public key, DER SubjectPublicKeyInfo.
        state: the lifecycle state.
        device: the current device identity (UEID hex of the identity key), once enrolled.
        tenant, kind, patient: ownership and use.
        firmware: the installed firmware version.
        certificate_serial: the serial of the current operational certificate.
        firmware_key: the device's firmware-decryption public key (SPKI DER), as its root of
            trust derived it and sent it in the attested enrolment; OTA content keys are
            wrapped for it. Empty until enrolment (a public key: nothing private is stored).
    """

    chip: str
    attestation_key: bytes
    state: State = State.REGISTERED
    device: str = ""
    tenant: str = ""
    kind: str = ""
    patient: str = ""
    firmware: int = 0
    certificate_serial: int = 0
    firmware_key: bytes = b""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited inventory change."""

    t: float
    chip: str
    event: str
    detail: Mapping[str, str | int | float]


Row = tuple[Record, Sequence[AuditEvent], bool]
"""What one atomic inventory write stores per chip: the record, its audit events, and
whether the record is new."""
Step = tuple[Event, Mapping[str, str | int | float], Mapping[str, str | int | bytes]]
"""One lifecycle step of :meth:`Inventory.fire_chain`: event, audit detail, field changes."""


class Inventory(ABC):
    """The inventory interface; :class:`MemoryInventory` for tests, :class:`SqliteInventory`
    for runs and ``twin provision``."""

    @abstractmethod
    def get(self, chip: str) -> Record:
        """The chip's record. Raises InventoryError for an unknown chip."""

    @abstractmethod
    def _write(self, rows: Sequence[Row]) -> None:
        """Store every ``(record, its audit events, new)`` row in one atomic write."""

    @abstractmethod
    def audit(self, chip: str | None = None) -> list[AuditEvent]:
        """Audit events, oldest first (for one chip, or all)."""

    @abstractmethod
    def records(self) -> list[Record]:
        """Every record, in registration order."""

    def register(self, chip: str, attestation_key: bytes, now: float,
                 detail: Mapping[str, str | int | float] | None = None) -> Record:
        """Register a newly manufactured chip.

        Raises:
            InventoryError: the chip is already registered (a second registration could
                swap its attestation key).
        """
        if self.find(chip) is not None:
            raise InventoryError(f"chip {chip} is already registered")
        record = Record(chip, attestation_key)
        self._write([(record, [AuditEvent(now, chip, "register", dict(detail or {}))], True)])
        return record

    def find(self, chip: str) -> Record | None:
        """The chip's record, or None."""
        try:
            return self.get(chip)
        except InventoryError:
            return None

    def fire(self, chip: str, event: Event, now: float, detail: Mapping[str, str | int | float]
             | None = None, **changes: str | int | bytes) -> Record:
        """Apply a lifecycle event (and field changes) to a chip's record, audited.

        Raises:
            InventoryError: unknown chip, or the event is not allowed in its state; nothing
                is written.
        """
        return self.fire_chain(chip, [(event, detail or {}, changes)], now)

    def fire_chain(self, chip: str, steps: Sequence[Step], now: float) -> Record:
        """Apply several lifecycle events in order, each audited, as one atomic write.

        Enrolment's ``provision`` then ``onboard`` is one transaction this way, not two (on a
        file-backed inventory each commit costs more than the rest of the write).

        Args:
            chip: the chip.
            steps: ``(event, audit detail, field changes)`` in order.
            now: the time of every audit event.

        Raises:
            InventoryError: unknown chip, or a step the state reached so far does not allow;
                nothing at all is written then.
        """
        record = self.get(chip)
        audits = []
        for event, detail, changes in steps:
            try:
                state = LIFECYCLE.next(record.state, event)
            except TransitionError as exc:
                raise InventoryError(f"chip {chip}: {exc}") from None
            audits.append(AuditEvent(now, chip, event.value, {"from": record.state.value,
                                                             "to": state.value, **detail}))
            record = replace(record, state=state, **changes)  # type: ignore[arg-type]
        self._write([(record, audits, False)])
        return record

    def update(self, chip: str, now: float, event: str,
               detail: Mapping[str, str | int | float] | None = None,
               **changes: str | int | bytes) -> Record:
        """Change fields without a lifecycle transition (renewal, firmware), audited.

        Raises:
            InventoryError: unknown chip.
        """
        updated = replace(self.get(chip), **changes)  # type: ignore[arg-type]
        self._write([(updated, [AuditEvent(now, chip, event, dict(detail or {}))], False)])
        return updated

    def note(self, chip: str, now: float, event: str,
             detail: Mapping[str, str | int | float] | None = None) -> None:
        """Audit an event that changes nothing (e.g. a refused enrolment).

        Raises:
            InventoryError: unknown chip.
        """
        self.note_many([(chip, detail or {})], now, event)

    def note_many(self, notes: Sequence[tuple[str, Mapping[str, str | int | float]]],
                  now: float, event: str) -> None:
        """Audit one event for many chips in one atomic write (e.g. a campaign's offers).

        Raises:
            InventoryError: an unknown chip; nothing is written.
        """
        self._write([(self.get(chip), [AuditEvent(now, chip, event, dict(detail))], False)
                     for chip, detail in notes])

    def apply(self, rows: Sequence[Row]) -> None:
        """Store rows another inventory journaled (:class:`JournalInventory`), as one atomic
        write: how a single writer persists what enrolment shards decided in parallel.

        Raises:
            InventoryError: the rows cannot be stored (e.g. a new record already present).
        """
        self._write(rows)

    def by_state(self) -> dict[str, int]:
        """How many chips are in each state."""
        counts: dict[str, int] = {}
        for record in self.records():
            counts[record.state.value] = counts.get(record.state.value, 0) + 1
        return dict(sorted(counts.items()))


class MemoryInventory(Inventory):
    """An in-memory inventory (tests of the platform cores)."""

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._audit: list[AuditEvent] = []

    def get(self, chip: str) -> Record:
        """The chip's record. Raises InventoryError for an unknown chip."""
        try:
            return self._records[chip]
        except KeyError:
            raise InventoryError(f"unknown chip {chip[:40]!r}") from None

    def _write(self, rows: Sequence[Row]) -> None:
        for record, audits, _new in rows:
            self._records[record.chip] = record
            self._audit.extend(audits)

    def audit(self, chip: str | None = None) -> list[AuditEvent]:
        """Audit events, oldest first."""
        return [a for a in self._audit if chip is None or a.chip == chip]

    def records(self) -> list[Record]:
        """Every record, in registration order."""
        return list(self._records.values())


class JournalInventory(MemoryInventory):
    """An in-memory inventory that also keeps every write, in order, for a single writer.

    An enrolment shard (a worker process owning a subset of the chips) runs the unchanged
    enrolment service over one of these; the process that owns the file inventory then
    applies the journal (:meth:`~Inventory.apply`), so the file has exactly one writer.
    """

    def __init__(self) -> None:
        super().__init__()
        self.journal: list[Row] = []

    def _write(self, rows: Sequence[Row]) -> None:
        super()._write(rows)
        self.journal.extend(rows)

    def take(self) -> list[Row]:
        """The rows written since the last call, oldest first (and forget them)."""
        rows, self.journal = self.journal, []
        return rows


_FIELDS = ("chip", "attestation_key", "state", "device", "tenant", "kind", "patient",
           "firmware", "certificate_serial", "firmware_key")
SCHEMA_VERSION = 2
"""``PRAGMA user_version`` of an inventory file. 1 (or 0: files written before the pragma
was set): no ``firmware_key`` column; opening one adds it, empty, and sets 2."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS chips (chip TEXT PRIMARY KEY, attestation_key BLOB NOT NULL,
  state TEXT NOT NULL, device TEXT NOT NULL, tenant TEXT NOT NULL, kind TEXT NOT NULL,
  patient TEXT NOT NULL, firmware INTEGER NOT NULL, certificate_serial TEXT NOT NULL,
  firmware_key BLOB NOT NULL DEFAULT x'');
CREATE TABLE IF NOT EXISTS audit (t REAL NOT NULL, chip TEXT NOT NULL, event TEXT NOT NULL,
  detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_chip ON audit (chip);
CREATE INDEX IF NOT EXISTS chips_device ON chips (device);
"""


class SqliteInventory(Inventory):
    """The inventory in one SQLite file (WAL), e.g. ``DIR/inventory.sqlite``.

    Args:
        path: the database file; created with its schema if missing.

    Raises:
        InventoryError: the file cannot be opened as an inventory.
    """

    def __init__(self, path: str | Path) -> None:
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL never corrupts the database; a power cut may lose the last
            # commits, never half of one (SQLite, "PRAGMA synchronous"). FULL syncs on every
            # commit: 4 ms each here, which capped fleet enrolment near 100 devices/s.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate(path)
        except sqlite3.Error as exc:
            raise InventoryError(f"{path}: cannot open the inventory ({exc})") from None

    def _migrate(self, path: str | Path) -> None:
        """Create the schema, or bring a version-1 file to :data:`SCHEMA_VERSION`.

        Raises:
            InventoryError: the file was written by a newer schema (never downgraded).
        """
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise InventoryError(f"{path}: inventory schema {version} is newer than this "
                                 f"program's ({SCHEMA_VERSION})")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(chips)")}
        if columns and "firmware_key" not in columns:  # version 1: add the column, empty
            self._db.execute("ALTER TABLE chips ADD COLUMN firmware_key BLOB NOT NULL "
                             "DEFAULT x''")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @staticmethod
    def _record(row: tuple[Any, ...]) -> Record:
        chip, key, state, device, tenant, kind, patient, firmware, serial, fw_key = row
        return Record(chip, bytes(key), State(state), device, tenant, kind, patient,
                      int(firmware), int(serial), bytes(fw_key))

    def get(self, chip: str) -> Record:
        """The chip's record. Raises InventoryError for an unknown chip."""
        row = self._db.execute(f"SELECT {','.join(_FIELDS)} FROM chips WHERE chip = ?",
                               (chip,)).fetchone()
        if row is None:
            raise InventoryError(f"unknown chip {chip[:40]!r}")
        return self._record(row)

    def _write(self, rows: Sequence[Row]) -> None:
        # Serial numbers are up to 159 bits: stored as text, SQLite integers are 64-bit.
        with self._db:  # one transaction: the state changes and their audit rows, or nothing
            self._db.execute("BEGIN")
            for record, audits, new in rows:
                values = (record.chip, record.attestation_key, record.state.value,
                          record.device, record.tenant, record.kind, record.patient,
                          record.firmware, str(record.certificate_serial), record.firmware_key)
                if new:
                    self._db.execute(f"INSERT INTO chips ({','.join(_FIELDS)}) "
                                     "VALUES (?,?,?,?,?,?,?,?,?,?)", values)
                else:  # UPDATE keeps the rowid, so records() stays in registration order
                    self._db.execute(
                        "UPDATE chips SET attestation_key=?, state=?, device=?, tenant=?, kind=?,"
                        " patient=?, firmware=?, certificate_serial=?, firmware_key=?"
                        " WHERE chip=?", (*values[1:], values[0]))
                self._db.executemany("INSERT INTO audit VALUES (?,?,?,?)", [
                    (a.t, a.chip, a.event, json.dumps(dict(a.detail), sort_keys=True))
                    for a in audits])

    def audit(self, chip: str | None = None) -> list[AuditEvent]:
        """Audit events, oldest first."""
        sql = "SELECT t, chip, event, detail FROM audit"
        rows = (self._db.execute(sql + " WHERE chip = ? ORDER BY rowid", (chip,)) if chip
                else self._db.execute(sql + " ORDER BY rowid"))
        return [AuditEvent(t, c, e, json.loads(d)) for t, c, e, d in rows]

    def records(self) -> list[Record]:
        """Every record, in registration order."""
        rows = self._db.execute(f"SELECT {','.join(_FIELDS)} FROM chips ORDER BY rowid")
        return [self._record(row) for row in rows]
