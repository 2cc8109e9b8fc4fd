"""The live driver on loopback: provisioned QDID identities over real mTLS MQTT to the embedded
broker, the same cores as the sim, every published window stored.

Each slow test provisions a fleet into pytest's tmp folder, starts the embedded broker on a
free 127.0.0.1 port and runs 30 simulated seconds at time scale 10 (about 3 wall seconds).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from cloud.store import TELEMETRY_COLUMNS, SqliteStore
from twin.live import LiveError, LiveRun
from twin.report import build_report
from twin.runner import load
from twin.scenario import Scenario
from twin.sim.driver import SimRun

DEVICES = 10
SECONDS = 30
SCALE = 10.0


def _scenario(devices: int = DEVICES) -> Scenario:
    return load("baseline").with_overrides(devices=devices, duration=SECONDS, mode="live")


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def _live_run(base: Path, devices: int) -> dict[str, Any]:
    base.mkdir(parents=True, exist_ok=True)
    store = SqliteStore.create(base / "store.sqlite")
    started = time.perf_counter()
    try:
        result = LiveRun(_scenario(devices), store, base / "run", time_scale=SCALE).run()
        report = build_report(result, store)
    finally:
        store.close()
    return {"report": report, "wall": time.perf_counter() - started,
            "store": base / "store.sqlite", "run": base / "run"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One live run of 10 devices shared by the assertions below (it is the slow part)."""
    return _live_run(tmp_path_factory.mktemp("live"), DEVICES)


@pytest.mark.slow
def test_every_published_window_is_stored(live: dict[str, Any]) -> None:
    t = live["report"]["telemetry"]
    assert t["published"] > 0
    assert t["stored"] == t["published"] == t["delivered"], t
    assert (t["lost"], t["rejected"], t["pending"], t["duplicates"], t["gaps"]) == (0,) * 5, t
    assert live["report"]["devices_by_state"] == {"streaming": DEVICES}
    assert live["wall"] < 60


@pytest.mark.slow
def test_stored_identities_are_the_provisioned_ones(live: dict[str, Any]) -> None:
    provisioned = {json.loads(p.read_text())["id"]
                   for p in (live["run"] / "devices").glob("*/device.json")}
    assert len(provisioned) == DEVICES
    store = live["store"]
    assert {d for (d,) in _query(store, "SELECT device FROM devices")} == provisioned
    assert {d for (d,) in _query(store, "SELECT DISTINCT device FROM telemetry")} == provisioned
    assert {d for (d,) in _query(store, "SELECT DISTINCT device FROM events")} == provisioned


@pytest.mark.slow
def test_the_broker_refused_nothing(live: dict[str, Any]) -> None:
    c = live["report"]["counters"]
    for name in ("broker.handshakes_failed", "broker.refused", "broker.subscribe_refused",
                 "broker.rate_dropped", "broker.rate_cut"):
        assert c.get(name, 0) == 0, (name, c)
    assert c.get("live.connect_refused", 0) == 0
    assert c.get("live.link_down", 0) == 0
    assert c["live.connected"] == DEVICES + 1  # each device once, and the cloud


@pytest.mark.slow
def test_a_live_run_stores_what_the_sim_stores_apart_from_identity_and_arrival(
        tmp_path: Path) -> None:
    """Parity (issue 7 item 5): same scenario and seed, same windows (values, sequence
    numbers, window times, scores), episodes and strips per device slot. 30 devices, so that
    the run has clinical episodes (4 with this seed)."""
    live = _live_run(tmp_path / "live", 30)
    assert live["report"]["telemetry"]["stored"] == live["report"]["telemetry"]["published"]
    sim_store = SqliteStore.create(tmp_path / "sim.sqlite")
    try:
        SimRun(_scenario(30).with_overrides(mode="sim"), sim_store).run()
    finally:
        sim_store.close()
    received = TELEMETRY_COLUMNS.index("received")

    def by_slot(path: Path, table: str) -> set[tuple[Any, ...]]:
        serial = dict(_query(path, "SELECT device, serial FROM devices"))
        rows = _query(path, f"SELECT * FROM {table}")
        if table == "telemetry":
            rows = [(*r[:received], *r[received + 1:]) for r in rows]
        return {(serial[r[0]], *r[1:]) for r in rows}

    for table in ("telemetry", "episodes", "strips"):
        assert by_slot(live["store"], table) == by_slot(tmp_path / "sim.sqlite", table), table
    assert _query(live["store"], "SELECT COUNT(*) FROM episodes") == [(4,)]


@pytest.mark.slow
def test_a_dropped_connection_reconnects_and_its_buffered_windows_are_stored(
        tmp_path: Path) -> None:
    """Two devices' TCP connections are cut at 15 simulated seconds: each gets LinkDown,
    buffers, paho reconnects, LinkUp sends the backlog; nothing is lost or duplicated."""
    store = SqliteStore.create(tmp_path / "store.sqlite")
    cut: list[float] = []

    def progress(t: float) -> None:
        if t >= 15 and not cut:
            cut.append(t)
            for tag in (0, 1):
                link = run.peers[tag].link
                assert link is not None
                sock = link.client.socket()
                assert isinstance(sock, socket.socket)  # an ssl.SSLSocket
                sock.shutdown(socket.SHUT_RDWR)

    try:
        run = LiveRun(_scenario(5).with_overrides(duration=40), store, tmp_path / "run",
                      time_scale=SCALE, progress=progress)
        report = build_report(run.run(), store)
    finally:
        store.close()
    t, c = report["telemetry"], report["counters"]
    assert cut and c["live.link_down"] == 2 and c["live.connected"] == 5 + 1 + 2, c
    assert t["stored"] == t["published"] > 0 and (t["lost"], t["duplicates"]) == (0, 0), t
    assert report["devices_by_state"] == {"streaming": 5}


def test_unsupported_scenarios_are_refused_before_anything_starts(tmp_path: Path) -> None:
    store = SqliteStore.create(tmp_path / "store.sqlite")
    try:
        with pytest.raises(LiveError, match="OTA campaign"):
            LiveRun(load("ota").with_overrides(devices=DEVICES), store, tmp_path / "a")
        with pytest.raises(LiveError, match="time_scale"):
            LiveRun(_scenario(), store, tmp_path / "c", time_scale=0)
    finally:
        store.close()
    assert not (tmp_path / "a").exists()


@pytest.mark.slow
def test_a_broker_restart_mid_run_loses_nothing_and_stores_nothing_twice(
        tmp_path: Path) -> None:
    """Issue 7 acceptance: the embedded broker restarts (in order) at 20 simulated seconds;
    every device reconnects with its back-off, paho re-sends what was not acknowledged
    (DUP), the cores send their buffers, the cloud's persistent session kept what arrived
    before it was back, and the cloud de-duplicates by (device, sequence)."""
    store = SqliteStore.create(tmp_path / "store.sqlite")
    restarted: list[Any] = []

    def progress(t: float) -> None:
        if t >= 20 and not restarted:
            restarted.append(asyncio.ensure_future(run.restart_broker()))

    try:
        run = LiveRun(_scenario(8).with_overrides(duration=60), store, tmp_path / "run",
                      time_scale=SCALE, progress=progress)
        report = build_report(run.run(), store)
    finally:
        store.close()
    t, c = report["telemetry"], report["counters"]
    assert restarted and restarted[0].done() and restarted[0].exception() is None
    assert run.broker_stats["restarts"] == 1
    assert c["live.link_down"] >= 8 + 1 and c["live.connected"] >= 2 * (8 + 1), c
    assert t["published"] > 0 and t["stored"] == t["published"], t
    assert (t["lost"], t["pending"], t["rejected"], t["gaps"]) == (0, 0, 0, 0), t
    rows = _query(tmp_path / "store.sqlite",
                  "SELECT device, seq, COUNT(*) FROM telemetry GROUP BY device, seq "
                  "HAVING COUNT(*) > 1")
    assert rows == []
    assert report["devices_by_state"] == {"streaming": 8}


def _with_outage(devices: int, duration: float, at: float, length: float,
                 fraction: float) -> Scenario:
    data = _scenario(devices).model_dump()
    data["duration"] = duration
    data["network"]["outages"] = [{"at": at, "duration": length, "fraction": fraction}]
    return Scenario.model_validate(data)


@pytest.mark.slow
def test_a_60_s_outage_in_live_mode_loses_nothing_that_fit_in_the_buffers(
        tmp_path: Path) -> None:
    """Issue 7 item 4: half the fleet's sockets are cut at 20 s and their reconnects fail for
    60 simulated seconds; they buffer, back off with jitter, reconnect and drain in order."""
    store = SqliteStore.create(tmp_path / "store.sqlite")
    try:
        run = LiveRun(_with_outage(8, 150, 20, 60, 0.5), store, tmp_path / "run",
                      time_scale=SCALE)
        report = build_report(run.run(), store)
    finally:
        store.close()
    t, c = report["telemetry"], report["counters"]
    assert c["live.outage_cut"] == 4 and c["live.link_down"] > 4, c
    assert t["published"] > 0 and t["stored"] == t["published"], t
    assert (t["lost"], t["pending"], t["duplicates"], t["gaps"]) == (0, 0, 0, 0), t
    assert report["devices_by_state"] == {"streaming": 8}


MITDB = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "mitdb-ds1"


@pytest.mark.slow
@pytest.mark.skipif(not (MITDB / "119.hea").is_file(), reason="MIT-BIH DS1 not beside the repo")
def test_flagged_strips_cross_the_real_broker_and_match_the_sim(tmp_path: Path) -> None:
    """Two ECG patches replay record 119 (ventricular bigeminy): their model flags windows,
    each flagged window's strip goes over mutual-TLS MQTT on the strips channel, the broker
    lets it through, the cloud confirms and stores it, exactly as the sim does."""
    from twin.scenario.schema import Replay

    base = _scenario(4).with_overrides(duration=40)
    fleet = base.fleet.model_copy(update={"devices": {"ecg_patch": 4},
                                          "replay": Replay(record=str(MITDB / "119"),
                                                           devices=2)})
    scenario = base.model_copy(update={"fleet": fleet})
    store = SqliteStore.create(tmp_path / "live.sqlite")
    try:
        report = build_report(LiveRun(scenario, store, tmp_path / "run",
                                      time_scale=SCALE).run(), store)
    finally:
        store.close()
    sim_store = SqliteStore.create(tmp_path / "sim.sqlite")
    try:
        SimRun(scenario.model_copy(update={"mode": "sim"}), sim_store).run()
    finally:
        sim_store.close()
    cloud, c = report["clinical"]["ecg"]["in_cloud"], report["counters"]
    assert cloud["strips_sent"] == cloud["strips_received"] > 0
    assert cloud["strips_confirmed"] > 0 and c.get("broker.refused", 0) == 0

    def by_slot(path: Path) -> set[tuple[Any, ...]]:
        serial = dict(_query(path, "SELECT device, serial FROM devices"))
        rows = _query(path, "SELECT * FROM device_strips")
        return {(serial[r[0]], *r[1:3], *r[4:]) for r in rows}  # all but arrival time

    assert by_slot(tmp_path / "live.sqlite") == by_slot(tmp_path / "sim.sqlite")
