"""The ECG patches run their int8 beat/AF model on every window of the fleet (issue 6)."""

from __future__ import annotations

import sqlite3
from typing import Any

from twin.scenario import Scenario


def _ecg_fleet(small: Any, episode_rate: float, devices: int = 60,
               duration: float = 1200) -> Scenario:
    sc = small(devices=devices, duration=duration)
    cohort = sc.fleet.cohort.model_copy(update={"episode_rate": episode_rate})
    fleet = sc.fleet.model_copy(update={"cohort": cohort, "devices": {"ecg_patch": devices}})
    return sc.model_copy(update={"fleet": fleet})  # type: ignore[no-any-return]




def test_injected_ventricular_and_af_episodes_are_flagged_on_the_device(run_small, small):
    out = run_small(_ecg_fleet(small, episode_rate=20.0))
    clinical = out.report["clinical"]
    by_kind = clinical["detected_by_kind"]
    for kind in ("bigeminy", "af"):  # sustained: every window of the episode is abnormal
        n, found = by_kind[kind]["episodes"], by_kind[kind]["detected_on_device"]
        assert n >= 3 and found >= 0.8 * n, (kind, n, found)
    assert clinical["ppv"] >= 0.9
    with sqlite3.connect(out.out / "store.sqlite") as db:
        labels = {f for (f,) in db.execute(
            "SELECT DISTINCT flags FROM telemetry WHERE kind = 'ecg_patch' AND flags != ''")}
        scores = db.execute("SELECT MIN(score), MAX(score) FROM telemetry "
                            "WHERE kind = 'ecg_patch'").fetchone()
    assert {lab for flags in labels for lab in flags.split(",")} <= {"pvc", "pac", "af"}
    assert any("pvc" in f for f in labels) and any("af" in f for f in labels)
    assert 0.0 <= scores[0] < 0.5 <= scores[1] <= 1.0


def test_every_flagged_window_sends_its_strip_and_the_cloud_scores_them(run_small, small):
    out = run_small(_ecg_fleet(small, episode_rate=20.0, devices=30, duration=900))
    with sqlite3.connect(out.out / "store.sqlite") as db:
        windows = db.execute("SELECT device, t, flags, score FROM telemetry "
                             "WHERE flags != '' ORDER BY device, t").fetchall()
        strips = db.execute("SELECT device, t, flags, score, length(samples), fs, confirmed "
                            "FROM device_strips ORDER BY device, t").fetchall()
    assert windows and [s[:4] for s in strips] == windows  # one strip per flagged window
    assert all(n == 2 * 2500 and fs == 250.0 for *_, n, fs, _ in strips)
    confirmed = sum(s[6] == 1 for s in strips)
    ecg = out.report["clinical"]["ecg"]
    assert ecg["in_cloud"]["strips_received"] == len(strips) == ecg["in_cloud"]["strips_sent"]
    assert ecg["in_cloud"]["strips_confirmed"] == confirmed >= 0.8 * len(strips)
    assert out.report["clinical"]["detected_in_cloud"] == ecg["in_cloud"]["detected"]
    assert 0 < ecg["in_cloud"]["detected"] <= ecg["on_device"]["detected"]  # cloud only confirms
    assert ecg["in_cloud"]["median_detection_latency_s"] >= ecg["on_device"][
        "median_detection_latency_s"]  # it hears later
    summary = (out.out / "report.md").read_text()
    assert "| cloud, ECG strips |" in summary
    assert f"{ecg['in_cloud']['strips_confirmed']:,} confirmed" in summary


def test_patients_in_sinus_rhythm_are_almost_never_flagged(run_small, small):
    out = run_small(_ecg_fleet(small, episode_rate=0.0))
    with sqlite3.connect(out.out / "store.sqlite") as db:
        total, flagged = db.execute(
            "SELECT COUNT(*), SUM(flags != '') FROM telemetry WHERE kind = 'ecg_patch'"
        ).fetchone()
    assert total == out.report["telemetry"]["stored"] > 0
    assert flagged <= 0.005 * total
