"""Synthetic ECG checked by an independent detector (scipy find_peaks on a band-passed signal)."""

from __future__ import annotations

import numpy as np
import pytest

from devices.physiology import CohortParams, EcgSource, PhysiologyError
from tests.devices.physiology.helpers import heart_rate, qrs_width_ms, rr_cv
from twin.core.messages import KIND_METRICS, Kind
from twin.core.seeds import SeedTree

FS = 250.0


def stream(src: EcgSource, windows: int, idx: np.ndarray | None = None) -> np.ndarray:
    """``windows`` consecutive windows of every device, concatenated in time."""
    rows = np.arange(src.n) if idx is None else idx
    return np.concatenate([src.window(10.0 * k, rows).signal for k in range(1, windows + 1)],
                          axis=1)


@pytest.mark.parametrize("bpm", [50.0, 75.0, 120.0])
def test_heart_rate_matches_the_commanded_sinus_rate(bpm: float) -> None:
    src = EcgSource(8, CohortParams(), SeedTree(int(bpm)), rhythm="sinus", hr_bpm=bpm)
    for row in stream(src, 3):
        assert abs(heart_rate(row, FS) - bpm) < 3.0


def test_reported_hr_is_measured_from_the_beats() -> None:
    src = EcgSource(8, CohortParams(), SeedTree(1), rhythm="sinus", hr_bpm=90.0)
    batch = src.window(10.0, np.arange(8))
    assert batch.values.shape == (8, len(KIND_METRICS[Kind.ECG_PATCH]))
    assert np.all(np.abs(batch.values[:, 0] - 90.0) < 4.0)


def test_af_rr_is_far_more_irregular_than_sinus() -> None:
    sinus = stream(EcgSource(8, CohortParams(), SeedTree(2), rhythm="sinus"), 3)
    af = stream(EcgSource(8, CohortParams(), SeedTree(2), rhythm="af"), 3)
    cv_sinus = np.array([rr_cv(r, FS) for r in sinus])
    cv_af = np.array([rr_cv(r, FS) for r in af])
    assert cv_sinus.max() < 0.10
    assert cv_af.min() > 0.12
    assert np.median(cv_af) > 2.5 * np.median(cv_sinus)


def test_af_beats_have_no_p_wave_but_f_waves() -> None:
    """Between beats, AF shows 4-9 Hz f-wave energy that sinus rhythm does not."""
    quiet = {}
    for rhythm in ("sinus", "af"):
        src = EcgSource(4, CohortParams(), SeedTree(3), rhythm=rhythm, noise=False)
        x = stream(src, 1)
        spec = np.abs(np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1)) ** 2
        f = np.fft.rfftfreq(x.shape[1], 1 / FS)
        quiet[rhythm] = spec[:, (f > 4.5) & (f < 8.5)].sum(1) / spec.sum(1)
    assert np.all(quiet["af"] > quiet["sinus"])


@pytest.mark.parametrize("rhythm", ["pvc", "bigeminy", "vt"])
def test_pvc_qrs_is_wide_and_normal_qrs_narrow(rhythm: str) -> None:
    src = EcgSource(10, CohortParams(), SeedTree(5), rhythm=rhythm)
    src.window(10.0, np.arange(10))
    batch = src.window(20.0, np.arange(10))
    widths: dict[str, list[float]] = {"N": [], "V": []}
    for beat in batch.beats:
        if 0.4 * FS < beat["sample"] < batch.signal.shape[1] - 0.4 * FS:
            widths[beat["label"]].append(
                qrs_width_ms(batch.signal[beat["row"]], FS, int(beat["sample"])))
    assert len(widths["V"]) > 10
    assert min(widths["V"]) > 120.0
    if widths["N"]:
        assert np.median(widths["N"]) < 110.0
        assert np.mean(np.array(widths["N"]) < 110.0) > 0.95


def test_pvc_has_a_compensatory_pause() -> None:
    src = EcgSource(20, CohortParams(), SeedTree(6), rhythm="pvc", hr_bpm=70.0, noise=False)
    beats = np.concatenate([src.window(10.0 * k, np.arange(20)).beats for k in (1, 2, 3)])
    checked = 0
    for row in range(20):
        b = beats[beats["row"] == row]
        b = b[np.argsort(b["t_s"])]
        for i in range(1, len(b) - 1):
            if b["label"][i] == "V" and b["label"][i - 1] == "N" and b["label"][i + 1] == "N":
                around = b["t_s"][i + 1] - b["t_s"][i - 1]
                assert around == pytest.approx(2 * 60.0 / 70.0, rel=0.2)  # RSA moves each RR
                checked += 1
    assert checked > 5


def test_injected_episodes_are_ground_truth_and_labelled() -> None:
    src = EcgSource(3, CohortParams(episode_rate=0.0), SeedTree(7), noise=False)
    src.episodes.inject(np.array([0]), "pvc_couplet", 12.0, 4.0)
    src.episodes.inject(np.array([1]), "pac", 13.0, 3.0)
    src.episodes.inject(np.array([2]), "electrode_off", 14.0, 3.0)
    first = src.window(10.0, np.arange(3))
    assert len(first.episodes) == 0
    batch = src.window(20.0, np.arange(3))
    assert batch.episodes["kind"].tolist() == ["pvc_couplet", "pac", "electrode_off"]
    labels = {row: "".join(batch.beats["label"][batch.beats["row"] == row]) for row in range(3)}
    assert "VV" in labels[0] and labels[0].count("V") == 2
    assert labels[1].count("S") == 1 and "V" not in labels[1]
    flat = batch.signal[2, int(4.1 * FS): int(6.9 * FS)]
    assert np.all(flat == 0.0)
    t = batch.beats["t_s"][batch.beats["row"] == 2]
    assert not np.any((t > 14.05) & (t < 16.95))


def test_st_elevation_raises_the_st_segment() -> None:
    levels = {}
    for rhythm in ("sinus", "st_elevation"):
        src = EcgSource(4, CohortParams(), SeedTree(8), rhythm=rhythm, noise=False)
        batch = src.window(10.0, np.arange(4))
        st = [batch.signal[b["row"], b["sample"] + int(0.07 * FS)] for b in batch.beats
              if b["sample"] + int(0.07 * FS) < batch.signal.shape[1]]
        levels[rhythm] = np.median(st)
    assert levels["st_elevation"] - levels["sinus"] > 0.1


def test_same_seed_same_arrays_bit_for_bit() -> None:
    def run(seed: int) -> list[np.ndarray]:
        src = EcgSource(50, CohortParams(episode_rate=50.0), SeedTree(seed))
        out = []
        for k in range(1, 4):
            b = src.window(10.0 * k, np.arange(50))
            out += [b.signal, b.values, b.beats, b.episodes]
        return out

    a, b, c = run(11), run(11), run(12)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert a[0].tobytes() == b[0].tobytes()
    assert not np.array_equal(a[0], c[0])


def test_signal_is_continuous_across_windows() -> None:
    src = EcgSource(30, CohortParams(), SeedTree(9), noise=False)
    x = stream(src, 4)
    d = np.abs(np.diff(x, axis=1))
    seams = d[:, [2499, 4999, 7499]]
    assert seams.max() <= np.percentile(d, 99.9)


def test_subsets_in_any_order_keep_their_own_state() -> None:
    whole = EcgSource(10, CohortParams(episode_rate=0.0), SeedTree(10), noise=False)
    parts = EcgSource(10, CohortParams(episode_rate=0.0), SeedTree(10), noise=False)
    for k in (1, 2):
        w = whole.window(10.0 * k, np.arange(10))
        a = parts.window(10.0 * k, np.array([7, 3]))
        assert a.signal.shape == (2, 2500)
        if k == 1:  # the same rhythm stream is split differently later: compare first only
            assert np.array_equal(a.signal[0, :250], w.signal[7, :250])


def test_activity_changes_the_heart_rate() -> None:
    """The same patients at 03:00 (asleep) have a lower rate than at 18:00 (awake)."""
    night = EcgSource(200, CohortParams(episode_rate=0.0), SeedTree(4), start_hour=3.0)
    day = EcgSource(200, CohortParams(episode_rate=0.0), SeedTree(4), start_hour=18.0)
    for k in range(1, 30):
        hn = night.window(10.0 * k, np.arange(200)).values[:, 0]
        hd = day.window(10.0 * k, np.arange(200)).values[:, 0]
    assert np.nanmean(hn) < np.nanmean(hd) - 5.0


def test_spontaneous_episodes_appear_at_their_rates() -> None:
    src = EcgSource(2000, CohortParams(episode_rate=20.0), SeedTree(12))
    kinds = np.concatenate([src.window(10.0 * k, np.arange(2000)).episodes["kind"]
                            for k in range(1, 13)])
    assert {"pvc_single", "pac"} <= set(kinds.tolist())


@pytest.mark.parametrize("kwargs", [{"fs": 250.0, "window_s": 10.001}, {"rhythm": "torsade"},
                                    {"hr_bpm": 400.0}, {"fs": 50.0}])
def test_bad_parameters_raise_our_error(kwargs: dict) -> None:
    with pytest.raises(PhysiologyError):
        EcgSource(2, CohortParams(), SeedTree(0), **kwargs)
