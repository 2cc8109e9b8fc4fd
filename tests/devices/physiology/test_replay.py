"""WFDB replay: the same samples (after resampling) and labels as wfdb reads them.

Data: MIT-BIH Arrhythmia Database, Moody & Mark 2001, PhysioNet (DS1 records only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from scipy.signal import resample_poly

from devices.physiology import AAMI_MAP, RecordError, WfdbReplay

DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "mitdb-ds1"
pytestmark = pytest.mark.skipif(not (DATA / "208.hea").exists(), reason="MIT-BIH DS1 not here")
WINDOWS = 6


@pytest.fixture(scope="module")
def replay() -> WfdbReplay:
    return WfdbReplay(DATA / "208", fs=250.0, n_devices=2, offsets=[0.0, 600.0])


def test_streams_the_resampled_record(replay: WfdbReplay) -> None:
    x = wfdb.rdrecord(str(DATA / "208")).p_signal[:, 0]
    expected = resample_poly(x, 25, 36).astype(np.float32)
    got = np.concatenate([replay.window(10.0 * k, np.arange(2)).signal
                          for k in range(1, WINDOWS + 1)], axis=1)
    n = got.shape[1]
    assert np.array_equal(got[0], expected[:n])
    assert np.array_equal(got[1], expected[150000:150000 + n])  # 600 s in at 250 Hz


def test_a_restarted_replay_equals_one_read_with_those_offsets(replay: WfdbReplay) -> None:
    offsets = [30.0, 0.0, 1795.0]
    again = replay.restarted(offsets)
    fresh = WfdbReplay(DATA / "208", fs=250.0, n_devices=3, offsets=offsets)
    for t_end in (10.0, 20.0):
        a, b = again.window(t_end, np.arange(3)), fresh.window(t_end, np.arange(3))
        assert np.array_equal(a.signal, b.signal) and np.array_equal(a.beats, b.beats)
        assert np.array_equal(a.episodes, b.episodes)
    assert again.n == 3 and replay.n == 2  # the original keeps its devices
    assert again.signal is replay.signal  # read and resampled once


def test_labels_and_positions_match_the_reference_annotations(replay: WfdbReplay) -> None:
    ann = wfdb.rdann(str(DATA / "208"), "atr")
    span = WINDOWS * 10.0 * ann.fs
    ref = [(round(s * 250 / 360), AAMI_MAP[c]) for s, c in zip(ann.sample, ann.symbol,
                                                              strict=True)
           if c in AAMI_MAP and s < span - 2]
    got = []
    for k in range(1, WINDOWS + 1):
        beats = replay.window(10.0 * k, np.array([0])).beats
        got += [(int(b["sample"]) + 2500 * (k - 1), str(b["label"])) for b in beats]
    assert got[: len(ref)] == ref
    assert {"N", "V", "F"} <= {label for _, label in got}


def test_aami_mapping_is_ec57() -> None:
    assert {c for c, v in AAMI_MAP.items() if v == "S"} == set("AaJS")
    assert {c for c, v in AAMI_MAP.items() if v == "V"} == set("VE")
    assert AAMI_MAP["F"] == "F" and {c for c, v in AAMI_MAP.items() if v == "Q"} == set("/fQ")
    assert "+" not in AAMI_MAP and "~" not in AAMI_MAP


def test_rhythm_annotations_become_episodes() -> None:
    src = WfdbReplay(DATA / "201", fs=250.0)
    kinds = set(src.episodes_table["kind"].tolist())
    assert "af" in kinds


def test_hr_is_from_reference_beats(replay: WfdbReplay) -> None:
    b = replay.window(10.0, np.arange(2))
    assert np.all((b.values > 40) & (b.values < 180))


def test_missing_record_is_our_error(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="nope"):
        WfdbReplay(tmp_path / "nope")
    (tmp_path / "bad.hea").write_text("garbage here\n")
    with pytest.raises(RecordError):
        WfdbReplay(tmp_path / "bad")


def _write(folder: Path, names: list[str], symbols: list[str], samples: list[int]) -> Path:
    """A two-signal 360 Hz record (signal k is the constant k + 1) with these annotations."""
    sig = np.column_stack([np.full(7200, k + 1.0) for k in range(len(names))])
    wfdb.wrsamp("rec", fs=360, units=["mV"] * len(names), sig_name=names, p_signal=sig,
                fmt=["16"] * len(names), write_dir=str(folder))
    wfdb.wrann("rec", "atr", np.array(samples), symbols, write_dir=str(folder))
    return folder / "rec"


def test_the_mlii_lead_is_chosen_by_name(tmp_path: Path) -> None:
    rec = _write(tmp_path, ["V5", "MLII"], ["N", "N"], [360, 720])
    assert np.median(WfdbReplay(rec).signal) == pytest.approx(2.0, abs=0.01)  # MLII: second
    assert np.median(WfdbReplay(rec, channel=0).signal) == pytest.approx(1.0, abs=0.01)
    (tmp_path / "other").mkdir()
    other = _write(tmp_path / "other", ["V1", "V2"], ["N", "N"], [360, 720])
    assert np.median(WfdbReplay(other).signal) == pytest.approx(1.0, abs=0.01)  # the first


def test_flutter_spans_come_from_the_bracket_annotations(tmp_path: Path) -> None:
    rec = _write(tmp_path, ["MLII"], ["N", "[", "!", "]", "N", "["],
                 [360, 1800, 2000, 3600, 4320, 6480])
    src = WfdbReplay(rec, fs=250.0)
    assert src.vf_spans.tolist() == [[1250, 2501], [4500, src.length]]  # the last one is open
    assert src.beat_label.tolist() == ["N", "N"]  # "!" flutter waves are not beats


def test_record_207_has_its_six_flutter_episodes() -> None:
    src = WfdbReplay(DATA / "207", fs=250.0)
    spans = src.vf_spans
    assert len(spans) == 6 and np.all(spans[:, 1] > spans[:, 0])
    inside = (src.beat_sample[:, None] >= spans[:, 0]) & (src.beat_sample[:, None] < spans[:, 1])
    assert not inside.any()  # no beat is annotated during flutter


def test_record_114_is_read_on_mlii() -> None:
    x = wfdb.rdrecord(str(DATA / "114")).p_signal[:, 1]
    got = WfdbReplay(DATA / "114", fs=250.0).signal
    assert np.array_equal(got, resample_poly(x, 25, 36).astype(np.float32))
