"""The cloud's second opinion on a flagged ECG strip: an independent, rule-based analyser.

A device sends the 10-s strip of a window its int8 model flagged. The cloud has floating
point, the whole strip and no energy budget, and it should not simply rerun the device's
model (a second look by the same network repeats its mistakes). It runs a classic,
explainable analysis instead, with textbook criteria rather than learnt weights:

1. **Beats.** Zero-phase 5-15 Hz band-pass, squared slope integrated over 150 ms (Pan &
   Tompkins, IEEE TBME 1985), peaks at least 200 ms apart. Peaks above 30 % of the strip's
   98th percentile are beats; weaker ones (down to 10 %: wide ventricular beats have little
   5-15 Hz energy) only if their 0.5-40 Hz peak-to-peak within +-100 ms is at least 70 % of
   the strong beats' (which leaves out T and f waves). R is the largest |5-15 Hz| excursion
   within +-75 ms.
2. **Ventricular beats.** Each beat (0.5-40 Hz, -200..+400 ms) is compared with the strip's
   dominant beat, the median of the beats that are not premature. A beat is ventricular when
   its shape differs (Pearson correlation below 0.75) and it is either premature (RR before
   under 85 % of the median RR) or wide (QRS over 1.3 times the dominant beat's and over
   110 ms). A PVC is premature, wide and bizarre (AHA/ACCF/HRS 2009 ECG standards, part III).
   A wide-complex tachycardia (dominant QRS over 110 ms at over 100 bpm) counts as
   ventricular throughout: VT until proven otherwise.
3. **Atrial fibrillation.** With at least 6 RR intervals not touching a ventricular beat, AF
   when they are irregularly irregular: coefficient of variation and normalised RMSSD both
   above 0.10 (sinus rhythm at rest gives 0.03-0.07; Tateno & Glass 2001; Dash et al. 2009).

The thresholds were set from those sources and checked on the twin's synthetic rhythms and the
MIT-BIH *training* patients only (never on the ECG model's validation patients).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy import signal as sps

from cloud.errors import StripError

FloatArray = npt.NDArray[np.float64]
_MIN_BEATS_AF = 7  # beats for 6 RR intervals
_CORR_V = 0.75
_PREMATURE = 0.85
_WIDE_RATIO, _WIDE_S = 1.3, 0.110
_AF_CV, _AF_NRMSSD = 0.10, 0.10


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What the cloud's analysis of one strip found.

    Attributes:
        findings: ``"pvc"`` (at least one ventricular beat) and/or ``"af"``; empty when the
            strip looks like a normal rhythm.
        beats: beats found.
        v_beats: of which ventricular.
        rr_cv: coefficient of variation of the RR intervals used for the AF test (0 if too
            few).
    """

    findings: tuple[str, ...]
    beats: int
    v_beats: int
    rr_cv: float

    @property
    def confirmed(self) -> bool:
        """Whether the cloud sees an abnormality the device's flag is about."""
        return bool(self.findings)


@dataclass(frozen=True, slots=True)
class _ZeroPhase:
    """One band-pass run forwards and backwards, as ``scipy.signal.sosfiltfilt`` runs it (odd
    extension of its default length, initial conditions scaled to the edge sample), with the
    initial-condition vector solved once per rate instead of on every call: that solve was
    40 % of the strip's filtering (0.15 of 0.34 ms per filter)."""

    sos: FloatArray
    zi: FloatArray
    pad: int

    @classmethod
    def band(cls, low: float, high: float, fs: float) -> _ZeroPhase:
        sos = sps.butter(2, [low, high], btype="bandpass", fs=fs, output="sos")
        zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
        return cls(sos, sps.sosfilt_zi(sos), 3 * (2 * len(sos) + 1 - zeros))

    def __call__(self, x: FloatArray) -> FloatArray:
        n = min(self.pad, len(x) - 1)
        ext = np.concatenate([2 * x[0] - x[n:0:-1], x, 2 * x[-1] - x[-2:-n - 2:-1]])
        y, _ = sps.sosfilt(self.sos, ext, zi=self.zi * ext[0])
        y, _ = sps.sosfilt(self.sos, y[::-1], zi=self.zi * y[-1])
        out: FloatArray = y[::-1][n:len(y) - n]
        return out


@cache
def _filters(fs: float) -> tuple[_ZeroPhase, _ZeroPhase]:
    return _ZeroPhase.band(0.5, 40.0, fs), _ZeroPhase.band(5.0, 15.0, fs)


def analyse(mv: npt.ArrayLike, fs: float) -> Confirmation:
    """Analyse one ECG strip.

    Args:
        mv: the strip in millivolts, 1-D.
        fs: its sampling rate (Hz), at least 100.

    Returns:
        The findings.

    Raises:
        StripError: the strip is not 1-D and finite, shorter than 4 s, or below 100 Hz.
    """
    x = np.asarray(mv, np.float64)
    if x.ndim != 1 or not fs >= 100.0 or len(x) < 4 * fs or not np.isfinite(x).all():
        raise StripError(f"cannot analyse a strip of shape {x.shape} at {fs} Hz")
    clean_filter, band_filter = _filters(float(fs))
    clean, band = clean_filter(x), band_filter(x)
    r = _beats(band, clean, fs)
    if len(r) < 3:
        return Confirmation((), len(r), 0, 0.0)
    rr = np.diff(r) / fs
    v = _ventricular(clean, r, rr, fs)
    cv, af = _irregular(rr, v)
    findings = tuple(name for name, on in (("pvc", v.any()), ("af", af)) if on)
    return Confirmation(findings, len(r), int(v.sum()), cv)


def _beats(band: FloatArray, clean: FloatArray, fs: float) -> npt.NDArray[np.int64]:
    """R samples (see step 1 of the module docstring)."""
    energy = ndimage.uniform_filter1d(np.square(np.diff(band, prepend=band[0])),
                                      size=max(1, round(0.15 * fs)))
    top = np.percentile(energy, 98)
    if not top > 1e-8:
        return np.zeros(0, np.int64)
    peaks, _ = sps.find_peaks(energy, height=0.1 * top, distance=max(1, round(0.2 * fs)))
    strong = energy[peaks] >= 0.3 * top
    near = np.clip(peaks[:, None] + np.arange(-round(0.1 * fs), round(0.1 * fs) + 1), 0,
                   len(clean) - 1)
    ptp = np.ptp(clean[near], axis=1)
    if strong.any():
        peaks = peaks[strong | (ptp >= 0.7 * np.median(ptp[strong]))]
    half = round(0.075 * fs)
    pos = np.clip(peaks[:, None] + np.arange(-half, half + 1), 0, len(band) - 1)
    return np.asarray(pos[np.arange(len(peaks)), np.argmax(np.abs(band[pos]), axis=1)],
                      np.int64)


def _ventricular(clean: FloatArray, r: npt.NDArray[np.int64], rr: FloatArray,
                 fs: float) -> npt.NDArray[np.bool_]:
    """Which beats are ventricular (step 2 of the module docstring)."""
    pre = np.concatenate([[np.nan], rr])  # RR ending at each beat (the first has none)
    med = float(np.median(rr))
    premature = pre < _PREMATURE * med
    seg = clean[np.clip(r[:, None] + np.arange(-round(0.2 * fs), round(0.4 * fs)), 0,
                        len(clean) - 1)]
    seg = seg - np.median(seg, axis=1, keepdims=True)
    dominant = seg[~premature] if (~premature).sum() >= 3 else seg
    template = np.median(dominant, axis=0)
    corr = _pearson(seg, template)
    width = _qrs_width(seg, round(0.2 * fs), fs)
    dominant_width = float(_qrs_width(template[None, :], round(0.2 * fs), fs)[0])
    if dominant_width > _WIDE_S and med < 0.6:  # wide-complex tachycardia
        return np.ones(len(r), bool)
    wide = (width > _WIDE_RATIO * dominant_width) & (width > _WIDE_S)
    out: npt.NDArray[np.bool_] = (corr < _CORR_V) & (premature | wide)
    return out


def _pearson(beats: FloatArray, template: FloatArray) -> FloatArray:
    """Pearson correlation of each row of ``beats`` with ``template`` (1 for a flat row)."""
    a = beats - beats.mean(axis=1, keepdims=True)
    b = template - template.mean()
    norm = np.sqrt((a * a).sum(axis=1) * (b * b).sum())
    out: FloatArray = np.divide(a @ b, norm, out=np.ones(len(a)), where=norm > 0)
    return out


def _qrs_width(beats: FloatArray, at: int, fs: float) -> FloatArray:
    """Seconds around R (column ``at``) over which each row's |beat| stays above 30 % of its
    largest value within +-150 ms: wide for a ventricular beat, 40-80 ms for a conducted one."""
    lo, hi = max(0, at - round(0.15 * fs)), min(beats.shape[1], at + round(0.15 * fs))
    mag = np.abs(beats[:, lo:hi])
    top = mag.max(axis=1, keepdims=True)
    above = (mag >= 0.3 * top) & (top > 0)
    first = np.argmax(above, axis=1)
    last = above.shape[1] - 1 - np.argmax(above[:, ::-1], axis=1)
    out: FloatArray = np.where(above.any(axis=1), (last - first + 1) / fs, 0.0)
    return out


def _irregular(rr: FloatArray, v: npt.NDArray[np.bool_]) -> tuple[float, bool]:
    """RR coefficient of variation and the AF verdict (step 3 of the module docstring)."""
    touches_v = v[1:] | v[:-1]  # interval i runs from beat i to beat i + 1
    keep = rr[~touches_v]
    if len(keep) < _MIN_BEATS_AF - 1:
        return 0.0, False
    mean = float(keep.mean())
    cv = float(keep.std() / mean)
    nrmssd = float(np.sqrt(np.mean(np.square(np.diff(keep)))) / mean)
    return round(cv, 4), cv > _AF_CV and nrmssd > _AF_NRMSSD
