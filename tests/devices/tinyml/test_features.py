"""The batch feature pipeline: FFT filters against scipy's forward-backward filter, window
templates against numpy's median, the T-wave rule, the template-relative features, and the
reference beat a device carries from window to window."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from devices.physiology import CohortParams, EcgSource
from devices.tinyml.errors import InputError
from devices.tinyml.features import (
    FS,
    _t_waves,
    band_pass,
    extract,
    to_model_rate,
)
from devices.tinyml.rhythm import RHYTHM_NAMES
from devices.tinyml.templates import (
    MORPH_NAMES,
    P_PRESENT,
    REFERENCE_BEATS,
    atrial,
    carry,
    conducted,
    morphology,
    reference_beat,
    reference_for,
    window_templates,
)
from twin.core.seeds import SeedTree


def _pvc_windows(n: int = 8) -> np.ndarray:
    return EcgSource(n, CohortParams(), SeedTree(3), rhythm="pvc").window(
        10.0, np.arange(n)).signal


def test_fft_band_pass_equals_sosfiltfilt_away_from_the_edges() -> None:
    x = _pvc_windows()
    clean, band = band_pass(to_model_rate(x, FS))
    for band_hz, got, tol in (([0.5, 40.0], clean, 5e-3), ([5.0, 15.0], band, 1e-5)):
        sos = sps.butter(2, band_hz, btype="bandpass", fs=FS, output="sos")
        ref = sps.sosfiltfilt(sos, x.astype(np.float64), axis=1)
        inner = slice(int(2 * FS), -int(2 * FS))
        err = np.abs(got[:, inner] - ref[:, inner]).max() / np.abs(ref).max()
        assert err < tol, (band_hz, err)


def test_chunked_extraction_equals_one_pass() -> None:
    x = _pvc_windows(300)  # more rows than one chunk
    whole = extract(x, FS)
    parts = [extract(x[:150], FS), extract(x[150:], FS)]
    assert np.array_equal(whole.row, np.concatenate([parts[0].row, parts[1].row + 150]))
    assert np.array_equal(whole.sample, np.concatenate([p.sample for p in parts]))
    assert np.allclose(whole.segment, np.concatenate([p.segment for p in parts]))
    assert np.allclose(whole.delta, np.concatenate([p.delta for p in parts]))
    assert np.allclose(whole.context, np.concatenate([p.context for p in parts]))


def test_templates_are_the_median_of_the_on_time_beats_or_of_all() -> None:
    rng = np.random.default_rng(1)
    seg = rng.normal(size=(900, 80)).astype(np.float32)
    row = np.sort(rng.integers(0, 70, 900))  # some windows empty, some with one beat
    rhythm = np.abs(rng.normal(1.0, 0.2, (900, len(RHYTHM_NAMES)))).astype(np.float32)
    out = window_templates(seg, rhythm[:, RHYTHM_NAMES.index("pre_ratio")], row, 70)
    on_time = rhythm[:, RHYTHM_NAMES.index("pre_ratio")] >= 0.9
    for r in range(70):
        ours, every = seg[(row == r) & on_time], seg[row == r]
        want = (np.median(ours[:9], axis=0) if len(ours) >= 2 else
                np.median(every[:9], axis=0) if len(every) else np.zeros(80))
        assert np.allclose(out[r], want), r


def test_premature_beats_do_not_make_the_template_in_bigeminy() -> None:
    beats = _pvc_windows(1)  # a window to take a real normal beat from
    normal = extract(beats, FS).segment[:1]
    wide = np.roll(normal, 3, axis=1) * -1.5  # anything unlike the normal beat
    seg = np.concatenate([normal, wide] * 5).astype(np.float32)
    rhythm = np.ones((10, len(RHYTHM_NAMES)), np.float32)
    rhythm[1::2, RHYTHM_NAMES.index("pre_ratio")] = 0.6  # every other beat early
    tpl = window_templates(seg, rhythm[:, RHYTHM_NAMES.index("pre_ratio")],
                           np.zeros(10, np.int64), 1)
    assert np.allclose(tpl[0], normal[0])


def test_a_beat_like_its_template_has_neutral_morphology() -> None:
    seg = _pvc_windows(2)
    b = extract(seg, FS).segment
    m = morphology(b, b, b - b)
    names = list(MORPH_NAMES)
    assert np.allclose(m[:, names.index("corr")], 1.0, atol=1e-4)
    assert np.allclose(m[:, names.index("residual_rms")], 0.0)
    assert np.allclose(m[:, names.index("qrs_corr")], 1.0, atol=1e-4)
    for ratio in ("qrs_energy_ratio", "qrs_width_ratio", "qrs_slope_ratio"):
        assert np.allclose(m[:, names.index(ratio)], 1.0, atol=1e-2), ratio
    flipped = morphology(b, -b, 2 * b)
    assert np.all(flipped[:, names.index("corr")] < -0.99)


def test_a_shallow_bump_soon_after_a_beat_is_its_t_wave() -> None:
    t = np.arange(2500)
    band = np.zeros((1, 2500), np.float32)
    for at, width, height in ((500, 5, 1.0), (570, 20, 0.6), (1000, 5, 1.0), (1060, 5, 0.9)):
        band[0] += height * np.exp(-0.5 * ((t - at) / width) ** 2)
    row = np.zeros(4, np.int64)
    sample = np.array([500, 570, 1000, 1060])
    # 280 ms after a beat, with a fifth of its slope: T wave; 240 ms after one, as steep: kept
    assert _t_waves(band, row, sample).tolist() == [False, True, False, False]


def _carry_by_scan(template: np.ndarray, is_conducted: np.ndarray, device: np.ndarray,
                   previous: np.ndarray) -> np.ndarray:
    """The per-device loop :func:`carry` vectorises: a queue of the last K conducted."""
    state = {d: list(previous[d]) for d in range(len(previous))}
    out = np.empty((len(template), *previous.shape[1:]), np.float32)
    for r, d in enumerate(device):
        if is_conducted[r]:
            state[d] = [*state[d][1:], template[r]]
        out[r] = np.stack(state[d])
    return out


def test_carry_keeps_each_devices_last_conducted_templates() -> None:
    rng = np.random.default_rng(4)
    n, n_dev = 400, 7
    template = rng.normal(size=(n, 80)).astype(np.float32)
    is_conducted = rng.random(n) < 0.3
    device = rng.integers(0, n_dev, n)
    previous = rng.normal(size=(n_dev, REFERENCE_BEATS, 80)).astype(np.float32)
    previous[2] = np.nan  # a device that has seen none yet
    previous[3, :2] = np.nan  # one that has seen three
    got = carry(template, is_conducted, device, previous)
    assert np.array_equal(got, _carry_by_scan(template, is_conducted, device, previous),
                          equal_nan=True)
    assert np.isnan(got).any() and np.isfinite(got[device == 2]).any()
    none = np.zeros(n, bool)
    assert np.array_equal(carry(template, none, device, previous), previous[device],
                          equal_nan=True)


def test_the_reference_beat_is_the_median_of_the_templates_kept() -> None:
    rng = np.random.default_rng(6)
    history = rng.normal(size=(5, REFERENCE_BEATS, 80)).astype(np.float32)
    for r, empty in enumerate(range(REFERENCE_BEATS)):
        history[r, :empty] = np.nan
    history[4] = np.nan
    got = reference_beat(history)
    for r in range(4):
        assert np.allclose(got[r], np.median(history[r, r:], axis=0)), r
    assert np.isnan(got[4]).all()


def test_a_window_is_read_against_its_own_conducted_template_else_the_kept_ones() -> None:
    template = np.stack([np.full(80, float(v), np.float32) for v in (1, 2, 3)])
    carried = np.full((3, REFERENCE_BEATS, 80), np.nan, np.float32)
    carried[:2, -2:] = 7.0  # rows 0 and 1 have kept two; row 2 none
    got = reference_for(template, np.array([True, False, False]), carried)
    assert got[:, 0].tolist() == [1.0, 7.0, 3.0]


def test_conducted_needs_a_p_wave_a_rate_under_120_and_a_regular_rhythm() -> None:
    beat = np.zeros(80, np.float32)
    beat[30:35] = [0.2, 1.0, -0.5, 0.1, 0.0]  # a QRS of range 1.5 at R = 32
    with_p = beat.copy()
    with_p[10:16] = 0.2  # a P wave 0.2 high: 13 % of the QRS range
    tpl = np.stack([beat, with_p, with_p, with_p, np.zeros(80, np.float32)])
    rr, cv = np.array([0.8, 0.8, 0.45, 0.8, 0.8]), np.array([0.05, 0.05, 0.05, 0.2, 0.05])
    assert conducted(tpl, rr, cv).tolist() == [False, True, False, False, False]


def test_the_p_wave_input_says_whether_there_is_one_not_how_tall() -> None:
    beat = np.zeros(80, np.float32)
    beat[30:35] = [0.2, 1.0, -0.5, 0.1, 0.0]  # a QRS of range 1.5
    rows = []
    for p_height in (0.0, 0.3, 1.2):  # none, 20 % and 80 % of the QRS range
        row = beat.copy()
        row[10:16] = p_height
        rows.append(row)
    got = atrial(np.stack(rows))[:, 0]
    assert got[0] == 0.0
    assert got[1] == pytest.approx(0.2)
    assert got[2] == pytest.approx(P_PRESENT)


def test_windows_streamed_one_by_one_equal_the_record_scored_in_one_batch() -> None:
    """What a patch computes window by window, carrying its reference, is what the evaluation
    computes over a whole record in one batch (device = 0 for every row)."""
    src = EcgSource(1, CohortParams(), SeedTree(5), rhythm="pvc")
    x = np.concatenate([src.window(10.0 * (k + 1), np.arange(1)).signal for k in range(6)])
    whole = extract(x, FS, device=np.zeros(6, np.int64))
    state: np.ndarray | None = None
    for k in range(6):
        one = extract(x[k:k + 1], FS, previous=state)
        at = whole.row == k
        assert np.allclose(one.context, whole.context[at]), k
        assert np.array_equal(one.carried, whole.carried[k:k + 1], equal_nan=True)
        state = one.carried
    assert state is not None and np.isfinite(state[0, -1]).all()  # conducted templates kept


@pytest.mark.parametrize(("device", "previous"), [
    (np.array([0, 1]), None),  # one short
    (np.array([0, -1, 0]), None),
    (np.array([0.0, 1.0, 2.0]), None),
    (None, np.zeros((2, REFERENCE_BEATS, 80))),  # three devices by default
    (np.zeros(3, np.int64), np.zeros((1, REFERENCE_BEATS, 79))),
    (np.zeros(3, np.int64), np.zeros((1, 80))),
])
def test_devices_that_do_not_fit_the_batch_raise_input_error(
        device: np.ndarray | None, previous: np.ndarray | None) -> None:
    with pytest.raises(InputError, match=r"device|previous"):
        extract(_pvc_windows(3), FS, device, previous)
