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

DATA = Path("/work/shared/data/mitdb-ds1")
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
