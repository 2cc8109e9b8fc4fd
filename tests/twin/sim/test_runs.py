"""Scenario runs through the SimPy driver: the spine's acceptance checks."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from cloud.store import SqliteStore
from twin.report import WALL_CLOCK_FIELDS
from twin.scenario.schema import Replay
from twin.sim.fleet import PHASE_GROUPS

TOP_LEVEL = ("schema", "scenario", "seed", "mode", "devices", "sim_seconds", "wall_seconds",
             "realtime_factor", "telemetry", "clinical", "security")


def expected_windows(devices_by_kind: dict[str, int], duration: float, window: float) -> int:
    """Windows a fleet should send: phase group g closes at g*window/G + m*window <= duration."""
    total = 0
    for n in devices_by_kind.values():
        for j in range(n):
            offset = (j % PHASE_GROUPS) * window / PHASE_GROUPS
            total += math.floor((duration - offset) / window)
    return total


def test_report_has_every_schema_field_and_accounts_for_every_window(run_small, small):
    sc = small(devices=200, duration=600)
    out = run_small(sc)
    report = json.loads(out.report_json.read_text())
    assert all(key in report for key in TOP_LEVEL)
    assert set(report["telemetry"]) >= {"published", "delivered", "stored", "rejected", "lost"}
    assert set(report["clinical"]) >= {"episodes", "detected_on_device", "detected_in_cloud",
                                       "sensitivity", "ppv", "median_detection_latency_s"}
    assert set(report["security"]) >= {"attacks", "psa_scorecard"}
    assert sorted(report["security"]["psa_scorecard"], key=int) == [str(n) for n in range(1, 11)]
    t = report["telemetry"]
    assert t["published"] == expected_windows(sc.fleet.devices, 600, sc.window)
    assert t["stored"] + t["rejected"] + t["lost"] == t["published"]
    assert t["pending"] == 0
    assert report["devices"] == 200
    assert (out.out / "report.md").read_text().startswith("# Run report: baseline")


def test_stored_count_is_read_from_the_database(run_small, small):
    out = run_small(small(devices=50, duration=120))
    with sqlite3.connect(out.out / "store.sqlite") as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM telemetry").fetchone()
        (devices,) = db.execute("SELECT COUNT(*) FROM devices").fetchone()
    assert rows == out.report["telemetry"]["stored"] > 0
    assert devices == 50


def test_same_scenario_and_seed_give_identical_report_and_rows(run_small, small):
    sc = small(devices=120, duration=300)
    a, b = run_small(sc), run_small(sc)
    strip = lambda r: {k: v for k, v in r.items() if k not in WALL_CLOCK_FIELDS}  # noqa: E731
    assert strip(a.report) == strip(b.report)
    digests = []
    for out in (a, b):
        store = SqliteStore.open_readonly(out.out / "store.sqlite")
        digests.append(store.telemetry_digest())
        store.close()
    assert digests[0] == digests[1]


def test_another_seed_gives_other_telemetry(run_small, small):
    a = run_small(small(devices=60, duration=120, seed=1))
    b = run_small(small(devices=60, duration=120, seed=2))
    stores = [SqliteStore.open_readonly(o.out / "store.sqlite") for o in (a, b)]
    assert stores[0].telemetry_digest() != stores[1].telemetry_digest()
    for s in stores:
        s.close()


def test_outage_windows_are_buffered_and_delivered_after_reconnect(run_small, small):
    sc = small("outage", devices=100, duration=900)
    out = run_small(sc)
    t = out.report["telemetry"]
    c = out.report["counters"]
    assert t["published"] == expected_windows(sc.fleet.devices, 900, sc.window)
    assert t["stored"] + t["rejected"] + t["lost"] + t["pending"] == t["published"]
    assert t["lost"] == 0 and t["pending"] == 0  # QoS 1 and store-and-forward: nothing lost
    # every device in the outage reconnected and said so: one "connected" event per session
    outage_devices = round(sc.network.outages[0].fraction * 100)
    assert c["events.delivered"] == 100 + outage_devices
    assert out.report["devices_by_state"] == {"streaming": 100}


def test_outage_longer_than_the_buffer_loses_the_oldest_windows(run_small, small):
    base = small("outage", devices=40, duration=900)
    outage = base.network.outages[0].model_copy(update={"at": 60.0, "duration": 600.0,
                                                        "fraction": 1.0})
    sc = base.model_copy(update={
        "network": base.network.model_copy(update={"outages": [outage]}),
        "fleet": base.fleet.model_copy(update={"buffer_windows": 5}),
    })
    out = run_small(sc)
    t = out.report["telemetry"]
    # 600 s offline at one window per 10 s is about 60 windows a device; 5 fit in the buffer
    assert t["lost"] >= 40 * 50
    assert out.report["counters"]["telemetry.lost.buffer_overflow"] == t["lost"]
    assert t["stored"] + t["rejected"] + t["lost"] + t["pending"] == t["published"]
    assert t["gaps"] > 0  # the cloud saw the holes the dropped windows left


def test_each_device_sequence_arrives_in_order_on_its_connection(run_small, small):
    out = run_small(small("outage", devices=60, duration=900))
    with sqlite3.connect(out.out / "store.sqlite") as db:
        rows = db.execute("SELECT device, seq FROM telemetry ORDER BY rowid").fetchall()
    last: dict[str, int] = {}
    for device, seq in rows:
        assert seq > last.get(device, -1)
        last[device] = seq


def test_episode_ground_truth_is_stored_for_every_device_it_names(run_small, small):
    out = run_small(small(devices=100, duration=900))
    with sqlite3.connect(out.out / "store.sqlite") as db:
        rows = db.execute("SELECT device, kind, start_s, end_s FROM episodes").fetchall()
        devices = {d for (d,) in db.execute("SELECT device FROM devices")}
    clinical = out.report["clinical"]
    assert clinical["episodes"] == len(rows) > 0
    assert sum(clinical["episodes_by_kind"].values()) == len(rows)
    assert all(device in devices and end > start >= 0 for device, _, start, end in rows)


MITDB = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "mitdb-ds1"


@pytest.mark.skipif(not (MITDB / "208.hea").is_file(), reason="MIT-BIH DS1 not beside the repo")
def test_replayed_ecg_patches_carry_the_record_annotations(run_small, small):
    sc = small(devices=30, duration=600)
    fleet = sc.fleet.model_copy(update={"replay": Replay(record=str(MITDB / "208"), devices=3),
                                        "devices": {"ecg_patch": 30}})
    out = run_small(sc.model_copy(update={"fleet": fleet}))
    with sqlite3.connect(out.out / "store.sqlite") as db:
        replayed = {d for (d,) in db.execute(
            "SELECT device FROM devices WHERE serial IN ('ECG-00001','ECG-00002','ECG-00003')")}
        kinds = {k for (d, k) in db.execute("SELECT device, kind FROM episodes")
                 if d in replayed}
    assert "trigeminy" in kinds  # record 208's rhythm annotations, not a synthetic episode


def test_episode_rate_zero_switches_episodes_off(run_small, small):
    sc = small(devices=40, duration=600)
    cohort = sc.fleet.cohort.model_copy(update={"episode_rate": 0.0})
    out = run_small(sc.model_copy(update={"fleet": sc.fleet.model_copy(update={"cohort": cohort})}))
    assert out.report["clinical"]["episodes"] == 0


def test_the_raw_window_of_every_episode_is_kept_with_its_beat_labels(run_small, small):
    import numpy as np

    out = run_small(small(devices=100, duration=900))
    with sqlite3.connect(out.out / "store.sqlite") as db:
        strips = db.execute("SELECT s.device, s.fs, s.samples, s.beats, d.kind FROM strips s "
                            "JOIN devices d USING (device)").fetchall()
        started = {d for (d,) in db.execute("SELECT device FROM episodes")}
    assert strips and {s[0] for s in strips} == started
    ecg = [s for s in strips if s[4] == "ecg_patch"]
    assert ecg
    for _, fs, samples, beats, _ in ecg:
        signal = np.frombuffer(samples, "<f4")
        labels = json.loads(beats)
        assert len(signal) == fs * 10 and labels
        assert {label for _, label in labels} <= set("NSVFQ")
        assert all(0 <= sample < len(signal) for sample, _ in labels)


def test_device_flags_are_scored_against_the_ground_truth(run_small, small):
    out = run_small(small(devices=100, duration=1800))
    clinical = out.report["clinical"]
    with sqlite3.connect(out.out / "store.sqlite") as db:
        (flagged,) = db.execute("SELECT COUNT(*) FROM telemetry WHERE flags != ''").fetchone()
        kinds = {k for (k,) in db.execute(
            "SELECT DISTINCT kind FROM telemetry WHERE flags != ''")}
    assert clinical["flagged_windows"] == flagged > 0
    assert kinds <= {"ecg_patch", "bp_cuff", "sweat_patch"}  # every kind runs its model
    assert 0 <= clinical["detected_on_device"] <= clinical["scored_episodes"]
    if clinical["scored_episodes"]:
        assert 0.0 <= clinical["sensitivity"] <= 1.0
    assert 0.0 <= clinical["ppv"] <= 1.0
