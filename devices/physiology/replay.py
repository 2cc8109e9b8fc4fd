"""Real-signal replay: a device streams a WFDB record (e.g. MIT-BIH) instead of a synthetic ECG.

The record is read with ``wfdb``, resampled to the device rate with
``scipy.signal.resample_poly`` (a polyphase FIR, rational factor, e.g. 250/360 = 25/36), and
its reference beat annotations are mapped to AAMI classes with the standard EC57 mapping used
for MIT-BIH studies (de Chazal, O'Dwyer & Reilly, IEEE TBME 2004)::

    N: N L R e j      S: A a J S      V: V E      F: F      Q: / f Q

Other annotation codes (rhythm changes ``+``, noise ``~``, ``|``, ``x``, ``!`` ...) are not
beats. Rhythm annotations (``+`` with an aux note such as ``(AFIB``) become ground-truth
episodes, and ``[`` ... ``]`` pairs mark ventricular flutter or fibrillation, where no beat is
annotated (the reference comparator ``bxb`` of the WFDB software, G. Moody, leaves those spans
out of beat-by-beat statistics). The lead is chosen by name, MLII where the record has it:
record 114 stores MLII as its second signal. Each device plays the record from its own offset
and loops at the end.
Data credit: MIT-BIH Arrhythmia Database, Moody & Mark 2001, PhysioNet (ODC-By 1.0).
"""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from devices.physiology.batch import BEAT_DTYPE, SignalBatch
from devices.physiology.episodes import EPISODE_DTYPE
from devices.physiology.errors import RecordError

AAMI_MAP = {**dict.fromkeys("NLRej", "N"), **dict.fromkeys("AaJS", "S"),
            **dict.fromkeys("VE", "V"), "F": "F", **dict.fromkeys("/fQ", "Q")}
"""MIT-BIH beat code -> AAMI EC57 class; codes not listed are not beats."""
RHYTHM_EPISODES = {
    "(AFIB": "af", "(AFL": "afl", "(B": "bigeminy", "(T": "trigeminy", "(VT": "vt",
    "(SBR": "brady", "(SVTA": "svta", "(IVR": "ivr", "(VFL": "vfl", "(NOD": "nodal",
    "(BII": "av_block_2", "(PREX": "preexcitation", "(AB": "atrial_bigeminy", "(P": "paced",
}
"""MIT-BIH rhythm aux notes -> episode kind; ``(N`` (normal sinus rhythm) is no episode."""


class WfdbReplay:
    """Streams one record's channel, resampled to ``fs``, to every device of the source.

    Args:
        record_path: the record without extension (e.g. ``.../mitdb-ds1/208``).
        fs: the device rate (Hz).
        n_devices: devices replaying it; device ``i`` starts ``offsets[i]`` seconds in.
        window_s: window length (s).
        channel: signal channel; by default the one named ``lead``, else the first.
        lead: the preferred signal name (MIT-BIH studies use MLII).
        offsets: per-device start offsets in seconds (default: spread evenly over the
            record).

    Raises:
        RecordError: the record is missing or unreadable, the channel does not exist, or it
            has no beat annotations.
    """

    units = "mV"

    def __init__(self, record_path: str | Path, fs: float = 250.0, n_devices: int = 1,
                 window_s: float = 10.0, channel: int | None = None,
                 offsets: npt.ArrayLike | None = None, lead: str = "MLII") -> None:
        path = str(record_path)
        self.fs, self.window_s, self.n = fs, window_s, n_devices
        self.samples = round(fs * window_s)
        raw, fs_in, symbols, ann, aux = _read(path, channel, lead)
        ratio = Fraction(fs / fs_in).limit_denominator(1000)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.signal = sps.resample_poly(raw, self.up, self.down).astype(np.float32)
        self.length = len(self.signal)
        if self.length < self.samples:
            raise RecordError(f"{path}: record shorter than one {window_s} s window")
        mapped = np.array([AAMI_MAP.get(s, "") for s in symbols], dtype="U1")
        beat = mapped != ""
        if not beat.any():
            raise RecordError(f"{path}: no beat annotations")
        where = np.rint(ann * self.up / self.down).astype(np.int64) % self.length
        self.beat_sample, self.beat_label = where[beat], mapped[beat]
        self.episodes_table = _rhythms(where, symbols, aux, self.length)
        self.vf_spans = _vf_spans(where, symbols, self.length)
        """``(n, 2)`` [start, end) device samples of annotated flutter/fibrillation."""
        # Default: devices start evenly spread over the record, so they do not stream in step.
        spread = np.arange(n_devices) * (self.length / fs / max(n_devices, 1))
        self._offset = self._starts(spread if offsets is None else offsets)

    def _starts(self, offsets: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Start samples of devices starting ``offsets`` seconds into the record."""
        out: npt.NDArray[np.int64] = (np.rint(np.asarray(offsets, float) * self.fs)
                                      .astype(np.int64) % self.length)
        return out

    def restarted(self, offsets: npt.ArrayLike) -> WfdbReplay:
        """The same record, read and resampled once, replayed by ``len(offsets)`` devices that
        start ``offsets`` seconds in (the evaluation reads each record once this way)."""
        out = copy.copy(self)
        out._offset = self._starts(offsets)
        out.n = len(out._offset)
        return out

    def window(self, t_end: float, idx: npt.NDArray[np.intp]) -> SignalBatch:
        """The window ``[t_end - window_s, t_end)`` of devices ``idx`` (rows in idx order).

        Returns:
            Values ``(len(idx), 1)`` (hr_bpm from the reference beats), the record's samples,
            its annotated beats (AAMI classes) and rhythm episodes starting in the window.
        """
        idx = np.asarray(idx, dtype=np.intp)
        a0 = round((t_end - self.window_s) * self.fs)
        start = (a0 + self._offset[idx]) % self.length
        pos = (start[:, None] + np.arange(self.samples)) % self.length
        sig = self.signal[pos]
        beats, hr, eps = [], np.full((len(idx), 1), np.nan), []
        for row, s0 in enumerate(start.tolist()):
            rel = (self.beat_sample - s0) % self.length
            inside = np.flatnonzero(rel < self.samples)
            order = inside[np.argsort(rel[inside], kind="stable")]
            table = np.empty(len(order), BEAT_DTYPE)
            table["row"], table["sample"] = row, rel[order]
            table["label"], table["t_s"] = self.beat_label[order], (a0 + rel[order]) / self.fs
            beats.append(table)
            if len(order) > 1:
                hr[row, 0] = 60.0 * self.fs / float(np.mean(np.diff(rel[order])))
            eps.append(self._episodes(int(idx[row]), s0, a0))
        return SignalBatch(t_end, hr, sig, self.fs, self.units,
                           np.concatenate(eps) if eps else np.empty(0, EPISODE_DTYPE),
                           np.concatenate(beats) if beats else np.empty(0, BEAT_DTYPE))

    def _episodes(self, device: int, s0: int, a0: int) -> npt.NDArray[np.void]:
        """Rhythm episodes of the record that start in this device's window."""
        table = self.episodes_table
        rel = (table["start"] - s0) % self.length
        hit = table[rel < self.samples]
        out = np.empty(len(hit), EPISODE_DTYPE)
        out["device"], out["kind"] = device, hit["kind"]
        begin = (a0 + rel[rel < self.samples]) / self.fs
        out["start_s"], out["end_s"] = begin, begin + hit["length"] / self.fs
        return out


def _read(path: str, channel: int | None, lead: str
          ) -> tuple[npt.NDArray[np.float64], float, list[str], npt.NDArray[np.int64], list[str]]:
    """The channel's physical samples, its rate, and the reference annotations."""
    import wfdb

    try:
        record = wfdb.rdrecord(path)
        ann = wfdb.rdann(path, "atr")
    except (OSError, ValueError, IndexError, TypeError) as exc:
        raise RecordError(f"{path}: cannot read WFDB record ({exc})") from None
    if channel is None:
        names = list(record.sig_name or [])
        channel = names.index(lead) if lead in names else 0
    if record.p_signal is None or not 0 <= channel < record.p_signal.shape[1]:
        raise RecordError(f"{path}: no signal channel {channel}")
    raw = np.nan_to_num(np.asarray(record.p_signal[:, channel], dtype=np.float64))
    aux = [str(a).strip("\x00 ") for a in (ann.aux_note or [""] * len(ann.sample))]
    return raw, float(record.fs), list(ann.symbol), np.asarray(ann.sample, np.int64), aux


def _rhythms(where: npt.NDArray[np.int64], symbols: list[str], aux: list[str], length: int
             ) -> npt.NDArray[np.void]:
    """Rhythm intervals ``(start sample, length, kind)`` from the ``+`` annotations."""
    dtype = np.dtype([("start", np.int64), ("length", np.int64), ("kind", "U32")])
    marks = [(int(w), a) for w, s, a in zip(where, symbols, aux, strict=True) if s == "+"]
    rows = []
    for i, (w, note) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else length
        kind = RHYTHM_EPISODES.get(note)
        if kind is not None and end > w:
            rows.append((w, end - w, kind))
    return np.array(rows, dtype=dtype)


def _vf_spans(where: npt.NDArray[np.int64], symbols: list[str], length: int
              ) -> npt.NDArray[np.int64]:
    """``[`` ... ``]`` intervals as ``(n, 2)`` [start, end); an open ``[`` runs to the end."""
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for w, s in zip(where.tolist(), symbols, strict=True):
        if s == "[" and start is None:
            start = w
        elif s == "]" and start is not None:
            spans.append((start, w + 1))
            start = None
    if start is not None:
        spans.append((start, length))
    return np.array(spans, np.int64).reshape(-1, 2)
