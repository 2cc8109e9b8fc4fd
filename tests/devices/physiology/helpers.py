"""Independent measurements for the physiology tests: scipy's filters and peak finder only.

Nothing here uses the project's own beat annotations to find beats: R peaks are found with
``scipy.signal.find_peaks`` on a band-passed signal, QRS widths from its energy envelope.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps


def band(x: np.ndarray, fs: float, lo: float, hi: float, order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass (butter + filtfilt)."""
    b, a = sps.butter(order, [lo, hi], "bandpass", fs=fs)
    return sps.filtfilt(b, a, np.asarray(x, dtype=float))


def r_peaks(x: np.ndarray, fs: float) -> np.ndarray:
    """R-peak sample indices: find_peaks on the squared 5-20 Hz band, 250 ms refractory."""
    e = band(x, fs, 5.0, 20.0) ** 2
    height = 0.2 * np.percentile(e, 99.5)
    peaks, _ = sps.find_peaks(e, height=height, distance=int(0.25 * fs))
    return peaks


def heart_rate(x: np.ndarray, fs: float) -> float:
    """Mean heart rate (bpm) from the detected R peaks."""
    rr = np.diff(r_peaks(x, fs)) / fs
    return float(60.0 / rr.mean())


def rr_cv(x: np.ndarray, fs: float) -> float:
    """Coefficient of variation of the detected RR intervals."""
    rr = np.diff(r_peaks(x, fs)) / fs
    return float(rr.std() / rr.mean())


def qrs_width_ms(x: np.ndarray, fs: float, peak: int, frac: float = 0.1) -> float:
    """QRS width around ``peak``: the span where the smoothed 1-40 Hz energy stays above
    ``frac`` of its maximum within +-100 ms of the peak."""
    y = band(x, fs, 1.0, 40.0) ** 2
    k = max(1, int(0.016 * fs))
    e = np.convolve(y, np.ones(k) / k, mode="same")
    lo, hi = max(0, peak - int(0.1 * fs)), min(len(e), peak + int(0.1 * fs))
    top = lo + int(np.argmax(e[lo:hi]))
    reach = int(0.15 * fs)  # a QRS complex is never wider than 300 ms
    above = e[max(0, top - reach): top + reach + 1] > frac * e[top]
    centre = min(top, reach)
    below_left = np.flatnonzero(~above[:centre])
    below_right = np.flatnonzero(~above[centre:])
    left = below_left[-1] + 1 if len(below_left) else 0
    right = centre + (below_right[0] - 1 if len(below_right) else len(above) - 1 - centre)
    return 1000.0 * (right - left + 1) / fs
