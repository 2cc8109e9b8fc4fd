"""Cached, read-only SQL aggregations over a run store, as pandas frames.

Every query is aggregated or bounded in SQL (GROUP BY, time bins, the ``(device, t)`` index),
so a page reads hundreds of rows, never the hundreds of thousands a 10,000-device run stores.
Each function takes the store path and the run's cache key (sizes and mtimes of the store,
its WAL and the report, :attr:`dashboards.run.Run.key`): ``st.cache_data`` serves repeats
from memory and recomputes as soon as a run in progress writes more.

Connections are opened ``mode=ro`` (the dashboard can never alter a run's evidence) and WAL
lets them read while ``twin run`` writes. Tables that later schema versions added
(device_strips in 4, episodes and strips in 3, security_alerts in 2) are probed with
:func:`has_table`: for an older store these functions return None, so pages can say "not in
this run yet" instead of failing.

Over 400 lines on purpose: this is every SQL query the pages make, behind one cache and one
"table missing in an older store" rule; split by page, the queries would drift apart.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

Key = tuple[int, ...]
OFFLINE_STATES = ("reconnecting",)
ONLINE_STATES = ("connected", "streaming", "updating")
_cache = st.cache_data(show_spinner=False, max_entries=64)


@contextmanager
def connect(store: str) -> Iterator[sqlite3.Connection]:
    """A read-only connection to ``store`` (closed on exit)."""
    conn = sqlite3.connect(Path(store).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        yield conn
    finally:
        conn.close()


def _frame(store: str, sql: str, params: tuple[Any, ...] = ()) -> pd.DataFrame:
    with connect(store) as conn:
        return pd.read_sql_query(sql, conn, params=params)


@_cache
def tables(store: str, key: Key) -> frozenset[str]:
    """Names of the tables in the store (later issues add some)."""
    with connect(store) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
    return frozenset(r[0] for r in rows)


def has_table(store: str, key: Key, name: str) -> bool:
    """Whether the store has table ``name``."""
    return name in tables(store, key)


@_cache
def counts(store: str, key: Key) -> dict[str, int]:
    """Row counts of the core tables."""
    names = ("devices", "telemetry", "events", "alerts", "rejects", "notices")
    with connect(store) as conn:
        return {n: int(conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0]) for n in names}


@_cache
def scenario(store: str, key: Key) -> dict[str, Any] | None:
    """The scenario the run was started with (``meta.scenario``), or None if not recorded."""
    with connect(store) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key='scenario'").fetchone()
    if row is None:
        return None
    try:
        value = json.loads(row[0])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


@_cache
def sim_time(store: str, key: Key) -> float:
    """The latest simulated time stored (seconds), the run's progress while it writes."""
    with connect(store) as conn:
        row = conn.execute("SELECT MAX(t) FROM telemetry").fetchone()
        notice = conn.execute("SELECT MAX(t) FROM notices").fetchone()
    return float(max(row[0] or 0.0, notice[0] or 0.0))


@_cache
def fleet(store: str, key: Key) -> pd.DataFrame:
    """One row per device: serial, kind, state, last window (time, battery, values), alerts.

    The last window is found through the ``(device, t)`` index, one seek per device.
    """
    from cloud.store import METRIC_COLUMNS

    metrics = ", ".join(f"x.{m}" for m in METRIC_COLUMNS)
    sql = f"""
        WITH last_state AS (
            SELECT source AS device, json_extract(detail, '$.to') AS state FROM notices
            WHERE rowid IN (SELECT MAX(rowid) FROM notices WHERE name='state' GROUP BY source)
        ), raised AS (
            SELECT device, SUM(state='raised') AS alerts,
                   SUM(CASE state WHEN 'raised' THEN 1 WHEN 'cleared' THEN -1 ELSE 0 END) AS open
            FROM alerts GROUP BY device
        )
        SELECT d.device, d.serial, d.kind, COALESCE(s.state, 'unknown') AS state,
               x.t AS last_t, x.battery, x.score, x.flags, {metrics},
               COALESCE(r.alerts, 0) AS alerts, MAX(COALESCE(r.open, 0), 0) AS open_alerts
        FROM devices d
        LEFT JOIN last_state s ON s.device = d.device
        LEFT JOIN telemetry x ON x.rowid = (
            SELECT rowid FROM telemetry WHERE device = d.device ORDER BY t DESC LIMIT 1)
        LEFT JOIN raised r ON r.device = d.device
        ORDER BY d.rowid
    """
    df = _frame(store, sql)
    df["online"] = df["state"].isin(ONLINE_STATES)
    return df


@_cache
def throughput(store: str, key: Key, bin_s: float) -> pd.DataFrame:
    """Windows stored per bin of arrival time and kind: ``t`` (bin start, s), ``kind``, ``n``.

    Binned by when the cloud received them, so an outage shows as a dip and the
    store-and-forward backlog as the burst after it.
    """
    sql = ("SELECT CAST(received / ? AS INTEGER) * ? AS t, kind, COUNT(*) AS n"
           " FROM telemetry GROUP BY 1, 2 ORDER BY 1")
    return _frame(store, sql, (bin_s, bin_s))


@_cache
def state_changes(store: str, key: Key) -> pd.DataFrame:
    """Lifecycle transitions after start-up (t > 0): ``t``, ``device``, ``from``, ``to``."""
    sql = ("SELECT t, source AS device, json_extract(detail, '$.from') AS \"from\","
           " json_extract(detail, '$.to') AS \"to\" FROM notices"
           " WHERE name='state' AND t > 0 ORDER BY rowid")
    return _frame(store, sql)


@_cache
def offline_over_time(store: str, key: Key) -> pd.DataFrame:
    """Devices offline (link down, reconnecting) over time: a step series ``t``, ``offline``."""
    df = state_changes(store, key)
    if df.empty:
        return pd.DataFrame({"t": [], "offline": []})
    step = df["to"].isin(OFFLINE_STATES).astype(int) - df["from"].isin(OFFLINE_STATES).astype(int)
    out = pd.DataFrame({"t": df["t"], "offline": step.cumsum()})
    return out.groupby("t", as_index=False).last()


@_cache
def alerts_binned(store: str, key: Key, bin_s: float) -> pd.DataFrame:
    """Alerts raised per time bin and rule: ``t``, ``rule``, ``severity``, ``n``."""
    # Alerts come with the window that closes a bin (t = 60 s): count them in that bin.
    sql = ("SELECT CAST(MAX(t - 1e-6, 0) / ? AS INTEGER) * ? AS t, rule, severity,"
           " COUNT(*) AS n FROM alerts WHERE state='raised' GROUP BY 1, 2, 3 ORDER BY 1")
    return _frame(store, sql, (bin_s, bin_s))


@_cache
def rejects_binned(store: str, key: Key, bin_s: float) -> pd.DataFrame:
    """Messages refused per time bin and reason: ``t``, ``reason``, ``n``."""
    sql = ("SELECT CAST(received / ? AS INTEGER) * ? AS t, reason, COUNT(*) AS n FROM rejects"
           " GROUP BY 1, 2 ORDER BY 1")
    return _frame(store, sql, (bin_s, bin_s))


@_cache
def security_alerts_by_rule(store: str, key: Key) -> pd.DataFrame | None:
    """The security monitor's alerts per rule and severity: ``rule``, ``severity``,
    ``alerts``, ``subjects`` (distinct), ``signals`` (refusals behind them), ``first_t``,
    ``last_t`` (s), ``psa_goals``; None for a store made before the monitor existed."""
    if not has_table(store, key, "security_alerts"):
        return None
    return _frame(store, "SELECT rule, severity, COUNT(*) AS alerts,"
                         " COUNT(DISTINCT subject) AS subjects, SUM(count) AS signals,"
                         " MIN(t) AS first_t, MAX(t) AS last_t, MAX(psa_goals) AS psa_goals"
                         " FROM security_alerts GROUP BY 1, 2 ORDER BY 3 DESC, 1")


@_cache
def security_alerts_binned(store: str, key: Key, bin_s: float) -> pd.DataFrame | None:
    """The security monitor's alerts per time bin, rule and severity: ``t`` (bin start, s),
    ``rule``, ``severity``, ``alerts``, ``subjects``, ``signals``; None before the monitor."""
    if not has_table(store, key, "security_alerts"):
        return None
    sql = ("SELECT CAST(t / ? AS INTEGER) * ? AS t, rule, severity, COUNT(*) AS alerts,"
           " COUNT(DISTINCT subject) AS subjects, SUM(count) AS signals"
           " FROM security_alerts GROUP BY 1, 2, 3 ORDER BY 1")
    return _frame(store, sql, (bin_s, bin_s))


@_cache
def security_log(store: str, key: Key, limit: int = 500) -> pd.DataFrame:
    """The most recent noteworthy records, newest first: refusals, alerts, non-routine events
    and notices (routine ones, ``connected`` and lifecycle ``state``, are counted elsewhere).

    Columns ``t`` (s), ``what`` (reject, alert, event, notice), ``name``, ``who``, ``detail``.
    """
    sql = """
        SELECT * FROM (
            SELECT received AS t, 'reject' AS what, reason AS name, topic AS who, detail
            FROM rejects
            UNION ALL SELECT t, 'alert', rule || ' ' || state, device,
                   metric || ' = ' || printf('%.1f', value) || ' (' || severity || ')'
            FROM alerts
            UNION ALL SELECT t, 'event', name, device, detail FROM events
            WHERE name != 'connected'
            UNION ALL SELECT t, 'notice', name, source, detail FROM notices WHERE name != 'state'
            {monitor}
        ) ORDER BY t DESC LIMIT ?
    """
    monitor = ("UNION ALL SELECT t, 'security alert', rule, subject, severity || ', '"
               " || count || ' signals, PSA goal ' || psa_goals FROM security_alerts"
               if has_table(store, key, "security_alerts") else "")
    return _frame(store, sql.format(monitor=monitor), (limit,))


@_cache
def reject_reasons(store: str, key: Key) -> pd.DataFrame:
    """Refusals per reason: ``reason``, ``n``."""
    return _frame(store, "SELECT reason, COUNT(*) AS n FROM rejects GROUP BY 1 ORDER BY 2 DESC")


@_cache
def network_notices(store: str, key: Key) -> pd.DataFrame:
    """Network notices (outages...): ``t``, ``name``, ``detail`` (a dict)."""
    df = _frame(store, "SELECT t, name, detail FROM notices WHERE source='network' ORDER BY t")
    df["detail"] = [json.loads(d) for d in df["detail"]]
    return df


@_cache
def device_series(store: str, key: Key, device: str, max_points: int = 1500) -> pd.DataFrame:
    """One device's windows over time, averaged into at most ``max_points`` buckets.

    Columns ``t`` (s), ``battery``, ``score``, ``flagged`` (windows with a device flag in the
    bucket) and one per metric. Uses the ``(device, t)`` index.
    """
    from cloud.store import METRIC_COLUMNS

    with connect(store) as conn:
        lo, hi, n = conn.execute(
            "SELECT MIN(t), MAX(t), COUNT(*) FROM telemetry WHERE device=?", (device,)
        ).fetchone()
    if not n:
        return pd.DataFrame(columns=["t", "battery", "score", "flagged", *METRIC_COLUMNS])
    width = max((hi - lo) / max_points, 1e-9) if n > max_points else None
    avg = ", ".join(f"AVG({m}) AS {m}" for m in METRIC_COLUMNS)
    bucket = f"CAST((t - {lo!r}) / {width!r} AS INTEGER)" if width else "rowid"
    sql = (f"SELECT AVG(t) AS t, AVG(battery) AS battery, MAX(score) AS score,"
           f" SUM(flags != '') AS flagged, {avg} FROM telemetry WHERE device=?"
           f" GROUP BY {bucket} ORDER BY 1")
    return _frame(store, sql, (device,))


@_cache
def device_alerts(store: str, key: Key, device: str) -> pd.DataFrame:
    """A device's alerts in order: ``t``, ``rule``, ``metric``, ``value``, ``state``."""
    return _frame(store, "SELECT t, rule, metric, value, state, severity FROM alerts"
                         " WHERE device=? ORDER BY t", (device,))


@_cache
def device_history(store: str, key: Key, device: str) -> pd.DataFrame:
    """A device's events and lifecycle notices: ``t``, ``name``, ``detail``."""
    sql = ("SELECT t, name, detail FROM events WHERE device=?"
           " UNION ALL SELECT t, name, detail FROM notices WHERE source=? ORDER BY t")
    return _frame(store, sql, (device, device))


# --- Clinical ground truth (schema 3): episodes and the raw strips stored at their start ---


@dataclass(frozen=True)
class Strip:
    """One stored window of raw signal: samples in ``units`` at ``fs`` Hz, ending at ``t_end``.

    ``beats`` are ``(sample index, AAMI label)`` pairs (ECG only; N, S, V, F or Q).
    """

    t_end: float
    fs: float
    units: str
    samples: np.ndarray
    beats: tuple[tuple[int, str], ...]

    @property
    def t_start(self) -> float:
        """When the strip's first sample was taken (simulated s)."""
        return self.t_end - len(self.samples) / self.fs

    def times(self) -> np.ndarray:
        """Each sample's simulated time (s)."""
        return self.t_start + np.arange(len(self.samples)) / self.fs


@_cache
def episode_kinds(store: str, key: Key) -> pd.DataFrame | None:
    """Ground-truth episodes per kind and device kind: ``episode``, ``device_kind``, ``n``,
    ``devices`` (distinct); None for a store made before episodes were recorded."""
    if not has_table(store, key, "episodes"):
        return None
    return _frame(store, "SELECT e.kind AS episode, COALESCE(d.kind, 'unknown') AS device_kind,"
                         " COUNT(*) AS n, COUNT(DISTINCT e.device) AS devices FROM episodes e"
                         " LEFT JOIN devices d ON d.device = e.device GROUP BY 1, 2"
                         " ORDER BY 3 DESC, 1")


@_cache
def episode_counts(store: str, key: Key) -> dict[str, int]:
    """Ground-truth episodes per device (devices with none are absent; so is an old store)."""
    if not has_table(store, key, "episodes"):
        return {}
    with connect(store) as conn:
        rows = conn.execute("SELECT device, COUNT(*) FROM episodes GROUP BY 1").fetchall()
    return {str(d): int(n) for d, n in rows}


@_cache
def device_episodes(store: str, key: Key, device: str) -> pd.DataFrame | None:
    """A device's ground-truth episodes in order: ``kind``, ``start_s``, ``end_s``; None for a
    store made before episodes were recorded."""
    if not has_table(store, key, "episodes"):
        return None
    return _frame(store, "SELECT kind, start_s, end_s FROM episodes WHERE device=?"
                         " ORDER BY start_s, kind", (device,))


@_cache
def device_strips(store: str, key: Key, device: str) -> pd.DataFrame | None:
    """A device's stored strips, without their samples: ``id``, ``t_end`` (s), ``fs`` (Hz),
    ``units``, ``n`` (samples), ``beats`` and ``ectopic`` (beats not labelled N); None for a
    store made before strips were recorded."""
    if not has_table(store, key, "strips"):
        return None
    # length() of a BLOB reads its size from the record header, not the samples.
    sql = ("SELECT rowid AS id, t_end, fs, units, length(samples) / 4 AS n,"
           " json_array_length(beats) AS beats, (SELECT COUNT(*) FROM json_each(beats)"
           " WHERE json_extract(value, '$[1]') != 'N') AS ectopic"
           " FROM strips WHERE device=? ORDER BY t_end")
    return _frame(store, sql, (device,))


def _row_by_id(store: str, key: Key, table: str, columns: str, row_id: int
               ) -> tuple[Any, ...] | None:
    """One row of ``table`` by rowid; None if absent or if the store predates the table."""
    if not has_table(store, key, table):
        return None
    with connect(store) as conn:
        row = conn.execute(f"SELECT {columns} FROM {table} WHERE rowid=?",
                           (int(row_id),)).fetchone()
    return None if row is None else tuple(row)


@_cache
def strip(store: str, key: Key, strip_id: int) -> Strip | None:
    """One strip by its ``id`` (from :func:`device_strips`), samples decoded; None if absent."""
    row = _row_by_id(store, key, "strips", "t_end, fs, units, samples, beats", strip_id)
    if row is None:
        return None
    t_end, fs, units, blob, beats = row
    samples = np.frombuffer(blob, dtype="<f4").astype(np.float64)  # float32 little-endian
    labels = tuple((int(i), str(label)) for i, label in json.loads(beats))
    return Strip(float(t_end), float(fs), str(units), samples, labels)


# --- Strips the ECG patches sent (schema 4): the windows their model flagged, with the cloud's
# verdict (cloud.confirm). The verdict is labelled here, in SQL, so the Patient page's list and
# the Fleet page's counts cannot disagree: confirmed 1, 0, or NULL (the analyser could not
# read the strip, cloud.ingest._confirm).

_VERDICT = ("CASE confirmed WHEN 1 THEN 'confirmed' WHEN 0 THEN 'not confirmed'"
            " ELSE 'not analysed' END")
VERDICTS = ("confirmed", "not confirmed", "not analysed")
NO_SENT_STRIPS = ("This run's store has no device strips: it was written before ECG patches sent "
                  "the strips their model flags (store schema 4); runs made now have them.")


@_cache
def sent_strips(store: str, key: Key, device: str) -> pd.DataFrame | None:
    """The strips a device sent, in order, without their samples: ``id``, ``t`` (window
    end, s), ``received`` (s), ``fs`` (Hz), ``lsb_mv``, ``n`` (samples), ``flags`` (the
    device's, comma-separated), ``score`` (0-1), ``verdict`` (one of :data:`VERDICTS`) and
    ``findings`` (the cloud's, comma-separated); None for a store made before devices sent
    strips (schema 4)."""
    if not has_table(store, key, "device_strips"):
        return None
    sql = (f"SELECT rowid AS id, t, received, fs, lsb_mv, length(samples) / 2 AS n, flags,"
           f" score, {_VERDICT} AS verdict, findings FROM device_strips WHERE device=?"
           " ORDER BY t, seq")
    return _frame(store, sql, (device,))


@_cache
def sent_strip(store: str, key: Key, strip_id: int) -> Strip | None:
    """One sent strip by its ``id`` (from :func:`sent_strips`) in millivolts, or None.

    The device sends int16 little-endian counts of ``lsb_mv`` millivolts (the ``Strip``
    message); they are scaled back here exactly as the cloud's analyser reads them. A device
    sends no beat labels, so ``beats`` is empty.
    """
    row = _row_by_id(store, key, "device_strips", "t, fs, lsb_mv, samples", strip_id)
    if row is None:
        return None
    t, fs, lsb_mv, blob = row
    samples = np.frombuffer(blob, dtype="<i2").astype(np.float64) * float(lsb_mv)
    return Strip(float(t), float(fs), "mV", samples, ())


@_cache
def sent_strip_verdicts(store: str, key: Key) -> dict[str, int] | None:
    """Strips the cloud received from devices, per verdict (every one of :data:`VERDICTS`,
    zeros included); None for a store made before devices sent strips (schema 4)."""
    if not has_table(store, key, "device_strips"):
        return None
    with connect(store) as conn:
        rows = conn.execute(f"SELECT {_VERDICT}, COUNT(*) FROM device_strips GROUP BY 1")
        found = {str(v): int(n) for v, n in rows}
    return {v: found.get(v, 0) for v in VERDICTS}
