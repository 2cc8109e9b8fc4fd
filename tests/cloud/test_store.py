"""The run store: real SQLite in tmp_path, and the in-memory implementation of the same seam."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cloud.alerts import Alert
from cloud.effects import RaiseAlert, Reject, StoreEvent, StoreTelemetry
from cloud.errors import StoreError
from cloud.store import (
    BATCH_ROWS,
    TELEMETRY_COLUMNS,
    DeviceRow,
    MemoryStore,
    RunStore,
    SqliteStore,
)
from twin.core.events import Count, Notice, Subscribe
from twin.core.messages import METRICS, DeviceEvent, Kind, Telemetry

DEV = "01" + "c3" * 16


def tm(seq: int, hr: float = 70.0) -> StoreTelemetry:
    t = Telemetry(DEV, seq, seq * 10.0, Kind.ECG_PATCH, {"hr_bpm": hr}, 0.8, 0.1, ("a", "b"))
    return StoreTelemetry(t, seq * 10.0 + 0.25)


ALERT = Alert(DEV, 5.0, "tachycardia", "hr_bpm", 150.0, "raised", "warning")
EFFECTS: list[object] = [
    tm(0),
    StoreEvent(DeviceEvent(DEV, 1, 1.0, "booted", {"fw": "1.2.0", "n": 3}), 1.5),
    RaiseAlert(ALERT),
    Reject("medtwin/v1/x", "decode", "not CBOR", 2.0),
    Reject("medtwin/v1/y", "decode", "not CBOR", 2.5),
    Reject("medtwin/v1/z", "topic", "bad", 3.0),
    Notice("cloud", "ingest_rejected", {"reason": "topic"}),
    Count("telemetry.delivered"),  # not the store's business
    Subscribe("medtwin/v1/#"),
]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RunStore:
    if request.param == "memory":
        return MemoryStore()
    return SqliteStore.create(tmp_path / "store.sqlite")


def test_apply_stores_each_storable_effect_and_ignores_the_rest(store: RunStore) -> None:
    store.apply(EFFECTS, now=9.0)
    counts = {t: store.count(t) for t in ("telemetry", "events", "alerts", "rejects", "notices")}
    assert counts == {"telemetry": 1, "events": 1, "alerts": 1, "rejects": 3, "notices": 1}
    assert store.alerts() == [ALERT]
    assert store.rejects_by_reason() == {"decode": 2, "topic": 1}
    row = store.telemetry_rows()[0]
    assert dict(zip(TELEMETRY_COLUMNS, row, strict=True)) == {
        "device": DEV, "seq": 0, "t": 0.0, "received": 0.25, "kind": "ecg_patch",
        "battery": 0.8, "score": 0.1, "flags": "a,b", "hr_bpm": 70.0,
        **{m: None for m in METRICS if m != "hr_bpm"}}
    store.close()


def test_devices_and_meta(store: RunStore) -> None:
    store.add_devices([DeviceRow(DEV, "SN1", "ecg_patch", "ward-7"),
                       DeviceRow("01" + "d4" * 16, "SN2", "bp_cuff", "ward-7")])
    store.add_devices([DeviceRow(DEV, "SN1b", "ecg_patch", "ward-7")])  # replaces
    store.set_meta("seed", "42")
    store.set_meta("seed", "43")
    assert store.count("devices") == 2
    assert store.meta() == {"seed": "43"}
    store.close()


def test_unknown_table_and_closed_store_raise(store: RunStore) -> None:
    with pytest.raises(StoreError, match="no table"):
        store.count("sqlite_master; DROP TABLE telemetry")
    store.close()
    store.close()  # harmless
    with pytest.raises(StoreError, match="closed"):
        store.apply([tm(0)], now=0.0)


def test_digest_is_stable_and_the_same_for_both_stores(tmp_path: Path) -> None:
    effects = [tm(i, 60.0 + i / 3) for i in range(50)]
    memory, sqlite = MemoryStore(), SqliteStore.create(tmp_path / "a.sqlite")
    for s in (memory, sqlite):
        s.apply(effects, now=0.0)
    digest = memory.telemetry_digest()
    assert sqlite.telemetry_digest() == digest
    sqlite.close()
    with SqliteStore.open_readonly(tmp_path / "a.sqlite") as reader:
        assert reader.telemetry_digest() == digest
    other = MemoryStore()
    other.apply([*effects[:-1], tm(49, 99.0)], now=0.0)
    assert other.telemetry_digest() != digest


def test_integer_values_are_stored_as_reals_in_both_stores(tmp_path: Path) -> None:
    t = Telemetry(DEV, 1, 2, Kind.ECG_PATCH, {"hr_bpm": 70}, 1)  # ints from a careless core
    memory, sqlite = MemoryStore(), SqliteStore.create(tmp_path / "i.sqlite")
    for s in (memory, sqlite):
        s.apply([StoreTelemetry(t, 3)], now=0.0)
    assert memory.telemetry_digest() == sqlite.telemetry_digest()


def test_schema_has_a_real_column_per_metric_and_the_indexes(tmp_path: Path) -> None:
    SqliteStore.create(tmp_path / "s.sqlite").close()
    db = sqlite3.connect(tmp_path / "s.sqlite")
    cols = {r[1]: r[2] for r in db.execute("PRAGMA table_info(telemetry)")}
    assert tuple(cols) == TELEMETRY_COLUMNS
    assert all(cols[m] == "REAL" for m in METRICS)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"meta", "devices", "telemetry", "events", "alerts", "rejects", "notices",
                      "security_alerts", "episodes", "strips", "device_strips"}
    indexes = {r[0]: r[1] for r in db.execute(
        "SELECT name, tbl_name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")}
    assert indexes == {"telemetry_device_t": "telemetry", "alerts_t": "alerts",
                       "episodes_device": "episodes", "strips_device": "strips",
                       "device_strips_device": "device_strips"}
    assert [r[2] for r in db.execute("PRAGMA index_info(telemetry_device_t)")] == ["device", "t"]
    db.close()


def test_wal_mode_is_on(tmp_path: Path) -> None:
    with SqliteStore.create(tmp_path / "w.sqlite") as store:
        assert isinstance(store, SqliteStore)
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_batches_flush_at_the_threshold_and_readers_see_only_flushed_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "b.sqlite"
    writer = SqliteStore.create(path)
    reader = SqliteStore.open_readonly(path)
    writer.apply([tm(i) for i in range(BATCH_ROWS - 1)], now=0.0)
    assert reader.count("telemetry") == 0  # still buffered in the writer
    writer.apply([tm(BATCH_ROWS - 1)], now=0.0)
    assert reader.count("telemetry") == BATCH_ROWS  # the buffer reached the batch size
    writer.apply([tm(BATCH_ROWS), RaiseAlert(ALERT)], now=0.0)
    assert reader.count("telemetry") == BATCH_ROWS
    writer.flush()
    assert reader.count("telemetry") == BATCH_ROWS + 1 and reader.alerts() == [ALERT]
    with pytest.raises(StoreError, match="read-only"):
        reader.apply([tm(0)], now=0.0)
    writer.close()
    assert reader.count("telemetry") == BATCH_ROWS + 1
    reader.close()


def test_a_failed_flush_keeps_the_rows_and_a_retry_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "f.sqlite"
    writer = SqliteStore.create(path)
    writer._conn.execute("PRAGMA busy_timeout=0")
    writer.apply([tm(0)], now=0.0)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    with pytest.raises(StoreError, match=str(path)):
        writer.flush()
    blocker.execute("ROLLBACK")
    blocker.close()
    writer.close()
    with SqliteStore.open_readonly(path) as reader:
        assert reader.count("telemetry") == 1


def test_create_refuses_an_existing_file_and_leaves_it_alone(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with SqliteStore.create(path) as store:
        store.apply([tm(0)], now=0.0)
    with pytest.raises(StoreError, match="already exists"):
        SqliteStore.create(path)
    with SqliteStore.open_readonly(path) as reader:
        assert reader.count("telemetry") == 1
    empty = tmp_path / "empty"
    empty.touch()
    with pytest.raises(StoreError, match="already exists"):
        SqliteStore.create(empty)


def test_create_in_a_missing_directory_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot create"):
        SqliteStore.create(tmp_path / "nope" / "store.sqlite")


def test_open_readonly_refuses_what_is_not_a_medtwin_store(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a database at all" * 10)
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    for path in (text, other, empty, tmp_path / "missing.sqlite"):
        with pytest.raises(StoreError, match=path.name):
            SqliteStore.open_readonly(path)
    assert text.read_text().startswith("hello")  # untouched


def test_readonly_path_with_uri_special_characters(tmp_path: Path) -> None:
    path = tmp_path / "run #1 ?50%.sqlite"
    SqliteStore.create(path).close()
    with SqliteStore.open_readonly(path) as reader:
        assert reader.count("telemetry") == 0


def test_event_detail_is_json(tmp_path: Path) -> None:
    with SqliteStore.create(tmp_path / "e.sqlite") as store:
        store.apply(EFFECTS, now=9.0)
        store.flush()
        assert isinstance(store, SqliteStore)
        (row,) = store._conn.execute("SELECT name, detail FROM events")
        assert row == ("booted", '{"fw":"1.2.0","n":3}')
        (notice,) = store._conn.execute("SELECT t, source, name FROM notices")
        assert notice == (9.0, "cloud", "ingest_rejected")


def test_a_store_of_an_older_schema_reads_as_having_none_of_the_newer_rows(
        tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite"
    with SqliteStore.create(path) as store:
        store.apply(EFFECTS, now=9.0)
    db = sqlite3.connect(path)  # what a schema-3 writer left: no device_strips table
    db.executescript("DROP TABLE device_strips; PRAGMA user_version=3;")
    db.close()
    with SqliteStore.open_readonly(path) as reader:
        assert reader.confirmed_strips() == []
        assert reader.count("device_strips") == 0
        assert reader.count("telemetry") == 1  # the rows it has are all there
