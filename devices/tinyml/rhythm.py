"""Rhythm features of detected beats, and the per-window statistics the pipeline shares.

Beats arrive as a flat, row-sorted batch (``row``: each beat's window, ``sample``: its R
sample); everything here works on all windows at once, with numpy only.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

N_RHYTHM = 8
"""Rhythm features per beat."""
RHYTHM_NAMES = ("pre_rr_s", "post_rr_s", "local_rr_s", "pre_ratio", "post_ratio",
                "nrmssd", "rr_cv", "pnn50")
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


def row_median(values: npt.NDArray[np.floating], row: IntArray, n_rows: int,
                default: float) -> npt.NDArray[np.float64]:
    """The median of ``values`` per row (``default`` for rows without any)."""
    if not len(values):
        return np.full(n_rows, default)
    counts = np.bincount(row, minlength=n_rows)
    width = int(counts.max())
    dense = np.full((n_rows, width), np.inf)  # missing entries sort last
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    dense[row, np.arange(len(row)) - start[row]] = values
    dense.sort(axis=1)
    every = np.arange(n_rows)
    lo, hi = np.maximum(counts - 1, 0) // 2, counts // 2
    med = 0.5 * (dense[every, lo] + dense[every, np.minimum(hi, width - 1)])
    return np.where(counts > 0, med, default)


def rhythm(row: IntArray, sample: IntArray, n_rows: int, fs: float) -> FloatArray:
    """The 8 rhythm features of every beat (see :data:`RHYTHM_NAMES`).

    A window's first beat has no previous RR and its last no next one: the window's median
    RR stands in for them.
    """
    m = len(row)
    same = np.zeros(m, bool)
    same[1:] = row[1:] == row[:-1]
    rr = np.full(m, np.nan)
    rr[1:] = np.diff(sample) / fs
    rr[~same] = np.nan  # rr[i]: the interval ending at beat i
    local = row_median(rr[~np.isnan(rr)], row[~np.isnan(rr)], n_rows, default=1.0)[row]
    pre = np.where(np.isnan(rr), local, rr)
    post = np.append(rr[1:], np.nan)
    post = np.where(np.isnan(post), local, post)
    d = np.full(m, np.nan)
    d[1:] = np.abs(np.diff(rr))  # successive differences within a row (NaN across rows)
    ok_d = ~np.isnan(d)
    rmssd = np.sqrt(row_mean(np.square(d[ok_d]), row[ok_d], n_rows))
    ok_r = ~np.isnan(rr)
    mean = row_mean(rr[ok_r], row[ok_r], n_rows)
    sd = np.sqrt(np.maximum(row_mean(np.square(rr[ok_r]), row[ok_r], n_rows) - mean**2, 0))
    pnn = row_mean((d[ok_d] > 0.05).astype(float), row[ok_d], n_rows)
    safe = np.where(mean > 0, mean, 1.0)
    feats = np.column_stack([pre, post, local, pre / local, post / local,
                             (rmssd / safe)[row], (sd / safe)[row], pnn[row]])
    out: FloatArray = np.clip(feats, 0.0, 4.0).astype(np.float32)
    return out


def row_mean(values: npt.NDArray[np.floating], row: IntArray, n_rows: int
              ) -> npt.NDArray[np.float64]:
    """Mean of ``values`` per row (0 where a row has none)."""
    total = np.bincount(row, weights=values, minlength=n_rows)
    count = np.bincount(row, minlength=n_rows)
    out: npt.NDArray[np.float64] = total / np.maximum(count, 1)
    return out
