"""Beat counting as AAMI EC57 (WFDB ``bxb``) counts: which flags are false, which are not counted.

Each test builds one window by hand: reference beats at known samples, detections next to
them, and flags on some of the detections.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import numpy as np

from devices.physiology import BEAT_DTYPE
from devices.tinyml.evaluate import beat_counts

REF = [(100, "N"), (400, "V"), (700, "S"), (1000, "F"), (1300, "Q"), (1600, "V")]
"""One window's reference beats: (sample, AAMI class)."""


def _window(flag_at: list[int], vf: tuple[int, int] | None = None) -> tuple[Any, np.ndarray]:
    """Detections on every reference beat plus one at 1900 (no beat there), flags at samples."""
    ref = np.zeros(len(REF), BEAT_DTYPE)
    ref["sample"] = [s for s, _ in REF]
    ref["label"] = [c for _, c in REF]
    det = np.array([s for s, _ in REF] + [1900], np.int64)
    lo, hi = vf or (0, 0)
    lw = SimpleNamespace(
        batch=SimpleNamespace(beats=ref),
        beats=SimpleNamespace(row=np.zeros(len(det), np.int64), sample=det + 5),
        vf=(det >= lo) & (det < hi), ref_vf=(ref["sample"] >= lo) & (ref["sample"] < hi))
    return cast(Any, lw), np.isin(det, flag_at)


def test_v_flags_on_n_s_and_nothing_are_false_positives() -> None:
    lw, flagged = _window([100, 400, 700, 1900])
    c = beat_counts(lw, flagged, "V")
    assert c == {"reference": 2, "detected": 1, "flagged": 4, "true_flags": 1, "not_counted": 0}


def test_v_flags_on_fusion_and_unclassifiable_beats_are_not_counted() -> None:
    lw, flagged = _window([400, 1000, 1300])
    c = beat_counts(lw, flagged, "V")
    assert (c["flagged"], c["true_flags"], c["not_counted"]) == (1, 1, 2)


def test_s_flags_on_fusion_beats_are_false_positives() -> None:
    lw, flagged = _window([700, 1000, 1300])
    c = beat_counts(lw, flagged, "S")
    assert (c["reference"], c["detected"], c["flagged"], c["true_flags"]) == (1, 1, 2, 1)
    assert c["not_counted"] == 1  # the Q beat


def test_flutter_spans_are_left_out() -> None:
    lw, flagged = _window([400, 1600, 1900], vf=(1500, 2000))
    c = beat_counts(lw, flagged, "V")
    # the V beat at 1600 and both flags in the span are out: one reference, one true flag
    assert c == {"reference": 1, "detected": 1, "flagged": 1, "true_flags": 1, "not_counted": 2}
