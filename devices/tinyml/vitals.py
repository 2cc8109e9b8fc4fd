"""The BP cuff's and sweat patch's models: episode flags from one window's features.

Each kind has its own tiny int8 classifier over a handful of window features (what an MCU
computes in a few hundred cycles from the values and waveform of the window)::

    model = VitalsModel.load("bp")                    # or "sweat"
    result = model.score(model.features(batch))       # (n, k) -> VitalsResult
    result.score, result.flag, result.kind            # (n,), (n,) bool, (n,) episode name

The output is a softmax over "none" and the kind's episodes (:data:`EPISODES`); the score is
1 - P(none) and the flag fires at the kind's :data:`THRESHOLDS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.physiology import BP_EPISODES, SWEAT_EPISODES, SignalBatch
from devices.tinyml.errors import InputError, ModelError
from devices.tinyml.runtime import TinyModel, model_path

EPISODES = {
    "bp": ("none", *(s.name for s in BP_EPISODES)),
    "sweat": ("none", *(s.name for s in SWEAT_EPISODES)),
}
"""Output classes of each kind's model, in order."""
N_FEATURES = {"bp": 6, "sweat": 8}
THRESHOLDS = {"bp": 0.975, "sweat": 0.625}
"""Flag thresholds on the score, chosen on validation patients at the ward's natural episode
rates (``python -m devices.tinyml.calibrate_vitals``: seed 3, 200 patients x 4 h, best
harmonic mean of episode sensitivity and window PPV; 2-3 consecutive windows of persistence
were tried and did worse than a higher threshold). At 0.5 the models, trained with episodes
x20 (BP) and x4 (sweat) as often, flagged far too much. On another cohort (seed 4) the
change gives BP sensitivity 0.99 -> 0.77, PPV 0.26 -> 0.96; sweat 0.64 -> 0.52, 0.45 -> 0.63."""
FloatArray = npt.NDArray[np.float32]


def bp_features(batch: SignalBatch) -> FloatArray:
    """Six features of a BP window: level, pulse pressure, MAP, and the trend within it.

    The pulse wave moves from the previous window's pressures to this one's, so the change of
    its systolic (max) and diastolic (min) envelope between the first and the last 2 s is the
    trend. Scaled to about unit range: ``sys/100, dia/100, pp/100, map/100, dsys/10, ddia/10``.
    """
    v, w = np.asarray(batch.values, np.float64), np.asarray(batch.signal, np.float64)
    if v.ndim != 2 or v.shape[1] != 2 or w.ndim != 2:
        raise InputError(f"BP batch needs values (n, 2) and a 2-D wave, got {v.shape}, {w.shape}")
    k = max(1, round(2.0 * batch.fs))
    dsys = w[:, -k:].max(axis=1) - w[:, :k].max(axis=1)
    ddia = w[:, -k:].min(axis=1) - w[:, :k].min(axis=1)
    sys, dia = v[:, 0], v[:, 1]
    feats = np.column_stack([sys / 100, dia / 100, (sys - dia) / 100, (dia + (sys - dia) / 3)
                             / 100, dsys / 10, ddia / 10])
    out: FloatArray = np.nan_to_num(feats).astype(np.float32)
    return out


def sweat_features(batch: SignalBatch) -> FloatArray:
    """Eight features of a sweat window: levels, chloride above sodium, and the sodium trend.

    ``na/100, k/10, cl/100, rate (L/h), (cl-na)/50, cl/na, trend/10, sd`` where trend is the
    sodium reading's change across the window and sd its standard deviation (mmol/L).
    """
    v, w = np.asarray(batch.values, np.float64), np.asarray(batch.signal, np.float64)
    if v.ndim != 2 or v.shape[1] != 4 or w.ndim != 2:
        raise InputError(f"sweat batch needs values (n, 4) and a 2-D signal, got {v.shape}")
    na, k, cl, rate = v.T
    feats = np.column_stack([na / 100, k / 10, cl / 100, rate, (cl - na) / 50,
                             cl / np.maximum(na, 1.0), (w[:, -1] - w[:, 0]) / 10, w.std(axis=1)])
    out: FloatArray = np.clip(np.nan_to_num(feats), -4, 4).astype(np.float32)
    return out


FEATURES = {"bp": bp_features, "sweat": sweat_features}


@dataclass(frozen=True, eq=False)
class VitalsResult:
    """What a vitals model says about a batch of windows.

    Attributes:
        score: ``(n,)`` 1 - P(none), 0..1.
        flag: ``(n,)`` score >= the kind's threshold (:data:`THRESHOLDS`).
        kind: ``(n,)`` the most likely episode name where flagged, ``""`` otherwise.
        probs: ``(n, classes)`` softmax in :data:`EPISODES` order.
    """

    score: FloatArray
    flag: npt.NDArray[np.bool_]
    kind: npt.NDArray[np.str_]
    probs: FloatArray


class VitalsModel:
    """The shipped int8 model of one vitals kind (``"bp"`` or ``"sweat"``).

    Args:
        kind: ``"bp"`` or ``"sweat"``.
        tiny: its loaded model.

    Raises:
        ModelError: the model's input or output width does not match the kind.
    """

    def __init__(self, kind: str, tiny: TinyModel) -> None:
        self.kind, self._tiny = kind, tiny
        self.classes = EPISODES[kind]
        if tiny.input_shapes != [(N_FEATURES[kind],)] or tiny.output_shapes != [
                (len(self.classes),)]:
            raise ModelError(f"{tiny.path}: not a {kind} vitals model (inputs "
                             f"{tiny.input_shapes}, outputs {tiny.output_shapes})")
        self.size_bytes = tiny.size_bytes

    @classmethod
    def load(cls, kind: str, path: str | None = None) -> VitalsModel:
        """The shipped model of ``kind`` (or the ``.tflite`` at ``path``).

        Raises:
            ModelError: an unknown kind, or a missing or mismatched model file.
        """
        if kind not in EPISODES:
            raise ModelError(f"no vitals model for {kind!r} (known: bp, sweat)")
        return cls(kind, TinyModel.load(path or model_path(f"vitals_{kind}")))

    def features(self, batch: SignalBatch) -> FloatArray:
        """The model's input features of a batch of windows of this kind."""
        return FEATURES[self.kind](batch)

    def score(self, features: npt.ArrayLike) -> VitalsResult:
        """Score ``(n, k)`` window features (from :meth:`features`).

        Raises:
            InputError: features of the wrong width.
        """
        x = np.asarray(features, np.float32)
        probs = self._tiny.run(x)[0]
        return fold(probs, self.classes, THRESHOLDS[self.kind])


def fold(probs: FloatArray, classes: tuple[str, ...], threshold: float = 0.5) -> VitalsResult:
    """Softmax outputs to scores, flags (at ``threshold``) and episode names."""
    score = np.clip(1.0 - probs[:, 0], 0.0, 1.0).astype(np.float32)
    flag = score >= threshold
    best = np.argmax(probs[:, 1:], axis=1) + 1 if len(probs) else np.zeros(0, np.int64)
    names = np.array(classes)[best] if len(probs) else np.zeros(0, "U1")
    return VitalsResult(score, flag, np.where(flag, names, ""), probs)
