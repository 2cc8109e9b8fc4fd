"""The ECG patch's model: beat classes (N S V F) and atrial fibrillation, per fleet batch.

One call scores every window of a batch: beats are detected and featurised for all windows
at once (:mod:`devices.tinyml.features`: each beat against its window's template, ADR 0015,
and against the reference beat its patch carries from earlier windows, ADR 0017),
the int8 model runs once on all their beats, and the per-beat outputs are folded back into
per-window results::

    model = EcgModel.load()
    result = model.score(batch.signal, batch.fs)      # (n, samples) mV -> EcgResult
    kept = result.beats.carried                       # the patches' reference beats...
    later = model.score(next_batch.signal, next_batch.fs, previous=kept)  # ...carried on
    result.score, result.flag, result.labels(row)     # (n,), (n,) bool, ("pvc", "af")

Flags: a beat is ventricular if P(V) >= :data:`V_THRESHOLD` (likewise S) and the window does
not cut it (:attr:`~devices.tinyml.features.BeatBatch.whole`); a window is in AF
if it has at least :data:`AF_MIN_BEATS` beats and their mean AF output is at least
:data:`AF_THRESHOLD`. A window's anomaly score is the larger of its most abnormal whole
beat's 1 - P(N) and its AF probability. The thresholds are fixed before any validation patient
is scored (they are the natural 0.5 of a softmax/sigmoid), never tuned on held-out records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.tinyml.dataset import CLASSES
from devices.tinyml.errors import ModelError
from devices.tinyml.features import DELTA_LEN, N_CONTEXT, BeatBatch, extract
from devices.tinyml.runtime import TinyModel, model_path

ECG_MODEL = "ecg_beat_af"
"""File name (without ``.tflite``) of the shipped ECG model."""
TRAINING_RECORDS = frozenset({"101", "106", "109", "114", "116", "118", "119", "124", "203",
                              "205", "207", "209", "215", "223", "230"})
"""MIT-BIH records whose beats trained the shipped model (seeded patient split, seed 0); the
other DS1 records (108 112 115 122 201 208 220) are its validation patients."""
DETECTED_EPISODES = ("pvc_single", "pvc_couplet", "bigeminy", "pvc", "vt", "af")
"""The physiology's ECG episode kinds this model's flag is meant to raise (ventricular beats and
AF). S beats are labelled (``pac``) but do not raise the flag (S +P is 32-60 % across
patients, see the model card), so PAC
episodes are not scored against it; rate, ST and electrode episodes are not its business."""
V_THRESHOLD = 0.5
S_THRESHOLD = 0.5
AF_THRESHOLD = 0.5
AF_MIN_BEATS = 4
FloatArray = npt.NDArray[np.float32]
Runner = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]
"""``(delta (m, DELTA_LEN), context (m, N_CONTEXT)) -> (class probs (m, 4), af (m,))``."""


@dataclass(frozen=True, eq=False)
class EcgResult:
    """What the model says about a batch of windows.

    Attributes:
        score: ``(n,)`` anomaly score per window, 0..1.
        flag: ``(n,)`` whether the window raised any flag (a V beat or AF).
        v_beats, s_beats: ``(n,)`` flagged ventricular / supraventricular beats per window.
        af: ``(n,)`` whether the window is flagged as atrial fibrillation.
        af_prob: ``(n,)`` mean AF output over the window's beats (0 without beats).
        beats: the detected beats (rows, R samples at 250 Hz, inputs).
        probs: ``(m, 4)`` per-beat class probabilities in :data:`CLASSES` order.
        beat_af: ``(m,)`` per-beat AF output.
    """

    score: FloatArray
    flag: npt.NDArray[np.bool_]
    v_beats: npt.NDArray[np.int64]
    s_beats: npt.NDArray[np.int64]
    af: npt.NDArray[np.bool_]
    af_prob: FloatArray
    beats: BeatBatch
    probs: FloatArray
    beat_af: FloatArray

    @property
    def beat_v(self) -> npt.NDArray[np.bool_]:
        """Which detected beats are flagged ventricular (never one the window cuts)."""
        return _flagged(self.probs, self.beats, "V")

    @property
    def beat_s(self) -> npt.NDArray[np.bool_]:
        """Which detected beats are flagged supraventricular (never one the window cuts)."""
        return _flagged(self.probs, self.beats, "S")

    def labels(self, row: int) -> tuple[str, ...]:
        """The flags of window ``row`` as telemetry labels: ``pvc``, ``pac``, ``af``."""
        names = (("pvc", self.v_beats[row] > 0), ("pac", self.s_beats[row] > 0),
                 ("af", bool(self.af[row])))
        return tuple(name for name, on in names if on)


class EcgModel:
    """The ECG beat/AF model behind a batch-first interface.

    Args:
        runner: what computes the per-beat outputs; :meth:`load` gives the shipped int8
            model run by LiteRT (training passes a float Keras model to compare).
        size_bytes: the model file's size (0 if not a file).
    """

    def __init__(self, runner: Runner, size_bytes: int = 0) -> None:
        self._runner = runner
        self.size_bytes = size_bytes

    @classmethod
    def load(cls, path: str | None = None) -> EcgModel:
        """The shipped int8 model (or the ``.tflite`` at ``path``) on the process's interpreter.

        Raises:
            ModelError: the file is missing or does not have the expected inputs/outputs.
        """
        tiny = TinyModel.load(path or model_path(ECG_MODEL))
        return cls(_tflite_runner(tiny), tiny.size_bytes)

    def score(self, signal: npt.ArrayLike, fs: float, device: npt.ArrayLike | None = None,
              previous: npt.ArrayLike | None = None) -> EcgResult:
        """Score a batch of ECG windows.

        Args:
            signal: ``(n, samples)`` ECG in mV (float32), one window per row.
            fs: its sampling rate (Hz); resampled to 250 Hz if different.
            device: each window's device, the windows of one device in time order
                (default: one device a window, as in a fleet batch).
            previous: each device's reference beat carried from its earlier windows
                (:attr:`devices.tinyml.features.BeatBatch.carried` of the last batch;
                default: none yet). See :func:`devices.tinyml.features.extract`.

        Returns:
            Per-window scores and flags, and per-beat outputs.

        Raises:
            InputError: a batch that is not 2-D, below 100 Hz, or shorter than 2 s a window,
                or devices that do not fit it.
        """
        beats = extract(signal, fs, device, previous)
        probs, beat_af = self._runner(beats.delta, beats.context)
        return fold(beats, probs, beat_af)


def _flagged(probs: FloatArray, beats: BeatBatch, cls: str) -> npt.NDArray[np.bool_]:
    """The beats flagged with class ``cls`` ("V" or "S"): its probability at or over its
    threshold, and the beat whole in its window."""
    threshold = {"V": V_THRESHOLD, "S": S_THRESHOLD}[cls]
    out: npt.NDArray[np.bool_] = (probs[:, CLASSES.index(cls)] >= threshold) & beats.whole
    return out


def worst_beat(beats: BeatBatch, probs: FloatArray) -> FloatArray:
    """Each window's most abnormal whole beat, 1 - P(N); 0 for a window without any."""
    worst = np.zeros(beats.n_rows, np.float32)
    np.maximum.at(worst, beats.row[beats.whole], 1.0 - probs[beats.whole, CLASSES.index("N")])
    return worst


def fold(beats: BeatBatch, probs: FloatArray, beat_af: FloatArray) -> EcgResult:
    """Per-beat outputs folded into per-window results (see the module's flag rules)."""
    n, row = beats.n_rows, beats.row
    count = np.bincount(row, minlength=n)
    beat_v, beat_s = _flagged(probs, beats, "V"), _flagged(probs, beats, "S")
    v = np.bincount(row, weights=beat_v, minlength=n).astype(np.int64)
    s = np.bincount(row, weights=beat_s, minlength=n).astype(np.int64)
    af_prob = (np.bincount(row, weights=beat_af, minlength=n) / np.maximum(count, 1))
    af = (af_prob >= AF_THRESHOLD) & (count >= AF_MIN_BEATS)
    worst = worst_beat(beats, probs)
    score = np.maximum(worst, np.where(count >= AF_MIN_BEATS, af_prob, 0.0)).astype(np.float32)
    return EcgResult(np.clip(score, 0.0, 1.0), (v > 0) | af, v, s, af,
                     af_prob.astype(np.float32), beats, probs, beat_af)


def _tflite_runner(tiny: TinyModel) -> Runner:
    """Map the int8 model's named inputs and outputs to the :data:`Runner` contract."""
    want = {"delta": (DELTA_LEN,), "context": (N_CONTEXT,)}
    order = []
    for key, shape in want.items():
        hits = [i for i, name in enumerate(tiny.input_names) if key in name]
        if len(hits) != 1 or tiny.input_shapes[hits[0]] != shape:
            raise ModelError(f"{tiny.path}: expected one input {key!r} of shape {shape}, "
                             f"got {list(zip(tiny.input_names, tiny.input_shapes, strict=True))}")
        order.append(hits[0])
    outs = sorted(tiny.output_shapes)
    if outs != sorted([(1,), (len(CLASSES),)]):
        raise ModelError(f"{tiny.path}: expected outputs of shapes (1,) and "
                         f"({len(CLASSES)},), got {tiny.output_shapes}")
    k_cls, k_af = tiny.output_shapes.index((len(CLASSES),)), tiny.output_shapes.index((1,))

    def run(delta: FloatArray, context: FloatArray) -> tuple[FloatArray, FloatArray]:
        inputs: list[FloatArray] = [np.empty(0, np.float32)] * 2
        inputs[order[0]], inputs[order[1]] = delta, context
        outs = tiny.run(*inputs)
        return outs[k_cls], outs[k_af][:, 0]

    return run
