"""Each beat against the patient's own: window templates and the features read from them.

The ECG model does not see a beat's absolute shape (ADR 0015). Each window gets a *template*,
the sample-wise median of its beats that are not premature, and each beat is described by how
it differs from that template (:func:`morphology`), which is how a cardiologist reads a
bundle-branch-block patient's wide but normal beats as normal; the template itself gives the
window's atrial activity (:func:`atrial`). Measured by leave-three-patients-out
cross-validation on the training patients: absolute shapes gave ventricular +P 26 %,
template-relative inputs 73-78 %.

A window's template fails when most of its beats are ventricular, so each patch also keeps
its last conducted templates from window to window and reads beats against their median, its
*reference beat* (:func:`conducted`, :func:`carry`, :func:`reference_beat`,
:func:`reference_for`, :func:`against_reference`; ADR 0017).

Arrays are batches of beats (rows of ``SEG_LEN`` samples at 125 Hz, R at sample 32) as
:func:`devices.tinyml.features.segments` cuts them; nothing here loops over beats or windows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

MORPH_NAMES = ("corr", "residual_rms", "qrs_corr", "qrs_energy_ratio", "qrs_width_ratio",
               "qrs_slope_ratio")
"""Beat-against-template features (see :func:`morphology`)."""
ATRIAL_NAMES = ("template_p",)
"""Window features of atrial activity (see :func:`atrial`)."""
REFERENCE_NAMES = ("ref_corr", "ref_qrs_corr", "ref_qrs_width_ratio", "template_ref_qrs_corr")
"""Beat and window template against the patient's reference beat (see
:func:`against_reference`)."""
REFERENCE_BEATS = 5
"""The reference beat is the sample-wise median of the device's last this many conducted
window templates: one odd window (a run of late-coupled PVCs whose template happens to show a
bump before its QRS) cannot replace it on its own."""
P_PRESENT = 0.3
"""Where :func:`atrial` saturates: the input says whether a P wave is there, not how tall it
is. Among the training patients a template's P span reaches 0.3 of its QRS range only in a
few windows of record 207 (a ventricular run's template, where it is the previous beat's T
wave), so the model had learned a tall P span as ventricular; validation record 108, whose
P waves grow to 0.5-0.85 of its shrinking QRS in its last three minutes, then had whole
windows of normal beats flagged (151 false V flags). Saturated at 0.3 (ADR 0018), three
seeds of cross-validation on the training patients: V Se 80.5 -> 83.1 %, +P 94.9 -> 93.6 %."""
CONDUCTED_P = 0.1
"""A window's template is *conducted* (a sinus or atrial beat led by a P wave) when its P-span
range is at least this share of its QRS range (:func:`atrial`)..."""
CONDUCTED_RR_S = 0.5
"""...its median RR is at least this (s, 120 bpm): a fast rhythm is not trusted as the
patient's normal beat, whatever lies before its QRS..."""
CONDUCTED_RR_CV = 0.15
"""...and its RR intervals vary by less than this (coefficient of variation): frequent
ectopic beats make a window irregular, and its template less certainly the normal beat."""
_TEMPLATE_BEATS = 9  # beats a window's template is the median of, at most
_ON_TIME = 0.9  # previous RR / window median RR at or above which a beat is not premature
_QRS = slice(20, 45)  # segment samples of the QRS (-96 .. +104 ms around R at 125 Hz)
_P = slice(4, 21)  # segment samples where a sinus P wave lies (-224 .. -96 ms)


def templates(segment: FloatArray, row: IntArray, n_rows: int) -> FloatArray:
    """Each window's template: the sample-wise median of its beats' segments.

    The median, not the mean, so that the odd ectopic beat (or one in three, in trigeminy)
    does not shape it; of at most :data:`_TEMPLATE_BEATS` beats a window (its first), which
    is plenty for a median and keeps the sort short. Rows without beats get a flat template.

    Args:
        segment: ``(m, SEG_LEN)`` beats, sorted by ``row``.
        row: each beat's window.
        n_rows: windows.

    Returns:
        ``(n_rows, SEG_LEN)`` float32.
    """
    full = np.bincount(row, minlength=n_rows)
    rank = np.arange(len(row)) - (np.cumsum(full) - full)[row]
    use = rank < _TEMPLATE_BEATS
    counts = np.minimum(full, _TEMPLATE_BEATS)
    width = max(int(counts.max(initial=0)), 1)
    # (window, sample, beat): the sort runs along the contiguous last axis.
    dense = np.full((n_rows, segment.shape[1], width), np.inf, np.float32)
    dense[row[use], :, rank[use]] = segment[use]  # missing beats sort last
    dense.sort(axis=2)
    out = _sorted_median(dense, counts)
    out[counts == 0] = 0.0
    return out


def _sorted_median(dense: FloatArray, counts: npt.NDArray[np.integer]) -> FloatArray:
    """The median over the last axis of ``(rows, samples, slots)`` sorted along it, where row
    ``i`` has ``counts[i]`` real slots and the missing ones sorted last (rows with none get
    whatever is there: callers overwrite them)."""
    every = np.arange(len(dense))
    lo, hi = np.maximum(counts - 1, 0) // 2, np.minimum(counts // 2, dense.shape[2] - 1)
    out: FloatArray = 0.5 * (dense[every, :, lo] + dense[every, :, hi])
    return out


def window_templates(segment: FloatArray, pre_ratio: FloatArray, row: IntArray,
                     n_rows: int) -> FloatArray:
    """Each window's template from its beats that are not premature (previous RR at least
    :data:`_ON_TIME` of the window's median), or from all its beats if fewer than two are.

    Premature beats are left out because ventricular ones are premature: in bigeminy or a
    window of couplets half or more of the beats are ventricular, and a median over all of
    them would be a ventricular template against which the ventricular beats look normal.
    """
    on_time = pre_ratio >= _ON_TIME
    out = templates(segment[on_time], row[on_time], n_rows)
    few = np.bincount(row[on_time], minlength=n_rows) < 2
    if few.any():  # rare: only those rows again, from all their beats
        redo = few[row]
        rows = np.flatnonzero(few)
        local = np.searchsorted(rows, row[redo])
        out[rows] = templates(segment[redo], local, len(rows))
    return out


def _dot(a: FloatArray, b: FloatArray) -> FloatArray:
    out: FloatArray = np.einsum("ij,ij->i", a, b)
    return out


def _corr(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise Pearson correlation (0 for a flat row), from raw sums: no centred copies."""
    n = a.shape[1]
    sa, sb = a.sum(axis=1), b.sum(axis=1)
    cov = _dot(a, b) - sa * sb / n
    var = (_dot(a, a) - sa * sa / n) * (_dot(b, b) - sb * sb / n)
    out: FloatArray = cov / np.sqrt(np.maximum(var, 1e-12))
    return out


def _qrs_shape(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """RMS about its mean, width (samples above 30 % of its largest excursion from the
    mean) and steepest slope of each row of a QRS-long array."""
    c = x - x.mean(axis=1, keepdims=True)
    mag = np.abs(c)
    width = (mag > 0.3 * mag.max(axis=1, keepdims=True)).sum(axis=1).astype(np.float32)
    slope = np.abs(np.diff(x, axis=1)).max(axis=1, initial=0.0)
    rms = np.sqrt(_dot(c, c) / x.shape[1])
    return rms, width, slope


def morphology(segment: FloatArray, template: FloatArray, residual: FloatArray) -> FloatArray:
    """How each beat differs from its template (:data:`MORPH_NAMES`).

    Args:
        segment: ``(m, SEG_LEN)`` beats.
        template: ``(m, SEG_LEN)`` each beat's window template.
        residual: ``segment - template``.

    Returns:
        ``(m, 6)`` float32: correlation over the whole segment and RMS of the residual, then
        over the QRS (-96 .. +104 ms): correlation, energy, width and steepest-slope ratios
        (clipped to 0..4). Nothing absolute about the beat's shape: with the beat's own QRS
        width among them, a patient whose normal QRS is wide had 15 % of normal beats flagged
        ventricular (record 108).
    """
    bq, tq = segment[:, _QRS], template[:, _QRS]
    e_b, w_b, s_b = _qrs_shape(bq)
    e_t, w_t, s_t = _qrs_shape(tq)
    out = np.empty((len(segment), len(MORPH_NAMES)), np.float32)
    out[:, 0] = _corr(segment, template)
    out[:, 1] = np.sqrt(_dot(residual, residual) / residual.shape[1])
    out[:, 2] = _corr(bq, tq)
    out[:, 3] = np.clip(e_b / (e_t + 1e-3), 0.0, 4.0)
    out[:, 4] = np.clip(w_b / np.maximum(w_t, 1.0), 0.0, 4.0)
    out[:, 5] = np.clip(s_b / (s_t + 1e-3), 0.0, 4.0)
    return out


def atrial(template: FloatArray) -> FloatArray:
    """Each window's P wave: the range of its template over the P-wave span as a share of its
    QRS range (clipped to 0 .. :data:`P_PRESENT`).

    The template is a median over beats, so a sinus P wave (locked to the QRS) survives it and
    the unlocked f waves of atrial fibrillation average out: with RR irregularity, the two
    classic AF cues (Dash et al., Ann Biomed Eng 2009; Ladavich & Ghoraani, Biomed Signal
    Process Control 2015). Template-relative beats cannot show it (a beat without P minus a
    template without P is nothing).

    Returns:
        ``(n_rows, 1)`` float32.
    """
    qrs = np.ptp(template[:, _QRS], axis=1)
    out: FloatArray = np.clip(np.ptp(template[:, _P], axis=1) / np.maximum(qrs, 1e-3),
                              0.0, P_PRESENT).astype(np.float32)[:, None]
    return out


def conducted(template: FloatArray, local_rr: npt.NDArray[np.floating],
              rr_cv: npt.NDArray[np.floating]) -> npt.NDArray[np.bool_]:
    """Which windows' templates are conducted beats, fit to shape the patient's reference: a
    P wave before the QRS, under 120 bpm, a regular rhythm (:data:`CONDUCTED_P`,
    :data:`CONDUCTED_RR_S`, :data:`CONDUCTED_RR_CV`). A window without beats (a flat
    template) never is.

    Args:
        template: ``(n_rows, SEG_LEN)`` window templates.
        local_rr: ``(n_rows,)`` each window's median RR (s).
        rr_cv: ``(n_rows,)`` each window's RR coefficient of variation.
    """
    out: npt.NDArray[np.bool_] = ((atrial(template)[:, 0] >= CONDUCTED_P)
                                  & (np.asarray(local_rr) >= CONDUCTED_RR_S)
                                  & (np.asarray(rr_cv) < CONDUCTED_RR_CV))
    return out


def carry(template: FloatArray, is_conducted: npt.NDArray[np.bool_], device: IntArray,
          previous: FloatArray) -> FloatArray:
    """Each device's last :data:`REFERENCE_BEATS` conducted templates as of the end of each
    window: what a patch keeps between windows (ADR 0017).

    A window's template is the median of that window's beats, so in a run of ventricular
    beats (bigeminy, an idioventricular rhythm, VT) it is itself ventricular and the beats
    look normal against it. The conducted templates of earlier windows are the patient's own
    normal beat from before the run; they change only as windows show conducted beats again.

    Args:
        template: ``(n_rows, SEG_LEN)`` window templates.
        is_conducted: ``(n_rows,)`` :func:`conducted`.
        device: ``(n_rows,)`` each window's device, an index into ``previous``; the windows
            of one device in time order.
        previous: ``(n_devices, K, SEG_LEN)`` each device's last K conducted templates
            before these windows, oldest first (rows of NaN: not seen yet).

    Returns:
        ``(n_rows, K, SEG_LEN)`` float32 in the layout of ``previous``.
    """
    n, k = len(device), previous.shape[1]
    order = np.argsort(device, kind="stable")
    dev, cond = device[order], is_conducted[order]
    pos = np.arange(n)
    first = np.ones(n, bool)
    first[1:] = dev[1:] != dev[:-1]
    start = np.maximum.accumulate(np.where(first, pos, 0))
    seen: IntArray = np.cumsum(cond, dtype=np.int64)  # conducted windows so far, all devices
    own: IntArray = seen - (seen - cond)[start]  # ...of this device here, this one included
    out = np.empty((n, k, template.shape[1]), np.float32)
    if not cond.any():
        out[order] = previous[dev]
        return out
    conducted_rows = template[order][cond]
    for back in range(k):  # back = 0: the newest
        from_batch = conducted_rows[np.clip(seen - 1 - back, 0, len(conducted_rows) - 1)]
        from_before = previous[dev, np.clip(k - 1 - (back - own), 0, k - 1)]
        mine: npt.NDArray[np.bool_] = own > back
        out[order, k - 1 - back] = np.where(mine[:, None], from_batch, from_before)
    return out


def reference_beat(history: FloatArray) -> FloatArray:
    """The sample-wise median of the conducted templates in each row of a :func:`carry`
    history (NaN slots left out); a row of NaN where there are none."""
    count = np.isfinite(history[:, :, 0]).sum(axis=1)
    out = _sorted_median(np.sort(history.transpose(0, 2, 1), axis=2), count)  # NaN sort last
    out[count == 0] = np.nan
    return out


def reference_for(template: FloatArray, is_conducted: npt.NDArray[np.bool_],
                  carried: FloatArray) -> FloatArray:
    """The beat each window's beats are read against (ADR 0017): a window with a conducted
    template of its own, its template (the patient's normal beat may have changed since the
    kept ones); any other, the :func:`reference_beat` of the templates its device kept
    (:func:`carry`); a device that has kept none yet, the window's template.

    Returns:
        ``(n_rows, SEG_LEN)`` float32.
    """
    kept = reference_beat(carried)
    use_kept = ~is_conducted & np.isfinite(kept[:, 0])
    out: FloatArray = np.where(use_kept[:, None], kept, template)
    return out


def against_reference(segment: FloatArray, template: FloatArray, reference: FloatArray
                      ) -> FloatArray:
    """How each beat, and its window's template, differ from the patient's reference beat
    (:data:`REFERENCE_NAMES`).

    Args:
        segment: ``(m, SEG_LEN)`` beats.
        template: ``(m, SEG_LEN)`` each beat's window template.
        reference: ``(m, SEG_LEN)`` each beat's reference: its device's
            :func:`reference_beat` where its window is not :func:`conducted`, else (or where
            there is none yet) its window template.

    Returns:
        ``(m, 4)`` float32: correlation with the reference over the segment and over the QRS,
        QRS width ratio to it (0..4), and the QRS correlation of the window template with it
        (low when the whole window has changed, as in a ventricular run).
    """
    bq, rq = segment[:, _QRS], reference[:, _QRS]
    _, w_b, _ = _qrs_shape(bq)
    _, w_r, _ = _qrs_shape(rq)
    out = np.empty((len(segment), len(REFERENCE_NAMES)), np.float32)
    out[:, 0] = _corr(segment, reference)
    out[:, 1] = _corr(bq, rq)
    out[:, 2] = np.clip(w_b / np.maximum(w_r, 1.0), 0.0, 4.0)
    out[:, 3] = _corr(template[:, _QRS], rq)
    return out
