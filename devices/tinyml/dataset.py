"""Labelled ECG windows for training and evaluation: real MIT-BIH records and the twin's own.

A record is cut into consecutive 10-s windows at the device rate, exactly as a patch would
see it (:class:`devices.physiology.WfdbReplay`, one "device" per window, scored as one patch's
windows in time order so that the patch's reference beat carries over); beats are then
*detected* (not taken from the annotations) and each detection gets the AAMI class of the
reference beat within +-150 ms (the EC57 matching window), so training sees the detector's
errors too: a detection without a reference beat is labelled N (nothing to flag).
Data credit: MIT-BIH Arrhythmia Database, Moody & Mark 2001, PhysioNet (ODC-By 1.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from devices.physiology import CohortParams, EcgSource, SignalBatch, WfdbReplay
from devices.tinyml.features import FS, BeatBatch, extract
from twin.core.seeds import SeedTree

CLASSES = "NSVF"
"""The beat model's classes (AAMI EC57; Q beats are neither trained nor scored)."""
TOLERANCE_S = 0.15
"""Beat matching window (AAMI EC57: +-150 ms)."""
AF_KINDS = ("af", "afl")
WINDOW_S = 10.0
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class LabelledWindows:
    """The windows of one record (or synthetic run), their beats and labels.

    Attributes:
        name: record name (or ``synthetic-<rhythm>``).
        batch: the windows as the device sees them (reference beats in ``batch.beats``).
        beats: detected beats and model inputs.
        label: class index in :data:`CLASSES` per detected beat (-1: a Q beat or one in
            flutter, not used).
        af: whether each detected beat lies in atrial fibrillation or flutter.
        window_af: share of each window in AF or flutter (0..1).
        vf: whether each detected beat lies in annotated ventricular flutter/fibrillation
            (label -1 there: no beats are annotated, so there is nothing to learn or score).
        ref_vf: the same for each reference beat of ``batch.beats``.
        device: ``(windows,)`` which patient (device) each window belongs to, its windows in
            time order: what :meth:`devices.tinyml.ecg.EcgModel.score` needs to carry each
            patient's reference beat from window to window.
    """

    name: str
    batch: SignalBatch
    beats: BeatBatch
    label: IntArray
    af: npt.NDArray[np.bool_]
    window_af: npt.NDArray[np.float64]
    vf: npt.NDArray[np.bool_]
    ref_vf: npt.NDArray[np.bool_]
    device: IntArray


def match(det_row: IntArray, det_sample: IntArray, ref_row: IntArray, ref_sample: IntArray,
          tolerance: int) -> IntArray:
    """For each detection, the index of the nearest reference beat within ``tolerance``.

    Args:
        det_row, det_sample: detections (window row, sample).
        ref_row, ref_sample: reference beats (window row, sample).
        tolerance: the largest allowed distance in samples.

    Returns:
        ``(len(det_row),)`` indices into the reference beats, -1 where none is close enough.
    """
    out = np.full(len(det_row), -1, np.int64)
    if not len(ref_row) or not len(det_row):
        return out
    stride = int(max(det_sample.max(initial=0), ref_sample.max(initial=0))) + 4 * tolerance + 1
    ref_key = ref_row * stride + ref_sample
    order = np.argsort(ref_key, kind="stable")
    keys = ref_key[order]
    det_key = det_row * stride + det_sample
    pos = np.searchsorted(keys, det_key)
    left = np.clip(pos - 1, 0, len(keys) - 1)
    right = np.clip(pos, 0, len(keys) - 1)
    d_left, d_right = np.abs(det_key - keys[left]), np.abs(keys[right] - det_key)
    best = np.where(d_left <= d_right, left, right)
    dist = np.minimum(d_left, d_right)
    out[dist <= tolerance] = order[best[dist <= tolerance]]
    return out


def _label(beats: BeatBatch, ref: npt.NDArray[np.void]) -> IntArray:
    """Class index of every detected beat from its matched reference beat."""
    hit = match(beats.row, beats.sample, ref["row"].astype(np.int64),
                ref["sample"].astype(np.int64), round(TOLERANCE_S * FS))
    lut = {c: i for i, c in enumerate(CLASSES)}
    ref_cls = np.array([lut.get(str(c), -1) for c in ref["label"]], np.int64)
    return np.where(hit >= 0, ref_cls[np.maximum(hit, 0)] if len(ref_cls) else 0, 0)


def record_windows(path: str | Path, window_s: float = WINDOW_S, lead: str = "MLII"
                   ) -> LabelledWindows:
    """Every whole window of a WFDB record, replayed at the device rate, with labels.

    Args:
        path: the record without extension.
        window_s: window length (s).
        lead: the signal to replay, by name (a record without it: its first signal).

    Returns:
        The labelled windows (a trailing partial window is dropped).

    Raises:
        RecordError: the record cannot be read (see :class:`WfdbReplay`).
    """
    whole = WfdbReplay(path, fs=FS, n_devices=1, window_s=window_s, lead=lead)
    n = whole.length // whole.samples
    rep = whole.restarted(np.arange(n) * window_s)
    batch = rep.window(window_s, np.arange(n))
    device = np.zeros(n, np.int64)  # one patient, windows in time order
    beats = extract(batch.signal, FS, device)
    af = rep.episodes_table[np.isin(rep.episodes_table["kind"], AF_KINDS)]
    af_mask = _covered(rep.length, af["start"], af["start"] + af["length"])
    vf_mask = _covered(rep.length, rep.vf_spans[:, 0], rep.vf_spans[:, 1])
    abs_sample = beats.row * rep.samples + beats.sample
    ref = batch.beats
    ref_vf = vf_mask[ref["row"].astype(np.int64) * rep.samples + ref["sample"]]
    window_af = af_mask[: n * rep.samples].reshape(n, rep.samples).mean(axis=1)
    in_vf = vf_mask[abs_sample]
    label = np.where(in_vf, -1, _label(beats, ref))
    return LabelledWindows(Path(path).name, batch, beats, label, af_mask[abs_sample], window_af,
                           in_vf, ref_vf, device)


def _covered(length: int, starts: npt.ArrayLike, ends: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Which of ``length`` samples lie in any of the intervals [start, end)."""
    edges = np.zeros(length + 1, np.int64)
    np.add.at(edges, np.clip(np.asarray(starts, np.int64), 0, length), 1)
    np.add.at(edges, np.clip(np.asarray(ends, np.int64), 0, length), -1)
    out: npt.NDArray[np.bool_] = np.cumsum(edges[:-1]) > 0
    return out


def synthetic_windows(rhythm: str, devices: int, windows: int, seed: int) -> LabelledWindows:
    """Windows of the twin's own synthetic ECG with one forced rhythm, labelled.

    Args:
        rhythm: a rhythm of :data:`devices.physiology.RHYTHMS` (``"af"``, ``"bigeminy"``...).
        devices: patches (synthetic patients).
        windows: consecutive windows per patch.
        seed: run seed of the synthetic cohort.

    Returns:
        The windows of all patches (window ``k`` of device ``d`` is row ``k * devices + d``).
    """
    src = EcgSource(devices, CohortParams(), SeedTree(seed), fs=FS, window_s=WINDOW_S,
                    rhythm=rhythm)
    idx = np.arange(devices)
    parts = [src.window(WINDOW_S * (k + 1), idx) for k in range(windows)]
    signal = np.concatenate([p.signal for p in parts])
    ref = np.concatenate([p.beats for p in parts])
    ref["row"] += np.repeat(np.arange(windows) * devices, [len(p.beats) for p in parts])
    batch = SignalBatch(WINDOW_S * windows, np.concatenate([p.values for p in parts]), signal,
                        FS, "mV", np.concatenate([p.episodes for p in parts]), ref)
    device = np.arange(len(signal)) % devices
    beats = extract(signal, FS, device)
    in_af = rhythm == "af"
    return LabelledWindows(f"synthetic-{rhythm}", batch, beats, _label(beats, ref),
                           np.full(len(beats), in_af), np.full(len(signal), float(in_af)),
                           np.zeros(len(beats), bool), np.zeros(len(ref), bool), device)
