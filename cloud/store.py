"""The run store: everything a run verified, refused and raised, in one SQLite file per run.

:class:`RunStore` is the I/O seam (house style 5), implemented by :class:`MemoryStore` (lists,
for tests) and :class:`SqliteStore` (WAL, so the dashboard reads while the run writes,
ARCHITECTURE.md section 5). Both build identical rows, so their telemetry digests agree. The
telemetry table has one REAL column per entry of :data:`twin.core.messages.METRICS`: adding a
metric there adds a column here. Rows are buffered and written with ``executemany`` in one
transaction per flush; a failed write keeps the buffer, and committed rows are never touched.

Length: over 400 lines on purpose; the table declarations, both implementations and the
digest must change together, and splitting them would hide that coupling.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from cloud.alerts import Alert, AlertState, Severity
from cloud.clinical import Episode
from cloud.effects import RaiseAlert, Reject, StoreEvent, StoreStrip, StoreTelemetry
from cloud.errors import StoreError
from cloud.monitor import SecurityAlert
from twin.core.events import Notice
from twin.core.messages import METRICS

BATCH_ROWS: Final = 2000
SCHEMA_VERSION: Final = 4
"""2: security_alerts; 3: episodes (ground truth) and strips; 4: device_strips (the strips
devices sent on a flag, with the cloud's verdict)."""
APPLICATION_ID: Final = 0x6D747764  # "mtwd": marks the file as a medtwin store (sqlite3 docs)

_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_BASE_TELEMETRY: Final = ("device", "seq", "t", "received", "kind", "battery", "score", "flags")
if _bad := [m for m in METRICS if not _IDENT.match(m) or m in _BASE_TELEMETRY]:
    raise RuntimeError(f"metric names {_bad} cannot be telemetry columns (plain identifiers)")
METRIC_COLUMNS: Final = tuple(METRICS)
TELEMETRY_COLUMNS: Final = _BASE_TELEMETRY + METRIC_COLUMNS

# table -> column declarations: the single source of the schema and of the inserts.
_TABLES: Final[Mapping[str, str]] = {
    "devices": "device TEXT PRIMARY KEY, serial TEXT NOT NULL, kind TEXT NOT NULL,"
               " tenant TEXT NOT NULL",
    "telemetry": "device TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL,"
                 " received REAL NOT NULL, kind TEXT NOT NULL, battery REAL NOT NULL,"
                 " score REAL, flags TEXT NOT NULL"
                 + "".join(f", {m} REAL" for m in METRIC_COLUMNS),
    "events": "device TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL,"
              " received REAL NOT NULL, name TEXT NOT NULL, detail TEXT NOT NULL",
    "alerts": "device TEXT NOT NULL, t REAL NOT NULL, rule TEXT NOT NULL, metric TEXT NOT NULL,"
              " value REAL NOT NULL, state TEXT NOT NULL, severity TEXT NOT NULL",
    "rejects": "topic TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,"
               " received REAL NOT NULL",
    "notices": "t REAL NOT NULL, source TEXT NOT NULL, name TEXT NOT NULL, detail TEXT NOT NULL",
    "episodes": "device TEXT NOT NULL, kind TEXT NOT NULL, start_s REAL NOT NULL,"
                " end_s REAL NOT NULL",
    "strips": "device TEXT NOT NULL, t_end REAL NOT NULL, fs REAL NOT NULL,"
              " units TEXT NOT NULL, samples BLOB NOT NULL, beats TEXT NOT NULL",
    "device_strips": "device TEXT NOT NULL, seq INTEGER NOT NULL, t REAL NOT NULL,"
                     " received REAL NOT NULL, fs REAL NOT NULL, lsb_mv REAL NOT NULL,"
                     " samples BLOB NOT NULL, flags TEXT NOT NULL, score REAL,"
                     " confirmed INTEGER, findings TEXT NOT NULL",
    "security_alerts": "t REAL NOT NULL, subject TEXT NOT NULL, rule TEXT NOT NULL,"
                       " severity TEXT NOT NULL, count INTEGER NOT NULL, psa_goals TEXT NOT NULL",
}
_COLUMNS: Final = {
    name: tuple(d.split()[0] for d in decl.split(",")) for name, decl in _TABLES.items()
}
TABLES: Final = (*_TABLES, "meta")
_SCHEMA: Final = "".join(
    f"CREATE TABLE {name} ({decl});\n" for name, decl in _TABLES.items()
) + (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
    "CREATE INDEX telemetry_device_t ON telemetry (device, t);\n"
    "CREATE INDEX alerts_t ON alerts (t);\n"
    "CREATE INDEX episodes_device ON episodes (device);\n"
    "CREATE INDEX strips_device ON strips (device);\n"
    "CREATE INDEX device_strips_device ON device_strips (device);\n"
)

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class StripRow:
    """A window of raw signal kept for people to look at (e.g. the ECG around an episode).

    Attributes:
        device: the device's UEID hex.
        t_end: the window's end; it covers ``[t_end - len/fs, t_end)``.
        fs: sampling rate (Hz).
        units: physical unit of the samples.
        samples: float32 little-endian bytes.
        beats: ``(sample index, AAMI label)`` pairs (ECG), empty otherwise.
    """

    device: str
    t_end: float
    fs: float
    units: str
    samples: bytes
    beats: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True, slots=True)
class EpisodeRow:
    """One injected clinical episode: which device, what, from when to when (sim seconds)."""

    device: str
    kind: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """One device of the fleet, as the inventory knows it."""

    device: str
    serial: str
    kind: str
    tenant: str


def _json(detail: Mapping[str, Any]) -> str:
    return json.dumps(dict(detail), sort_keys=True, separators=(",", ":"))


def _telemetry_row(effect: StoreTelemetry) -> Row:
    tm = effect.telemetry
    # float() everywhere a REAL goes, so a MemoryStore row equals what SQLite gives back.
    metrics = [None if (v := tm.values.get(m)) is None else float(v) for m in METRIC_COLUMNS]
    score = None if tm.score is None else float(tm.score)
    return (tm.device, tm.seq, float(tm.t), float(effect.received), str(tm.kind),
            float(tm.battery), score, ",".join(tm.flags), *metrics)


def _strip_row(effect: StoreStrip) -> Row:
    s, verdict = effect.strip, effect.confirmation
    confirmed = None if verdict is None else int(verdict.confirmed)
    findings = "" if verdict is None else ",".join(verdict.findings)
    return (s.device, s.seq, float(s.t), float(effect.received), float(s.fs), float(s.lsb_mv),
            bytes(s.samples), ",".join(s.flags), None if s.score is None else float(s.score),
            confirmed, findings)


def _rows(effects: Iterable[object], now: float) -> Iterator[tuple[str, Row]]:
    """Map storable effects to (table, row); other effects are not the store's business."""
    for e in effects:
        if isinstance(e, StoreTelemetry):
            yield "telemetry", _telemetry_row(e)
        elif isinstance(e, StoreEvent):
            ev = e.event
            yield "events", (ev.device, ev.seq, float(ev.t), float(e.received), ev.name,
                             _json(ev.detail))
        elif isinstance(e, StoreStrip):
            yield "device_strips", _strip_row(e)
        elif isinstance(e, RaiseAlert):
            a = e.alert
            yield "alerts", (a.device, float(a.t), a.rule, a.metric, float(a.value), a.state,
                             a.severity)
        elif isinstance(e, Reject):
            yield "rejects", (e.topic, e.reason, e.detail, float(e.received))
        elif isinstance(e, Notice):
            yield "notices", (float(now), e.source, e.name, _json(e.detail))
        elif isinstance(e, SecurityAlert):
            yield "security_alerts", (float(e.t), e.subject, e.rule, e.severity, e.count,
                                      ",".join(map(str, e.psa_goals)))


def _alert(row: Row) -> Alert:
    device, t, rule, metric, value, state, severity = row
    return Alert(device, t, rule, metric, value, cast(AlertState, state), cast(Severity, severity))


class RunStore(ABC):
    """Where a run's verified data, alerts, refusals and notices go."""

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _add(self, table: str, rows: Iterable[Row]) -> None:
        """Append rows to a table (buffered or not, as the implementation likes)."""

    @abstractmethod
    def _iter(self, table: str) -> Iterator[Row]:
        """Yield a table's rows in insertion order."""

    @abstractmethod
    def set_meta(self, key: str, value: str) -> None:
        """Set a run metadata entry (scenario, seed...). Raises StoreError if not writable."""

    @abstractmethod
    def flush(self) -> None:
        """Make buffered rows visible. Raises StoreError if the write failed (rows kept)."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release; closing twice is harmless. Raises StoreError as flush does."""

    def add_devices(self, rows: Iterable[DeviceRow]) -> None:
        """Record fleet members (a device added again replaces its row); StoreError if closed."""
        self._add("devices", ((r.device, r.serial, r.kind, r.tenant) for r in rows))

    def add_strips(self, rows: Iterable[StripRow]) -> None:
        """Record raw signal strips (float32 little-endian samples, beats as JSON)."""
        self._add("strips", ((r.device, r.t_end, r.fs, r.units, r.samples,
                              json.dumps([list(b) for b in r.beats])) for r in rows))

    def add_episodes(self, rows: Iterable[EpisodeRow]) -> None:
        """Record the ground truth of clinical episodes (what detection is scored against)."""
        self._add("episodes", ((r.device, r.kind, r.start_s, r.end_s) for r in rows))

    def apply(self, effects: Iterable[object], now: float) -> None:
        """Store what the storable effects say; ignore every other effect.

        Args:
            effects: a core's effects (``StoreTelemetry``, ``StoreEvent``, ``RaiseAlert``,
                ``Reject`` and ``twin.core.events.Notice`` are stored).
            now: the time stamped on notices, which carry none of their own.

        Raises:
            StoreError: if the store is closed, read-only, or a batch write failed.
        """
        by_table: dict[str, list[Row]] = {}
        for table, row in _rows(effects, now):
            by_table.setdefault(table, []).append(row)
        for table, rows in by_table.items():
            self._add(table, rows)

    def count(self, table: str) -> int:
        """Rows in ``table``, buffered ones included; StoreError if not one of :data:`TABLES`."""
        _check_table(table)
        return sum(1 for _ in self._iter(table))

    def meta(self) -> dict[str, str]:
        """The run metadata entries."""
        return {str(k): str(v) for k, v in self._iter("meta")}

    def telemetry_rows(self) -> list[Row]:
        """Every telemetry row, in insertion order, columns as :data:`TELEMETRY_COLUMNS`."""
        return list(self._iter("telemetry"))

    def alerts(self) -> list[Alert]:
        """Every alert raised or cleared, in insertion order."""
        return [_alert(row) for row in self._iter("alerts")]

    def episodes(self) -> list[Episode]:
        """Every ground-truth episode, in recording order."""
        return [Episode(str(d), str(k), float(s), float(e))
                for d, k, s, e in self._iter("episodes")]

    def flagged_windows(self, kind: str | None = None) -> list[tuple[str, float]]:
        """``(device, window end)`` of every stored window its device flagged (of devices
        of ``kind`` only, if given)."""
        flags_at, kind_at = TELEMETRY_COLUMNS.index("flags"), TELEMETRY_COLUMNS.index("kind")
        return [(str(row[0]), float(row[2])) for row in self._iter("telemetry")
                if row[flags_at] and kind in (None, row[kind_at])]

    def confirmed_strips(self) -> list[tuple[str, float, float]]:
        """``(device, window end, received)`` of every device strip the cloud confirmed."""
        return [(str(r[0]), float(r[2]), float(r[3])) for r in self._iter("device_strips")
                if r[9] == 1]

    def episodes_by_kind(self) -> dict[str, int]:
        """How many ground-truth episodes of each kind the run recorded."""
        counts = Counter(str(row[1]) for row in self._iter("episodes"))
        return dict(sorted(counts.items()))

    def rejects_by_reason(self) -> dict[str, int]:
        """How many messages were refused, per reason code."""
        return dict(Counter(row[1] for row in self._iter("rejects")))

    def telemetry_digest(self) -> str:
        """SHA-256 hex over the telemetry rows in insertion order (for determinism tests).

        Each row is hashed as a compact JSON array and a newline: both stores agree on it.
        """
        h = hashlib.sha256()
        for row in self._iter("telemetry"):
            h.update(json.dumps(list(row), separators=(",", ":")).encode())
            h.update(b"\n")
        return h.hexdigest()


def _check_table(table: str) -> None:
    # Table names are interpolated into SQL: only the schema's own names are allowed.
    if table not in TABLES:
        raise StoreError(f"no table {table!r:.40}; tables are {', '.join(TABLES)}")


class MemoryStore(RunStore):
    """A :class:`RunStore` in lists, for tests of the seams around the store."""

    def __init__(self) -> None:
        self.tables: dict[str, list[Row]] = {name: [] for name in _COLUMNS}
        self.metadata: dict[str, str] = {}
        self.closed = False

    def _add(self, table: str, rows: Iterable[Row]) -> None:
        if self.closed:
            raise StoreError("memory store is closed")
        if table == "meta":
            self.metadata.update(rows)
        elif table == "devices":
            # Same order as SQLite's INSERT OR REPLACE: a replaced row moves to the end.
            kept = {r[0]: r for r in self.tables["devices"]}
            for r in rows:
                kept.pop(r[0], None)
                kept[r[0]] = r
            self.tables["devices"] = list(kept.values())
        else:
            self.tables[table].extend(rows)

    def _iter(self, table: str) -> Iterator[Row]:
        return iter(self.metadata.items() if table == "meta" else self.tables[table])

    def set_meta(self, key: str, value: str) -> None:
        """See :meth:`RunStore.set_meta`."""
        self._add("meta", [(key, str(value))])

    def flush(self) -> None:
        """Nothing to do: rows are visible as soon as they are added."""

    def close(self) -> None:
        """Mark the store closed; later writes raise :class:`StoreError`."""
        self.closed = True


class SqliteStore(RunStore):
    """A :class:`RunStore` in one SQLite file per run (WAL, batched inserts).

    Build one with :meth:`create` (a writer) or :meth:`open_readonly` (e.g. the dashboard).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, *, readonly: bool) -> None:
        self._conn = conn
        self.path = path
        self.readonly = readonly
        self._closed = False
        self._buffers: dict[str, list[Row]] = {name: [] for name in _COLUMNS}
        self._insert = {
            name: f"INSERT {'OR REPLACE ' if name == 'devices' else ''}INTO {name} "
            f"({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            for name, cols in _COLUMNS.items()
        }

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> SqliteStore:
        """Create a new store file (``path`` must not exist) and its schema; return a writer.

        Raises:
            StoreError: naming the path, if it exists (a run never overwrites an earlier
                run's evidence) or cannot be created.
        """
        p = Path(path)
        try:
            # O_EXCL claims the name atomically: two runs racing for one --out cannot both win.
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            raise StoreError(f"{p}: already exists; a run store is never overwritten") from None
        except OSError as exc:
            raise StoreError(f"{p}: cannot create the run store ({exc.strerror})") from None
        conn = sqlite3.connect(p, isolation_level=None)  # opens the empty file we just made
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL-safe
            # A 10,000-device run inserts into the (device, t) index all over its B-tree;
            # 64 MiB of page cache keeps those pages in memory instead of re-reading them.
            conn.execute("PRAGMA cache_size=-65536")
            conn.executescript(
                f"BEGIN; PRAGMA application_id={APPLICATION_ID};"
                f" PRAGMA user_version={SCHEMA_VERSION}; {_SCHEMA} COMMIT;"
            )
        except sqlite3.Error as exc:
            conn.close()
            for suffix in ("", "-wal", "-shm"):  # the files are ours and hold nothing yet
                Path(f"{p}{suffix}").unlink(missing_ok=True)
            raise StoreError(f"{p}: cannot create the run store ({exc})") from None
        return cls(conn, p, readonly=False)

    @classmethod
    def open_readonly(cls, path: str | os.PathLike[str]) -> SqliteStore:
        """Open a store made by :meth:`create` for reading, even while a run writes it.

        Raises:
            StoreError: naming the path, if it is missing, empty, not an SQLite database,
                another application's database, or of a newer schema.
        """
        p = Path(path)
        if not p.is_file():
            raise StoreError(f"{p}: no such run store")
        if p.stat().st_size == 0:
            raise StoreError(f"{p}: empty file, not a medtwin run store")
        # mode=ro through a URI: the reader can never modify the run's evidence.
        conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"{p}: not a medtwin run store ({exc})") from None
        if app_id != APPLICATION_ID or version > SCHEMA_VERSION:
            conn.close()
            why = "another application's database" if app_id != APPLICATION_ID else (
                f"schema {version} is newer than {SCHEMA_VERSION}")
            raise StoreError(f"{p}: not a readable medtwin run store ({why})")
        return cls(conn, p, readonly=True)

    def _writable(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: store is closed")
        if self.readonly:
            raise StoreError(f"{self.path}: store is open read-only")

    def _add(self, table: str, rows: Iterable[Row]) -> None:
        self._writable()
        buffer = self._buffers[table]
        buffer.extend(rows)
        if len(buffer) >= BATCH_ROWS:
            self.flush()

    def _query(self, table: str, sql: str) -> sqlite3.Cursor:
        _check_table(table)
        if self._closed:
            raise StoreError(f"{self.path}: store is closed")
        self.flush()  # a writer's reads include what it buffered
        try:
            return self._conn.execute(sql)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read {table} ({exc})") from None

    def _absent(self, table: str) -> bool:
        """Whether ``table`` is missing because the file is of an older schema (a store
        written before that table existed reads as having none of its rows)."""
        if not self.readonly:
            return False
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        try:
            return self._conn.execute(sql, (table,)).fetchone() is None
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read its tables ({exc})") from None

    def _iter(self, table: str) -> Iterator[Row]:
        if self._absent(table):
            return iter(())
        order = "key" if table == "meta" else "rowid"
        return iter(self._query(table, f"SELECT * FROM {table} ORDER BY {order}"))

    def flagged_windows(self, kind: str | None = None) -> list[tuple[str, float]]:
        """See :meth:`RunStore.flagged_windows`; filtered in SQL, not in Python."""
        sql = "SELECT device, t, kind FROM telemetry WHERE flags != '' ORDER BY rowid"
        return [(str(d), float(t)) for d, t, k in self._query("telemetry", sql)
                if kind in (None, k)]

    def count(self, table: str) -> int:
        """See :meth:`RunStore.count`; one ``COUNT(*)`` rather than reading the rows."""
        if self._absent(table):
            return 0
        return int(self._query(table, f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def set_meta(self, key: str, value: str) -> None:
        """See :meth:`RunStore.set_meta`; written at once, in its own transaction."""
        self._writable()
        try:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write meta {key!r} ({exc})") from None

    def flush(self) -> None:
        """Write every buffered row with ``executemany``, all in one transaction.

        Raises:
            StoreError: naming the file, if the write failed; the transaction is rolled back
                and the buffers are kept, so committed rows are untouched and a retry is safe.
        """
        if self.readonly or self._closed or not any(self._buffers.values()):
            return
        try:
            self._conn.execute("BEGIN")
            for table, rows in self._buffers.items():
                if rows:
                    self._conn.executemany(self._insert[table], rows)
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: batch write failed ({exc})") from None
        for rows in self._buffers.values():
            rows.clear()

    def close(self) -> None:
        """Flush (on a writer) and close the connection; closing twice is harmless.

        Raises:
            StoreError: if the final flush failed (the connection is closed all the same).
        """
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._conn.close()
