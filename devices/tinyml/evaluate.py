"""Scoring the ECG model against reference annotations, as AAMI EC57 counts beats.

The counting rules are those of ``bxb``, the reference implementation of the EC38/EC57
beat-by-beat comparison in the WFDB software (G. Moody, PhysioNet):

* **V and S beats.** A reference beat of the class is detected if a beat the model flagged
  with that class lies within +-150 ms of it (sensitivity = detected / reference beats). A
  flagged beat is a true positive if the nearest reference beat within +-150 ms has the class.
  It is a false positive if that beat is of a class the standard counts against the class
  (:data:`FALSE_FOR`: for V an N or S beat; for S an N, V or F beat) *or if no reference beat
  is near*. A V flag on a fusion (F) or unclassifiable (Q) beat, and an S flag on a Q beat, is
  neither (bxb's ``VFP = Nv + Sv + Ov + Xv``, ``SFP = Ns + Vs + Fs + Os + Xs``).
* **Ventricular flutter/fibrillation.** Reference beats and flags inside annotated ``[`` ...
  ``]`` spans are not counted (bxb ignores test beats during reference-marked VF).
* **Whole records.** bxb starts comparing 5 minutes in, after a learning period; the model
  learns nothing per patient, so every beat of the record is scored.
* **AF windows.** A window is AF if at least half of it lies in an annotated atrial
  fibrillation or flutter episode, non-AF if none of it does (windows in between are not
  scored). Sensitivity is over AF windows (null for a record without any), specificity over
  non-AF windows.
* **Window AUROC** for "any abnormal beat": the window's score is its most abnormal beat's
  1 - P(N); the window is positive if it holds a reference beat of class S, V, F or Q, or a
  detection in flutter/fibrillation.
Totals pool the counts of all records (gross statistics), not the records' averages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from devices.tinyml.dataset import TOLERANCE_S, LabelledWindows, match
from devices.tinyml.ecg import EcgResult, worst_beat
from devices.tinyml.features import FS

Counts = dict[str, int]
FALSE_FOR = {"V": frozenset("NS"), "S": frozenset("NVF")}
"""Reference classes on which a flag of the key class is a false positive (EC57)."""


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def beat_counts(lw: LabelledWindows, flagged: npt.NDArray[np.bool_], cls: str) -> Counts:
    """TP/FN/FP counts of one beat class for one record.

    Args:
        lw: the record's labelled windows.
        flagged: which detected beats the model flagged with ``cls``.
        cls: ``"V"`` or ``"S"``.

    Returns:
        ``reference`` beats of the class, how many were ``detected``, the ``flagged`` beats
        that count (true and false positives), the ``true_flags``, and the flags
        ``not_counted`` (on F or Q beats, or in flutter/fibrillation).
    """
    tol = round(TOLERANCE_S * FS)
    ref = lw.batch.beats[~lw.ref_vf]
    ref_row, ref_sample = ref["row"].astype(np.int64), ref["sample"].astype(np.int64)
    is_cls = ref["label"] == cls
    scored = flagged & ~lw.vf
    det_row, det_sample = lw.beats.row[scored], lw.beats.sample[scored]
    found = match(ref_row[is_cls], ref_sample[is_cls], det_row, det_sample, tol) >= 0
    near = match(det_row, det_sample, ref_row, ref_sample, tol)
    near_label = np.where(near >= 0, ref["label"][np.maximum(near, 0)] if len(ref) else "", "")
    true = near_label == cls
    false = (near < 0) | np.isin(near_label, sorted(FALSE_FOR[cls]))
    return {"reference": int(is_cls.sum()), "detected": int(found.sum()),
            "flagged": int(true.sum() + false.sum()), "true_flags": int(true.sum()),
            "not_counted": int(flagged.sum() - true.sum() - false.sum())}


def auroc(scores: npt.ArrayLike, positive: npt.ArrayLike) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties counted half); None with one class."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(positive, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return round(float(u / (n_pos * n_neg)), 4)


def window_truth(lw: LabelledWindows) -> npt.NDArray[np.bool_]:
    """Which windows hold a reference beat that is not N, or annotated flutter/fibrillation."""
    ref = lw.batch.beats
    abnormal = np.concatenate([ref["row"][ref["label"] != "N"].astype(np.int64),
                               lw.beats.row[lw.vf]])
    out: npt.NDArray[np.bool_] = np.bincount(abnormal, minlength=len(lw.window_af)) > 0
    return out


def window_scores(result: EcgResult) -> npt.NDArray[np.float32]:
    """Each window's most abnormal whole beat (1 - P(N)); 0 for a window without any."""
    return worst_beat(result.beats, result.probs)


def record_report(lw: LabelledWindows, result: EcgResult) -> dict[str, Any]:
    """One record's scores (JSON-ready), with the raw counts the totals pool.

    Args:
        lw: the record's labelled windows (as :func:`devices.tinyml.dataset.record_windows`).
        result: the model's output on ``lw.batch.signal``.
    """
    v = beat_counts(lw, result.beat_v, "V")
    s = beat_counts(lw, result.beat_s, "S")
    af_pos, af_neg = lw.window_af >= 0.5, lw.window_af == 0.0
    af = {"windows": int(af_pos.sum()), "hit": int((result.af & af_pos).sum()),
          "negatives": int(af_neg.sum()), "false": int((result.af & af_neg).sum())}
    return {
        "record": lw.name, "windows": int(lw.beats.n_rows), "beats": len(lw.batch.beats),
        "V": _class_summary(v), "S": _class_summary(s), "af": _af_summary(af),
        "window_auroc": auroc(window_scores(result), window_truth(lw)),
        "counts": {"V": v, "S": s, "af": af},
    }


def _class_summary(c: Counts) -> dict[str, Any]:
    return {"sensitivity": _ratio(c["detected"], c["reference"]),
            "ppv": _ratio(c["true_flags"], c["flagged"]),
            "reference": c["reference"], "flagged": c["flagged"],
            "not_counted": c["not_counted"]}


def _af_summary(c: Counts) -> dict[str, Any] | None:
    if not c["windows"]:
        return None
    return {"sensitivity": _ratio(c["hit"], c["windows"]),
            "specificity": _ratio(c["negatives"] - c["false"], c["negatives"])}


def total_report(records: list[dict[str, Any]], scores: npt.ArrayLike,
                 truth: npt.ArrayLike) -> dict[str, Any]:
    """Pooled scores over records (gross statistics).

    Args:
        records: the outputs of :func:`record_report`.
        scores, truth: every window's score and "any abnormal beat" truth, all records.
    """
    pooled: dict[str, Counts] = {}
    for key in ("V", "S", "af"):
        pooled[key] = {}
        for rec in records:
            for name, value in rec["counts"][key].items():
                pooled[key][name] = pooled[key].get(name, 0) + value
    af = pooled["af"]
    return {
        "records": len(records), "windows": sum(r["windows"] for r in records),
        "beats": sum(r["beats"] for r in records),
        "V": _class_summary(pooled["V"]), "S": _class_summary(pooled["S"]),
        "af": None if not af["windows"] else {
            "sensitivity": _ratio(af["hit"], af["windows"]),
            "specificity": _ratio(af["negatives"] - af["false"], af["negatives"])},
        "window_auroc": auroc(scores, truth),
    }
