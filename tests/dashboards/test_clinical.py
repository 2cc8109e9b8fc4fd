"""Clinical ground truth on the dashboard: episodes by kind (Fleet), and on the Patient page
the device's episodes shaded and listed and its raw strips plotted, checked against the store
and report.json. Older stores and runs without episodes still render and say so."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import charts
from tests.dashboards.conftest import app_on, metrics, report_of

KINDS = ("ecg_patch", "bp_cuff", "sweat_patch")


def figure(at: AppTest, key: str) -> dict[str, Any]:
    """The plotly figure drawn with ``key``, as its JSON."""
    found = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    assert found, f"no figure {key!r}"
    return json.loads(found[0].proto.spec)


def values(v: Any) -> list[Any]:
    """A figure's array as a list: plotly writes numpy arrays as ``{dtype, bdata, shape}``."""
    if isinstance(v, dict) and "bdata" in v:
        array = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        if "shape" in v:
            array = array.reshape([int(n) for n in str(v["shape"]).split(",")])
        return array.tolist()
    return list(v)


def query(run: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(run / "store.sqlite")) as conn:
        return conn.execute(sql, params).fetchall()


def shown_device(at: AppTest) -> str:
    """The device the Patient page is showing (from its caption)."""
    for caption in at.caption:
        if m := re.search(r"Device `([0-9a-f]+)`", caption.value):
            return m.group(1)
    raise AssertionError("no device caption")


def patient_on(run: Path, kind: str) -> AppTest:
    at = app_on(run, "Patient")
    at.radio[0].set_value(kind).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_fleet_episodes_by_kind_match_the_report(baseline: Path):
    report = report_of(baseline)
    fig = figure(app_on(baseline, "Fleet"), "episodes")
    shown: Counter[str] = Counter()
    for trace in fig["data"]:  # one trace per device kind, stacked
        for kind, n in zip(values(trace["x"]), values(trace["y"]), strict=True):
            shown[kind] += n
    assert report["clinical"]["episodes"] > 0
    assert dict(shown) == report["clinical"]["episodes_by_kind"]
    assert sum(shown.values()) == report["clinical"]["episodes"]
    assert {t["name"] for t in fig["data"]} <= set(charts.KIND_LABELS.values())


@pytest.mark.parametrize("kind", KINDS)
def test_patient_shades_and_lists_the_devices_episodes(kind: str, baseline: Path):
    at = patient_on(baseline, kind)
    device = shown_device(at)
    truth = query(baseline, "SELECT kind, start_s, end_s FROM episodes WHERE device=?"
                            " ORDER BY start_s, kind", device)
    assert metrics(at)["episodes"] == f"{len(truth):,}"
    fig = figure(at, "vitals")
    shaded = [s for s in fig["layout"].get("shapes", []) if s.get("fillcolor") == charts.EPISODE]
    panels = len([k for k in fig["layout"] if k.startswith("yaxis")])
    assert len(shaded) == len(truth) * panels  # every episode shaded on every panel
    labels = {a["text"] for a in fig["layout"].get("annotations", [])}
    assert {k for k, _, _ in truth} <= labels
    if truth:
        table = next(d.value for d in at.dataframe if "episode" in d.value.columns)
        assert list(table["episode"]) == [k for k, _, _ in truth]
        assert np.allclose(table["start (min)"], [round(s / 60, 2) for _, s, _ in truth])


def test_the_preselected_ecg_device_has_episodes(baseline: Path):
    at = patient_on(baseline, "ecg_patch")
    assert int(metrics(at)["episodes"]) > 0 or not query(
        baseline, "SELECT 1 FROM episodes e JOIN devices d USING (device)"
                  " WHERE d.kind='ecg_patch'")


@pytest.mark.parametrize("kind", KINDS)
def test_strip_is_the_stored_samples_in_seconds_and_physical_units(kind: str, baseline: Path):
    at = patient_on(baseline, kind)
    (serial,) = query(baseline, "SELECT d.serial FROM strips s JOIN devices d USING (device)"
                                " WHERE d.kind=? GROUP BY 1 ORDER BY COUNT(*) DESC LIMIT 1",
                      kind)[0]  # a device of the kind with strips (the run has some of each)
    at.selectbox(key=f"serial_{kind}").set_value(serial).run()
    device = shown_device(at)
    chosen = at.selectbox(key=f"strip_{device}").value
    t_end, fs, units, blob, beats = query(
        baseline, "SELECT t_end, fs, units, samples, beats FROM strips WHERE rowid=?", chosen)[0]
    fig = figure(at, "strip")
    trace = fig["data"][0]
    samples = np.frombuffer(blob, dtype="<f4")
    x = values(trace["x"])
    assert np.allclose(values(trace["y"]), samples)
    assert x[0] == pytest.approx(t_end - len(samples) / fs)
    assert x[-1] == pytest.approx(t_end - 1 / fs)
    assert fig["layout"]["xaxis"]["title"]["text"] == "simulated time (s)"
    assert units in fig["layout"]["yaxis"]["title"]["text"]
    marked = {t["name"][0]: len(values(t["x"])) for t in fig["data"] if t["name"] in
              charts.BEAT_NAMES.values()}
    assert marked == dict(Counter(label for _, label in json.loads(beats)))


def test_ecg_beat_labels_n_neutral_others_highlighted(baseline: Path):
    at = patient_on(baseline, "ecg_patch")
    device = shown_device(at)
    ectopic = query(baseline, "SELECT rowid FROM strips WHERE device=? AND beats LIKE '%\"V\"%'"
                              " OR device=? AND beats LIKE '%\"S\"%'", device, device)
    fig = figure(at, "strip")
    beats = {t["name"][0]: t for t in fig["data"] if t["name"] in charts.BEAT_NAMES.values()}
    assert "N" in beats and beats["N"]["marker"]["color"] == charts.BEAT_COLOURS["N"]
    if ectopic:  # the viewer opens on the strip with most non-N beats
        assert set(beats) - {"N"}
    for label, trace in beats.items():
        assert set(trace["text"]) == {label}
        if label != "N":
            assert trace["marker"]["size"] > beats["N"]["marker"]["size"]
            assert trace["marker"]["color"] != charts.BEAT_COLOURS["N"]


def test_only_tinyml_is_still_not_in_this_run(baseline: Path):
    for kind in KINDS:
        notes = [i.value for i in patient_on(baseline, kind).info]
        assert all("TinyML" in n for n in notes if "not in this run yet" in n), notes
        assert not any("strip" in n.lower() or "Episodes" in n for n in notes), notes


def test_an_older_store_says_episodes_and_strips_are_not_there(old_store: Path):
    at = patient_on(old_store, "ecg_patch")
    assert metrics(at)["episodes"] == "n/a"
    assert any("Episodes (ground truth) and raw strips: not in this run yet" in i.value
               for i in at.info)
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("-strip")]
    fleet = app_on(old_store, "Fleet")
    assert not fleet.exception
    assert any("Clinical episodes: not in this run yet" in i.value for i in fleet.info)


def test_a_run_without_episodes_renders_and_says_why(no_episodes: Path):
    assert report_of(no_episodes)["clinical"]["episodes"] == 0
    at = patient_on(no_episodes, "ecg_patch")
    assert metrics(at)["episodes"] == "0"
    assert any("episode_rate: 0" in c.value for c in at.caption)
    fleet = app_on(no_episodes, "Fleet")
    assert not fleet.exception
    assert any("No clinical episode" in c.value for c in fleet.caption)
