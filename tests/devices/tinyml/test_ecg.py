"""The ECG model on fleet batches: synthetic rhythms, a real record, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devices.physiology import CohortParams, EcgSource
from devices.tinyml.dataset import match, record_windows
from devices.tinyml.ecg import EcgModel
from devices.tinyml.errors import InputError
from devices.tinyml.evaluate import auroc, record_report
from devices.tinyml.features import FS, extract
from twin.core.seeds import SeedTree

MITDB = Path(__file__).resolve().parents[4] / "shared" / "data" / "mitdb-ds1"


def _windows(rhythm: str, n: int = 16, seed: int = 3) -> np.ndarray:
    src = EcgSource(n, CohortParams(), SeedTree(seed), rhythm=rhythm)
    idx = np.arange(n)
    src.window(10.0, idx)
    return src.window(20.0, idx).signal


def test_sinus_windows_are_mostly_quiet_and_bigeminy_is_flagged() -> None:
    model = EcgModel.load()
    sinus = model.score(_windows("sinus"), 250.0)
    bigem = model.score(_windows("bigeminy"), 250.0)
    assert sinus.flag.mean() <= 0.25
    assert bigem.v_beats.mean() >= 3 and bigem.flag.mean() >= 0.8
    assert bigem.score.mean() > sinus.score.mean()
    assert "pvc" in bigem.labels(int(np.argmax(bigem.v_beats)))


def test_af_windows_are_flagged_af() -> None:
    result = EcgModel.load().score(_windows("af"), 250.0)
    assert result.af.mean() >= 0.7


def test_batch_results_do_not_depend_on_batch_neighbours() -> None:
    model = EcgModel.load()
    sig = _windows("pvc", n=6)
    whole = model.score(sig, 250.0)
    alone = model.score(sig[2:3], 250.0)
    assert whole.v_beats[2] == alone.v_beats[0]
    assert whole.score[2] == pytest.approx(alone.score[0])


def test_other_rates_are_resampled() -> None:
    sig = _windows("sinus", n=2)
    from scipy import signal as sps

    at_360 = sps.resample_poly(sig, 36, 25, axis=1).astype(np.float32)
    beats = extract(at_360, 360.0)
    ref = extract(sig, 250.0)
    assert abs(len(beats) - len(ref)) <= 2


def test_flat_and_empty_windows_score_zero() -> None:
    result = EcgModel.load().score(np.zeros((3, 2500), np.float32), FS)
    assert not result.flag.any() and (result.score == 0).all()


@pytest.mark.parametrize("bad", [np.zeros(2500), np.zeros((2, 100)), np.zeros((2, 2, 2))])
def test_bad_batches_raise_input_error(bad: np.ndarray) -> None:
    with pytest.raises(InputError):
        EcgModel.load().score(bad, 250.0)


def test_low_rate_is_refused() -> None:
    with pytest.raises(InputError, match="100 Hz"):
        EcgModel.load().score(np.zeros((1, 1000)), 50.0)


def test_match_finds_nearest_within_tolerance() -> None:
    det_row, det_s = np.array([0, 0, 1, 1]), np.array([100, 500, 100, 900])
    ref_row, ref_s = np.array([0, 1, 1]), np.array([110, 60, 880])
    assert match(det_row, det_s, ref_row, ref_s, 37).tolist() == [0, -1, -1, 2]


def test_auroc_matches_definition() -> None:
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert auroc([0.5, 0.5], [0, 1]) == 0.5
    assert auroc([0.1, 0.2], [1, 1]) is None


@pytest.mark.skipif(not (MITDB / "115.hea").exists(), reason="MIT-BIH DS1 not present")
def test_validation_record_is_scored_like_the_card() -> None:
    lw = record_windows(MITDB / "115")
    rep = record_report(lw, EcgModel.load().score(lw.batch.signal, lw.batch.fs))
    assert rep["windows"] == 180 and rep["V"]["reference"] == 0
    assert rep["af"] is None
    assert rep["V"]["flagged"] <= 20  # a sinus record: few false V flags
