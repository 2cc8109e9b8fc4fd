"""Training the ECG beat/AF model (needs the ``train`` extra: tensorflow-cpu).

Called by :mod:`devices.tinyml.train`. The split is by patient (record): validation records
are drawn with a seeded permutation before anything is trained and never contribute a beat
to training or to any choice of threshold, epoch or architecture made by this script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.tinyml.dataset import CLASSES, LabelledWindows, record_windows, synthetic_windows
from devices.tinyml.features import DELTA_LEN, N_AF_INPUTS, N_CONTEXT
from devices.tinyml.rhythm import N_RHYTHM

AF_RECORDS = ("201", "203")
SYNTHETIC_WINDOWS = 3
"""10-s windows per synthetic patient and rhythm."""
SYNTHETIC = ("sinus", "af", "bigeminy", "pvc", "vt", "tachy", "brady")


def split_records(names: list[str], seed: int, n_val: int) -> tuple[list[str], list[str]]:
    """Seeded patient-level split; redraws until one known AF record is on each side.

    Returns:
        ``(train, validation)`` record names, sorted.
    """
    draw = 0
    while True:
        perm = np.random.default_rng([seed, draw]).permutation(sorted(names)).tolist()
        val = perm[:n_val]
        af_val = sum(r in val for r in AF_RECORDS if r in names)
        if af_val == 1 or sum(r in names for r in AF_RECORDS) < 2 or draw > 100:
            return sorted(perm[n_val:]), sorted(val)
        draw += 1


def stack(parts: list[LabelledWindows]) -> dict[str, npt.NDArray[Any]]:
    """Concatenate beats of several sources (Q beats dropped)."""
    delta = np.concatenate([p.beats.delta for p in parts])
    ctx = np.concatenate([p.beats.context for p in parts])
    lab = np.concatenate([p.label for p in parts])
    af = np.concatenate([p.af for p in parts]).astype(np.float32)
    keep = lab >= 0
    return {"delta": delta[keep], "context": ctx[keep], "label": lab[keep], "af": af[keep]}


def build_model(seed: int) -> Any:
    """A small multilayer perceptron over the beat-minus-template and context features.

    Chosen over the 1-D CNN of the first model by leave-three-patients-out cross-validation
    on the training patients (ventricular Se/+P 68/26 % for that CNN on absolute beat shapes;
    76-77/76-78 % for this on template-relative inputs, two seeds; 32/16 units gave 73-76/
    69-73, 64/32 77/71) and because LiteRT runs it far faster: a dense layer is one int8
    matrix product, where a 1-D convolution is a reshaped 2-D one (~0.9 us a beat for the
    30k-MAC CNN, ~0.03 us for this).
    """
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    delta = keras.Input((DELTA_LEN,), name="delta")
    ctx = keras.Input((N_CONTEXT,), name="context")
    z = keras.layers.Concatenate()([delta, ctx])
    z = keras.layers.Dense(48, activation="relu")(z)
    z = keras.layers.Dense(24, activation="relu")(z)
    z = keras.layers.Dropout(0.1)(z)
    cls = keras.layers.Dense(len(CLASSES), activation="softmax", name="beat_class")(z)
    # AF is read from RR irregularity and the template's missing P wave: its head sees those
    # features only, so that it cannot learn the beat shapes of the two real AF patients.
    rhythm = keras.layers.Lambda(lambda c: c[:, :N_AF_INPUTS], name="rhythm_and_atrial")(ctx)
    r = keras.layers.Dense(8, activation="relu")(rhythm)
    af = keras.layers.Dense(1, activation="sigmoid", name="af")(r)
    model = keras.Model([delta, ctx], [cls, af])
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss={"beat_class": "sparse_categorical_crossentropy",
                        "af": "binary_crossentropy"},
                  loss_weights={"beat_class": 1.0, "af": 0.5})
    return model


def _augment(data: dict[str, npt.NDArray[Any]], rng: np.random.Generator
             ) -> dict[str, npt.NDArray[Any]]:
    """Per-epoch augmentation: residual amplitude x0.6-1.5 (sign flipped for 5 %) plus
    noise, and rhythm features x0.97-1.03 (the morphology ratios are scale-free)."""
    delta = data["delta"]
    n = len(delta)
    gain = rng.uniform(0.6, 1.5, n).astype(np.float32)
    gain[rng.random(n) < 0.05] *= -1.0
    out = delta * gain[:, None] + rng.normal(0, 0.03, delta.shape).astype(np.float32)
    ctx = data["context"].copy()
    ctx[:, :N_RHYTHM] = np.clip(ctx[:, :N_RHYTHM] * rng.uniform(0.97, 1.03, (n, 1)), 0, 4)
    return {**data, "delta": out.astype(np.float32), "context": ctx}


def fit(train: dict[str, npt.NDArray[Any]], epochs: int, seed: int,
        log: Any) -> Any:
    """Train with class weights (inverse square-root frequency) and fresh augmentation."""
    model = build_model(seed)
    rng = np.random.default_rng(seed)
    freq = np.bincount(train["label"], minlength=len(CLASSES)).astype(float)
    weight = np.sqrt(freq.max() / np.maximum(freq, 1.0))
    sample_w = weight[train["label"]].astype(np.float32)
    for epoch in range(epochs):
        data = _augment(train, rng)
        hist = model.fit({"delta": data["delta"], "context": data["context"]},
                         [data["label"], data["af"]],
                         sample_weight=[sample_w, np.ones_like(sample_w)],
                         batch_size=256, epochs=1, verbose=0, shuffle=True)
        log(f"epoch {epoch + 1}/{epochs}: loss {hist.history['loss'][-1]:.4f}")
    return model


def quantise(model: Any, rep: dict[str, npt.NDArray[Any]], seed: int) -> bytes:
    """Full-integer post-training quantisation (int8 weights, activations, inputs, outputs)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(rep["label"]), size=min(2000, len(rep["label"])), replace=False)

    def representative() -> Any:
        for i in pick:
            yield {"delta": rep["delta"][i][None, :], "context": rep["context"][i][None, :]}

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    out: bytes = conv.convert()
    return out


def keras_runner(model: Any) -> Any:
    """A float Keras model as an :data:`devices.tinyml.ecg.Runner`."""
    def run(delta: npt.NDArray[Any], context: npt.NDArray[Any]
            ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        if not len(delta):
            return np.zeros((0, len(CLASSES)), np.float32), np.zeros(0, np.float32)
        cls, af = model.predict({"delta": delta, "context": context}, batch_size=4096,
                                verbose=0)
        return cls.astype(np.float32), af[:, 0].astype(np.float32)
    return run


def cross_validate(parts: list[LabelledWindows], epochs: int, seed: int, folds: int,
                   log: Any) -> list[dict[str, Any]]:
    """Leave-patients-out cross-validation on the *training* patients only.

    The real records are dealt into ``folds`` groups (sorted names, every ``folds``-th); each
    group is scored by a model trained on the others plus the synthetic rhythms. This is how
    the inputs and the architecture were chosen, without looking at the validation patients.

    Returns:
        One :func:`devices.tinyml.evaluate.record_report` per real training record.
    """
    from devices.tinyml import evaluate as ev
    from devices.tinyml.ecg import fold

    real = sorted((p for p in parts if not p.name.startswith("synthetic")),
                  key=lambda p: p.name)
    synthetic = [p for p in parts if p.name.startswith("synthetic")]
    reports = []
    for k in range(folds):
        held = real[k::folds]
        rest = [p for p in real if p not in held] + synthetic
        model = fit(stack(rest), epochs, seed, lambda _line: None)
        run = keras_runner(model)
        for lw in held:
            reports.append(ev.record_report(lw, fold(lw.beats, *run(lw.beats.delta,
                                                                     lw.beats.context))))
        log(f"cross-validation fold {k + 1}/{folds}: {[p.name for p in held]}")
    return reports


def load_sources(data: Path, names: list[str], synthetic: bool, seed: int,
                 log: Any) -> list[LabelledWindows]:
    """The records ``names`` (and, if asked, the twin's synthetic rhythms)."""
    parts = []
    for name in names:
        parts.append(record_windows(data / name))
        log(f"record {name}: {len(parts[-1].beats)} beats")
    if synthetic:
        for k, rhythm in enumerate(SYNTHETIC):
            parts.append(synthetic_windows(rhythm, devices=24, windows=SYNTHETIC_WINDOWS,
                                              seed=seed * 100 + k))
        log(f"synthetic: {sum(len(p.beats) for p in parts[-len(SYNTHETIC):])} beats")
    return parts
