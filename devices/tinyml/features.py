"""ECG beat detection and model inputs, shared by training and the device runtime.

Everything here works on a whole batch of windows at once, ``(n, samples)`` in mV at
:data:`FS` (other rates are resampled first), with numpy and scipy only:

1. **Filtering.** A 0.5-40 Hz band-pass (2nd-order Butterworth, zero phase) removes baseline
   wander and mains/EMG noise; a 5-15 Hz band-pass feeds the detector. Both are applied as
   |H(f)|^2 (the forward-backward response) on one FFT of each window, which is 4x cheaper
   than two ``sosfiltfilt`` passes and, with odd-reflection padding, finds the same beats
   (99.7 % of them at the same sample on synthetic sinus, PVC and AF windows).
2. **QRS detection** in the spirit of Pan & Tompkins (IEEE TBME 1985): derivative, squaring,
   150-ms moving integration at half the rate; a sample is a candidate if it is the maximum
   of the integrated signal within +-180 ms; candidates above 25 % of the row's median
   candidate height (and above 5 % of its 99th percentile) are beats; the R sample is the
   largest absolute excursion of the 5-15 Hz signal within +-75 ms. All rows at once (no
   per-row loop), in chunks of rows that fit the cache.
3. **Beat inputs.** Each beat becomes an 80-sample segment at 125 Hz (-256 ms .. +384 ms
   around R, pairs of 250-Hz samples averaged) scaled by the window's median beat amplitude,
   and 8 rhythm features: previous and next RR (s), the window's median RR (s), the two RR
   ratios to it, and three window irregularity measures (normalised RMSSD, coefficient of
   variation, share of successive RR differences over 50 ms) that carry atrial fibrillation
   (Tateno & Glass, Med Biol Eng Comput 2001; Dash et al., Ann Biomed Eng 2009).
4. **Relative to the patient's own beat** (:mod:`devices.tinyml.templates`): the model sees
   each beat minus its window's template and scale-free comparisons with it, plus the
   template's P wave (ADR 0015).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import numpy as np
import numpy.typing as npt
from scipy import fft as sfft
from scipy import ndimage
from scipy import signal as sps

from devices.tinyml.errors import InputError
from devices.tinyml.rhythm import N_RHYTHM, RHYTHM_NAMES, rhythm, row_median
from devices.tinyml.templates import (
    ATRIAL_NAMES,
    MORPH_NAMES,
    REFERENCE_BEATS,
    REFERENCE_NAMES,
    against_reference,
    atrial,
    carry,
    conducted,
    morphology,
    reference_for,
    window_templates,
)

FS = 250.0
"""The models' ECG rate (Hz): the patches' default rate."""
SEG_BEFORE, SEG_AFTER = 64, 96
"""Segment extent around R in 250-Hz samples (-256 ms .. +384 ms)."""
SEG_LEN = (SEG_BEFORE + SEG_AFTER) // 2
"""Segment samples after halving the rate (80 at 125 Hz)."""
N_AF_INPUTS = N_RHYTHM + len(ATRIAL_NAMES)
"""The leading context features an AF decision may use: rhythm, then atrial activity."""
N_CONTEXT = N_AF_INPUTS + len(MORPH_NAMES) + len(REFERENCE_NAMES)
"""Context features per beat: the rhythm features, the atrial features, the morphology
features, then the features against the patient's reference beat."""
DELTA_LEN = SEG_LEN
"""Samples of the beat-minus-template input (the segment's, at 125 Hz)."""
EDGE_S = 0.1
"""A beat whose R is closer than this (s) to its window's edge is cut by it: half a QRS and a
filter edge look ventricular to any classifier (0.3 % of synthetic sinus windows were flagged
for such beats alone)."""
_REFRACTORY = 0.18  # s each side: no two beats closer than this (physiological limit ~200 ms)
_SEARCH = 0.075  # s each side of the integrated peak to place R
_T_WINDOW = 0.36  # s: a beat this soon after another may be its T wave (Pan & Tompkins)
_T_SLOPE = 0.5  # ...if its steepest slope is under this share of that beat's
REL = 0.25
_MIN_ENERGY = 1e-6  # (mV/sample)^2: below this a window is flat (electrode off), no beats
_DECIM = 2  # detector rate divisor (250 -> 125 Hz)
_EDGE = 190  # odd-reflection padding a side (0.76 s): 2,500 + 380 is a fast FFT size
_CHUNK = 256  # windows per pass: each intermediate array (2.5 MB) stays in cache
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class BeatBatch:
    """Detected beats of a batch of windows and the model inputs built from them.

    Attributes:
        row: each beat's window (row of the batch), ``(m,)``, sorted by row then sample.
        sample: each beat's R sample within its window at :data:`FS`, ``(m,)``.
        segment: ``(m, SEG_LEN)`` normalised beat shapes (float32).
        rhythm: ``(m, N_RHYTHM)`` rhythm features (float32).
        n_rows: windows in the batch (rows may have no beats).
        delta: ``(m, DELTA_LEN)`` each beat minus its window's template: the model's
            ``delta`` input.
        context: ``(m, N_CONTEXT)`` rhythm, atrial and morphology features: the model's
            ``context`` input.
        whole: ``(m,)`` whether the beat's QRS lies inside its window (R at least
            :data:`EDGE_S` from either end): a beat the window cuts is counted and timed but
            not classified.
        carried: ``(n_rows, REFERENCE_BEATS, SEG_LEN)`` the device's last conducted window
            templates as of the end of each window, oldest first (NaN: none yet), what the
            device keeps for its next window (:func:`devices.tinyml.templates.carry`).
    """

    row: IntArray
    sample: IntArray
    segment: FloatArray
    rhythm: FloatArray
    n_rows: int
    delta: FloatArray
    context: FloatArray
    whole: npt.NDArray[np.bool_]
    carried: FloatArray

    def __len__(self) -> int:
        return len(self.row)


@cache
def _gains(fs: float, n: int) -> tuple[FloatArray, FloatArray]:
    """Zero-phase gains |H(f)|^2 of the clean (0.5-40 Hz) and detector (5-15 Hz) band-passes
    (2nd-order Butterworth) at the ``rfft`` frequencies of an ``n``-sample window."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    out = []
    for band in ([0.5, 40.0], [5.0, 15.0]):
        sos = sps.butter(2, band, btype="bandpass", fs=fs, output="sos")
        _, h = sps.sosfreqz(sos, worN=freqs, fs=fs)
        out.append(np.square(np.abs(h)).astype(np.float32))
    return out[0], out[1]


def to_model_rate(signal: npt.ArrayLike, fs: float) -> FloatArray:
    """The batch as float32 ``(n, samples)`` at :data:`FS` (polyphase resampling if needed).

    Raises:
        InputError: for a non-2-D batch, a rate below 100 Hz, or windows shorter than 2 s.
    """
    x = np.asarray(signal, dtype=np.float32)
    if x.ndim != 2:
        raise InputError(f"ECG batch must be 2-D (windows, samples), got shape {x.shape}")
    if not fs >= 100.0:
        raise InputError(f"ECG rate must be at least 100 Hz, got {fs}")
    if fs != FS:
        ratio = Fraction(FS / fs).limit_denominator(1000)
        x = sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=1).astype(np.float32)
    if x.shape[1] < 2 * FS:
        raise InputError(f"ECG windows must be at least 2 s, got {x.shape[1] / FS:.2f} s")
    if np.isfinite(x.sum(dtype=np.float64)):  # one pass: no NaN or infinity anywhere
        return x
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def band_pass(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The clean (0.5-40 Hz) and detector (5-15 Hz) zero-phase band-passes of a batch.

    One real FFT per window and two inverse FFTs for the whole batch (about 20 us a 10-s
    window, against 2 x 40 us for two ``sosfiltfilt`` calls): a forward-backward filter's
    response is |H(f)|^2, applied in the frequency domain. Each window is first extended by
    its odd reflection about its end samples (0.76 s a side; ``filtfilt`` pads the same way)
    so that the FFT's periodic wrap-around adds no step at the edges.
    """
    n, pad = x.shape[1], min(_EDGE, x.shape[1] - 1)
    ext = np.empty((x.shape[0], n + 2 * pad), np.float32)
    ext[:, pad:pad + n] = x
    np.subtract(2 * x[:, :1], x[:, pad:0:-1], out=ext[:, :pad])
    np.subtract(2 * x[:, -1:], x[:, -2:-pad - 2:-1], out=ext[:, pad + n:])
    spec = sfft.rfft(ext, axis=1)
    g_clean, g_band = _gains(FS, ext.shape[1])
    return (sfft.irfft(spec * g_clean, ext.shape[1], axis=1)[:, pad:pad + n],
            sfft.irfft(spec * g_band, ext.shape[1], axis=1)[:, pad:pad + n])


def detect_beats(x: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
    """R peaks of every window of a batch at :data:`FS`.

    Candidates are picked on the integrated energy at a quarter of the rate (62.5 Hz: sums of
    four samples), which is smooth over 150 ms anyway; each is then placed on the largest
    |5-15 Hz| excursion within +-75 ms at the full rate.

    Args:
        x: ``(n, samples)`` ECG in mV at :data:`FS`.

    Returns:
        ``(row, sample, clean)``: the beats' rows and R samples (sorted), and the 0.5-40 Hz
        filtered batch the segments are cut from.
    """
    clean, band = band_pass(x)
    q = band.shape[1] // _DECIM
    energy = np.square(np.diff(band[:, :q * _DECIM], axis=1, prepend=band[:, :1]))
    coarse = energy[:, 0::_DECIM].copy()  # strided sums: faster than reshape(...).mean()
    for k in range(1, _DECIM):
        coarse += energy[:, k::_DECIM]
    coarse *= 1.0 / _DECIM
    integ = ndimage.uniform_filter1d(coarse, size=round(0.15 * FS / _DECIM), axis=1)
    integ += np.linspace(0.0, 1e-9, q, dtype=np.float32)  # break plateau ties
    # The floor is a guard against noise-only windows: the 99th percentile of every 4th
    # sample (integ is smooth over 150 ms = 19 samples) is as good and 5x cheaper.
    floor = np.maximum(0.05 * _percentile_99(integ[:, ::4]), _MIN_ENERGY)
    cand_row, cand_at = _window_maxima(integ, floor, round(_REFRACTORY * FS / _DECIM))
    height = integ[cand_row, cand_at]
    ref = row_median(height, cand_row, len(x), default=np.inf)
    keep = height > REL * ref[cand_row]
    row, at = cand_row[keep], cand_at[keep]
    row, sample = _dedupe(row, _refine(band, row, at * _DECIM + _DECIM // 2))
    keep = ~_t_waves(band, row, sample)
    return row[keep], sample[keep], clean


def _percentile_99(x: FloatArray) -> FloatArray:
    """Each row's 99th percentile (numpy's "linear" method) from a sort: numpy's SIMD sort
    beats its partition, which ``np.percentile`` uses, on rows this short."""
    s = np.sort(x, axis=1)
    pos = 0.99 * (x.shape[1] - 1)
    lo = int(pos)
    hi = min(lo + 1, x.shape[1] - 1)
    out: FloatArray = (s[:, lo] + (pos - lo) * (s[:, hi] - s[:, lo]))[:, None]
    return out


def _window_maxima(integ: FloatArray, floor: FloatArray, half: int
                   ) -> tuple[IntArray, IntArray]:
    """Samples above ``floor`` that are the maximum of ``integ`` within +-``half`` samples
    (what ``maximum_filter1d`` marks, without filtering every sample): such a sample is a
    local maximum, so only the few local maxima above the floor are checked."""
    local = integ > floor
    local[:, 1:] &= integ[:, 1:] >= integ[:, :-1]
    local[:, :-1] &= integ[:, :-1] >= integ[:, 1:]
    row, at = np.nonzero(local)
    width = integ.shape[1]
    pos = np.clip(at[:, None] + np.arange(-half, half + 1), 0, width - 1) + (row * width)[:, None]
    keep = integ[row, at] >= np.take(integ.reshape(-1), pos).max(axis=1, initial=-np.inf)
    return row[keep].astype(np.int64), at[keep].astype(np.int64)


def _around(band: FloatArray, row: IntArray, at: IntArray) -> tuple[IntArray, FloatArray]:
    """The samples within +-75 ms of each beat (clipped to its window) and their values."""
    half = round(_SEARCH * FS)
    width = band.shape[1]
    pos = np.clip(at[:, None] + np.arange(-half, half + 1), 0, width - 1)
    vals: FloatArray = np.take(band.reshape(-1), pos + (row * width)[:, None])
    return pos, vals


def _refine(band: FloatArray, row: IntArray, at: IntArray) -> IntArray:
    """Move each candidate to the largest |5-15 Hz| excursion within +-75 ms."""
    pos, vals = _around(band, row, at)
    best = np.argmax(np.abs(vals), axis=1)
    return np.asarray(pos[np.arange(len(at)), best], dtype=np.int64)


def _t_waves(band: FloatArray, row: IntArray, sample: IntArray) -> npt.NDArray[np.bool_]:
    """Beats that are the previous beat's T wave (Pan & Tompkins' rule): closer than 360 ms
    to it and with a steepest 5-15 Hz slope under :data:`_T_SLOPE` of its slope.

    A tall T wave clears the height threshold in some leads (record 114's V5 lead: 20 % of
    its detections were T waves, each then an odd "premature beat" to the classifier).
    One vectorised pass compares each beat with the one before it as detected.
    """
    _, vals = _around(band, row, sample)
    slope = np.abs(np.diff(vals, axis=1)).max(axis=1, initial=0.0)
    out = np.zeros(len(row), bool)
    out[1:] = ((row[1:] == row[:-1]) & (np.diff(sample) < round(_T_WINDOW * FS))
               & (slope[1:] < _T_SLOPE * slope[:-1]))
    return out


def _dedupe(row: IntArray, sample: IntArray) -> tuple[IntArray, IntArray]:
    """Sort beats and drop any closer than 200 ms to the one before it (same row)."""
    order = np.lexsort((sample, row))
    row, sample = row[order], sample[order]
    close = np.zeros(len(row), bool)
    close[1:] = (row[1:] == row[:-1]) & (np.diff(sample) < round(0.2 * FS))
    return row[~close], sample[~close]


def segments(clean: FloatArray, row: IntArray, sample: IntArray) -> FloatArray:
    """Beat segments at 125 Hz, each window scaled by its median beat amplitude.

    Args:
        clean: the filtered batch from :func:`detect_beats`.
        row, sample: the beats.

    Returns:
        ``(m, SEG_LEN)`` float32.
    """
    # Pairs of 250-Hz samples at both phases, from the edge-padded window: a segment is 80
    # consecutive pairs of the phase its first sample falls on (one gather, no reshape-mean).
    padded = np.pad(clean, ((0, 0), (SEG_BEFORE, SEG_AFTER)), mode="edge")
    half = (padded.shape[1] - 1) // 2
    pairs = np.empty((clean.shape[0], 2, half), np.float32)
    np.add(padded[:, 0:2 * half:2], padded[:, 1:2 * half:2], out=pairs[:, 0])
    np.add(padded[:, 1:2 * half:2], padded[:, 2:2 * half + 1:2], out=pairs[:, 1])
    pairs *= 0.5
    start = (row * 2 + (sample & 1)) * half + (sample >> 1)  # padded start = sample
    seg = np.take(pairs.reshape(-1), start[:, None] + np.arange(SEG_LEN))
    ordered = np.sort(seg, axis=1)  # the median from a SIMD sort, 7x faster than np.median
    seg -= 0.5 * (ordered[:, SEG_LEN // 2 - 1] + ordered[:, SEG_LEN // 2])[:, None]
    amp = np.ptp(seg, axis=1)
    scale = row_median(amp, row, clean.shape[0], default=1.0)
    out: FloatArray = (seg / np.maximum(scale[row], 0.05)[:, None]).astype(np.float32)
    return out


def extract(signal: npt.ArrayLike, fs: float, device: npt.ArrayLike | None = None,
            previous: npt.ArrayLike | None = None) -> BeatBatch:
    """Detect the beats of a batch of ECG windows and build the model's inputs.

    Args:
        signal: ``(n, samples)`` ECG in mV.
        fs: its rate (Hz); resampled to :data:`FS` if different.
        device: ``(n,)`` each window's device (0 .. n_devices - 1), the windows of one device
            in time order: a fleet batch is one window per device (the default), a record
            replayed for evaluation is one device's windows (all zeros).
        previous: ``(n_devices, REFERENCE_BEATS, SEG_LEN)`` each device's last conducted
            templates before these windows, as the previous batch's
            :attr:`BeatBatch.carried` left them (NaN, the default: none yet).

    Returns:
        The beats and their inputs.

    Raises:
        InputError: for a batch the model cannot take (see :func:`to_model_rate`), or device
            indices or a ``previous`` that do not fit it.
    """
    x = to_model_rate(signal, fs)
    dev, prev = _devices(len(x), device, previous)
    starts = range(0, max(len(x), 1), _CHUNK)  # one (empty) chunk for an empty batch
    parts = [_extract_rows(x[i:i + _CHUNK]) for i in starts]
    rows = [p.row + off for p, off in zip(parts, starts, strict=True)]
    template = np.concatenate([p.template for p in parts])
    is_conducted = np.concatenate([p.conducted for p in parts])
    carried = carry(template, is_conducted, dev, prev)
    reference = reference_for(template, is_conducted, carried)
    context = np.concatenate(  # chunk by chunk: no (beats, SEG_LEN) copies of the batch
        [np.concatenate([p.context, against_reference(p.segment, template[r], reference[r])],
                        axis=1) for p, r in zip(parts, rows, strict=True)])
    return BeatBatch(np.concatenate(rows), np.concatenate([p.sample for p in parts]),
                     np.concatenate([p.segment for p in parts]),
                     np.concatenate([p.rhythm for p in parts]), x.shape[0],
                     np.concatenate([p.delta for p in parts]), context,
                     np.concatenate([p.whole for p in parts]), carried)


def _devices(n: int, device: npt.ArrayLike | None, previous: npt.ArrayLike | None
             ) -> tuple[IntArray, FloatArray]:
    """The checked ``device`` and ``previous`` of :func:`extract` (defaults filled in)."""
    dev = np.arange(n) if device is None else np.asarray(device)
    if dev.shape != (n,) or (n and (dev.dtype.kind not in "iu" or dev.min() < 0)):
        raise InputError(f"device must be {n} non-negative integers (one per window), "
                         f"got shape {dev.shape} of {dev.dtype}")
    n_dev = int(dev.max()) + 1 if n else 0
    if previous is None:
        return dev.astype(np.int64), np.full((n_dev, REFERENCE_BEATS, SEG_LEN), np.nan,
                                             np.float32)
    prev = np.asarray(previous, np.float32)
    if prev.shape[1:] != (REFERENCE_BEATS, SEG_LEN) or len(prev) < n_dev:
        raise InputError(f"previous must be (devices >= {n_dev}, {REFERENCE_BEATS}, {SEG_LEN})"
                         f" templates, got shape {prev.shape}")
    return dev.astype(np.int64), prev


@dataclass(frozen=True, eq=False)
class _Rows:
    """:func:`extract`'s work on one chunk of rows: everything but the inputs that compare
    beats with the device's reference, plus each row's template and whether it is conducted."""

    row: IntArray
    sample: IntArray
    segment: FloatArray
    rhythm: FloatArray
    delta: FloatArray
    context: FloatArray
    whole: npt.NDArray[np.bool_]
    template: FloatArray
    conducted: npt.NDArray[np.bool_]


def _extract_rows(x: FloatArray) -> _Rows:
    """The per-window part of :func:`extract` for one chunk of rows already at :data:`FS`."""
    row, sample, clean = detect_beats(x)
    seg = segments(clean, row, sample)
    rhy = rhythm(row, sample, x.shape[0], FS)
    rows = window_templates(seg, rhy[:, RHYTHM_NAMES.index("pre_ratio")], row, x.shape[0])
    tpl = rows[row]
    resid = seg - tpl
    context = np.concatenate([rhy, atrial(rows)[row], morphology(seg, tpl, resid)], axis=1)
    edge = round(EDGE_S * FS)
    whole = (sample >= edge) & (sample < x.shape[1] - edge)
    local_rr, rr_cv = np.zeros(x.shape[0]), np.zeros(x.shape[0])
    local_rr[row] = rhy[:, RHYTHM_NAMES.index("local_rr_s")]
    rr_cv[row] = rhy[:, RHYTHM_NAMES.index("rr_cv")]
    return _Rows(row, sample, seg, rhy, resid, context, whole, rows,
                 conducted(rows, local_rr, rr_cv))
