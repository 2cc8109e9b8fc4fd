"""Beat templates for the ECG model: a lookup table of sums of Gaussian waves.

Each beat is P, Q, R, S and T waves, each a Gaussian in time around the R peak, as in the
ECGSYN dynamical model (McSharry, Clifford, Tarassenko & Smith, IEEE TBME 2003), but evaluated
once into a table instead of integrated per sample, so that rendering a window is one gather.
The table is indexed by (morphology variant, beat class, RR bin, sub-sample phase, offset):

* RR bin: the T wave follows the preceding RR interval, QT = 0.40 s x sqrt(RR) (Bazett 1920,
  QTc 400 ms), and the PR interval shortens slightly at fast rates (120-200 ms normal);
* sub-sample phase: R peaks fall between samples (4 phases), so RR intervals are not
  quantised to the sampling period;
* class: N (sinus), A (conducted beat in atrial fibrillation: no P wave), E (sinus beat with ST
  elevation, >= 0.1 mV at J+60 ms: Thygesen et al., 4th universal definition of MI, 2018),
  S (premature atrial beat: early, inverted P), V (ventricular beat: no P, QRS 140-180 ms,
  discordant T; normal QRS is 80-100 ms: Surawicz et al., AHA/ACCF/HRS 2009);
* variant: a few per-patient shapes (wave widths and amplitudes +- 10-40 %).

A block of zeros precedes the table: the gaps between a beat's extent and the next beat's
(long pauses) index into it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

CLASSES = "NAESV"
"""Template classes: sinus, AF-conducted, ST-elevated sinus, atrial premature, ventricular."""
AAMI_OF_CLASS = "NNNSV"
"""The AAMI label of each template class."""
N_CLS, A_CLS, E_CLS, S_CLS, V_CLS = range(5)
PRE_S, POST_S = 0.80, 1.25
"""A beat's template spans [R - PRE_S, R + POST_S)."""
RR_MIN, RR_MAX, RR_BINS, PHASES = 0.25, 2.0, 16, 4

# (center s, amplitude mV, width s) of P, Q, R, S waves per class; T is added from the RR.
_QRS_NORMAL = ((-0.024, -0.10, 0.0070), (0.0, 1.0, 0.0085), (0.024, -0.22, 0.0080))
# A ventricular QRS is wide and usually taller than the sinus one in lead II (1.5 mV here).
# The first version had the same shape at 0.8 mV: its steepest 5-15 Hz slope was under half
# a sinus beat's, so the detector's T-wave rule (Pan & Tompkins) dropped a third of the
# synthetic PVCs in bigeminy, although it drops 2 of 3,782 real ones (MIT-BIH DS1).
_QRS_WIDE = ((0.0, 1.52, 0.032), (0.078, 1.18, 0.036), (0.155, -0.23, 0.022))


def _waves(cls: int, rr: float) -> list[tuple[float, float, float]]:
    """The Gaussian waves (center, amplitude, width) of one class at one RR interval."""
    root = np.sqrt(rr)
    p_center = -(0.13 + 0.04 * rr)
    if cls == V_CLS:
        qt = 0.44 * root + 0.06
        sig_t = 0.05 * root
        return [*_QRS_WIDE, (qt - 2.0 * sig_t, -0.30, sig_t)]
    qt = 0.40 * root
    sig_t = 0.040 * root
    waves = [*_QRS_NORMAL, (qt - 0.04 - 2.2 * sig_t, 0.28, sig_t)]
    if cls in (N_CLS, E_CLS):
        waves.append((p_center, 0.13, 0.022))
    if cls == S_CLS:
        waves.append((p_center + 0.02, -0.09, 0.018))
    if cls == E_CLS:  # raised ST segment merging into the T wave
        waves += [(0.045, 0.12, 0.012), (0.10, 0.20, 0.045)]
    return waves


def _variants(rng: np.random.Generator, count: int) -> npt.NDArray[np.float64]:
    """Per-variant multipliers: (QRS width, P amp, T amp, Q/S amp); variant 0 is nominal."""
    lo, hi = np.array([0.92, 0.7, 0.7, 0.6]), np.array([1.08, 1.3, 1.4, 1.4])
    out = rng.uniform(lo, hi, (count, 4))
    out[0] = 1.0
    return out


class TemplateBank:
    """The lookup table for one sampling rate.

    Args:
        fs: sampling rate (Hz).
        rng: draws the morphology variants.
        variants: how many per-patient shapes.

    Attributes:
        table: flat float32 array: ``zeros`` then rows of ``length`` samples.
        zeros: length of the zero block (>= the longest gap a window can hold).
        length: samples per row; offset ``k`` from the R sample is column ``center + k``.
    """

    def __init__(self, fs: float, rng: np.random.Generator, variants: int = 8,
                 max_window_samples: int = 0) -> None:
        self.fs = fs
        self.n_variants = variants
        self.center = int(np.ceil(PRE_S * fs)) + 1
        self.length = self.center + int(np.ceil(POST_S * fs)) + 1
        self.zeros = max(max_window_samples, self.length) + 1
        self.rr_grid = RR_MIN * (RR_MAX / RR_MIN) ** np.linspace(0.0, 1.0, RR_BINS)
        rows = self._rows(_variants(rng, variants))
        self.table = np.concatenate([np.zeros(self.zeros, np.float32), rows.ravel()])

    def _rows(self, mult: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
        """Evaluate every (variant, class, RR bin, phase) row."""
        offsets = np.arange(self.length) - self.center
        phase = np.arange(PHASES) / PHASES
        t = (offsets[None, :] - phase[:, None]) / self.fs  # (PHASES, length)
        out = np.zeros((self.n_variants, len(CLASSES), RR_BINS, PHASES, self.length))
        for c in range(len(CLASSES)):
            for b, rr in enumerate(self.rr_grid):
                for i, (mu, amp, sig) in enumerate(_waves(c, float(rr))):
                    w, a = self._scaled(mult, i, c, mu, amp, sig)
                    out[:, c, b] += a[:, None, None] * np.exp(
                        -0.5 * ((t[None] - mu * w[:, None, None]) / (sig * w)[:, None, None]) ** 2)
        return out.astype(np.float32)

    @staticmethod
    def _scaled(mult: npt.NDArray[np.float64], i: int, c: int, mu: float, amp: float,
                sig: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Per-variant width and amplitude of wave ``i`` of class ``c``."""
        ones = np.ones(len(mult))
        qrs = i < 3
        width = mult[:, 0] if qrs else ones
        if qrs and c != V_CLS and i != 1:
            return width, amp * mult[:, 3]
        if i == 3:
            return width, amp * mult[:, 2]
        if i == 4 and c in (N_CLS, E_CLS, S_CLS):
            return width, amp * mult[:, 1]
        return width, amp * ones

    def rr_bin(self, rr: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """The table's RR bin for each RR interval (s)."""
        pos = np.log(np.clip(rr, RR_MIN, RR_MAX) / RR_MIN) / np.log(RR_MAX / RR_MIN)
        out: npt.NDArray[np.intp] = np.rint(pos * (RR_BINS - 1)).astype(np.intp)
        return out

    def row_start(self, variant: npt.NDArray[np.intp], cls: npt.NDArray[np.intp],
                  rr_bin: npt.NDArray[np.intp], phase: npt.NDArray[np.intp]
                  ) -> npt.NDArray[np.int64]:
        """Flat table index of column ``center`` (the R sample) of each row."""
        row = ((variant * len(CLASSES) + cls) * RR_BINS + rr_bin) * PHASES + phase
        out: npt.NDArray[np.int64] = (self.zeros + row.astype(np.int64) * self.length
                                      + self.center)
        return out
