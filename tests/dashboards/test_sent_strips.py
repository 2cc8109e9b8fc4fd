"""The strips ECG patches sent the cloud (store schema 4): listed and plotted on the Patient page
with the cloud's verdict, counted on the Fleet page, checked against the store and report.json.
A schema-3 store, which has no ``device_strips`` table, says so and still renders."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboards import data
from dashboards.run import open_run
from tests.dashboards.conftest import app_on, metrics, report_of
from tests.dashboards.test_clinical import figure, patient_on, query, shown_device, values

# cloud.store writes confirmed as 1, 0 or NULL (the analyser could not read the strip).
LABELS = {1: "confirmed", 0: "not confirmed", None: "not analysed"}


def busiest_patch(run: Path) -> tuple[str, str]:
    """``(device, serial)`` of the ECG patch that sent most strips."""
    device, serial = query(run, "SELECT s.device, d.serial FROM device_strips s JOIN devices d"
                                " USING (device) GROUP BY 1 ORDER BY COUNT(*) DESC, 1 LIMIT 1")[0]
    return str(device), str(serial)


def on_patch(run: Path, serial: str) -> AppTest:
    """The Patient page showing the ECG patch ``serial``."""
    at = patient_on(run, "ecg_patch")
    at.selectbox(key="serial_ecg_patch").set_value(serial).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_patient_lists_every_strip_the_patch_sent_with_the_clouds_verdict(sent_verdicts: Path):
    device, serial = busiest_patch(sent_verdicts)
    at = on_patch(sent_verdicts, serial)
    assert shown_device(at) == device
    stored = query(sent_verdicts, "SELECT t, flags, score, confirmed, findings FROM device_strips"
                                  " WHERE device=? ORDER BY t, seq", device)
    table = next(d.value for d in at.dataframe if "cloud verdict" in d.value.columns)
    assert len(table) == len(stored) >= 3
    assert list(table["cloud verdict"]) == [LABELS[c] for _, _, _, c, _ in stored]
    assert {"confirmed", "not confirmed", "not analysed"} <= set(table["cloud verdict"])
    assert np.allclose(table["window end (min)"], [round(t / 60, 2) for t, *_ in stored])
    assert list(table["device flags"]) == [f.upper().replace(",", ", ") for _, f, *_ in stored]
    assert np.allclose(table["score"], [round(s, 2) for _, _, s, _, _ in stored])
    assert list(table["findings"]) == [f.upper().replace(",", ", ") or "none"
                                       for *_, f in stored]
    assert at.selectbox(key=f"sent_{device}").options[0].endswith("· confirmed")


def test_the_chosen_strip_is_plotted_in_mv_with_its_verdict_beside_it(sent_verdicts: Path):
    device, serial = busiest_patch(sent_verdicts)
    at = on_patch(sent_verdicts, serial)
    for confirmed, verdict in LABELS.items():
        rowid, t, fs, lsb_mv, blob, found = query(
            sent_verdicts, "SELECT rowid, t, fs, lsb_mv, samples, findings FROM device_strips"
                           " WHERE device=? AND confirmed IS ? ORDER BY t LIMIT 1", device,
            confirmed)[0]
        at.selectbox(key=f"sent_{device}").set_value(rowid).run()
        assert not at.exception, [e.value for e in at.exception]
        assert metrics(at)["cloud verdict"] == verdict
        why = {1: found.upper().replace(",", ", "), 0: "none: normal rhythm",
               None: "none: the analyser could not read"}
        assert any(f"Cloud findings: {why[confirmed]}" in c.value for c in at.caption)
        trace = figure(at, "sent_strip")["data"][0]
        counts = struct.unpack(f"<{len(blob) // 2}h", blob)
        assert np.allclose(values(trace["y"]), [c * lsb_mv for c in counts])
        assert values(trace["x"])[0] == pytest.approx(t - len(counts) / fs)
        assert "mV" in trace["name"]


def test_fleet_counts_strips_as_the_report_does(baseline: Path):
    cloud = report_of(baseline)["clinical"]["ecg"]["in_cloud"]
    assert cloud["strips_received"] > 0
    m = metrics(app_on(baseline, "Fleet"))
    assert m["strips sent"] == f"{cloud['strips_sent']:,}"
    assert m["received by the cloud"] == f"{cloud['strips_received']:,}"
    assert m["confirmed"] == f"{cloud['strips_confirmed']:,}"
    assert m["not confirmed"] == f"{cloud['strips_refuted']:,}"
    assert m["not analysed"] == f"{cloud['strips_unreadable']:,}"


def test_fleet_counts_each_verdict_in_the_store(sent_verdicts: Path):
    m = metrics(app_on(sent_verdicts, "Fleet"))
    for confirmed, verdict in LABELS.items():
        (n,) = query(sent_verdicts, "SELECT COUNT(*) FROM device_strips WHERE confirmed IS ?",
                     confirmed)[0]
        assert m[verdict] == f"{n:,}", verdict
    assert m["not confirmed"] == m["not analysed"] == "1"


def test_a_schema_3_store_says_it_has_no_device_strips(schema3_store: Path):
    at = patient_on(schema3_store, "ecg_patch")
    assert not at.error, [e.value for e in at.error]
    notes = [i.value for i in at.info]
    assert any("Strips the device sent: not in this run yet" in n
               and "has no device strips" in n for n in notes), notes
    assert not [c for c in at.get("plotly_chart") if c.proto.id.endswith("-sent_strip")]
    assert figure(at, "strip")  # the ground-truth strips (schema 3) are still there
    fleet = app_on(schema3_store, "Fleet")
    assert not fleet.exception, [e.value for e in fleet.exception]
    assert "strips sent" not in metrics(fleet)
    assert any("ECG strips sent to the cloud: not in this run yet" in i.value
               for i in fleet.info)


def test_sent_strip_decodes_int16_counts_to_the_stored_millivolts(baseline: Path):
    run = open_run(baseline)
    store, key = str(run.store), run.key
    device, _ = busiest_patch(baseline)
    listed = data.sent_strips(store, key, device)
    assert listed is not None and len(listed) > 0
    for row in listed.itertuples():
        t, fs, lsb_mv, blob, confirmed = query(
            baseline, "SELECT t, fs, lsb_mv, samples, confirmed FROM device_strips"
                      " WHERE rowid=?", row.id)[0]
        strip = data.sent_strip(store, key, row.id)
        assert strip is not None
        counts = struct.unpack(f"<{len(blob) // 2}h", blob)  # int16 little-endian
        assert strip.samples.tolist() == pytest.approx([c * lsb_mv for c in counts])
        assert (strip.t_end, strip.fs, strip.units, strip.beats) == (t, fs, "mV", ())
        assert row.n == len(counts) and row.verdict == LABELS[confirmed]
    assert data.sent_strip(store, key, -1) is None


def test_sent_strip_queries_return_none_before_schema_4(schema3_store: Path, baseline: Path):
    run = open_run(schema3_store)
    store, key = str(run.store), run.key
    assert data.sent_strips(store, key, busiest_patch(baseline)[0]) is None
    assert data.sent_strip(store, key, 1) is None
    assert data.sent_strip_verdicts(store, key) is None
