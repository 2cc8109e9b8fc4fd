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
from devices.tinyml.features import N_RHYTHM, SEG_LEN

AF_RECORDS = ("201", "203")
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
    seg = np.concatenate([p.beats.segment for p in parts])
    rhy = np.concatenate([p.beats.rhythm for p in parts])
    lab = np.concatenate([p.label for p in parts])
    af = np.concatenate([p.af for p in parts]).astype(np.float32)
    keep = lab >= 0
    return {"segment": seg[keep], "rhythm": rhy[keep], "label": lab[keep], "af": af[keep]}


def build_model(seed: int) -> Any:
    """The 1-D CNN: beat shape through three convolutions, rhythm through a dense layer."""
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.utils.set_random_seed(seed)
    seg = keras.Input((SEG_LEN, 1), name="segment")
    rhy = keras.Input((N_RHYTHM,), name="rhythm")
    x = keras.layers.Conv1D(12, 7, strides=2, activation="relu")(seg)
    x = keras.layers.Conv1D(16, 5, strides=2, activation="relu")(x)
    x = keras.layers.Conv1D(16, 3, strides=2, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    r = keras.layers.Dense(16, activation="relu")(rhy)
    z = keras.layers.Concatenate()([x, r])
    z = keras.layers.Dense(32, activation="relu")(z)
    z = keras.layers.Dropout(0.2)(z)
    cls = keras.layers.Dense(len(CLASSES), activation="softmax", name="beat_class")(z)
    af = keras.layers.Dense(1, activation="sigmoid", name="af")(z)
    model = keras.Model([seg, rhy], [cls, af])
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss={"beat_class": "sparse_categorical_crossentropy",
                        "af": "binary_crossentropy"},
                  loss_weights={"beat_class": 1.0, "af": 0.5})
    return model


def _augment(data: dict[str, npt.NDArray[Any]], rng: np.random.Generator
             ) -> dict[str, npt.NDArray[Any]]:
    """Per-epoch augmentation: amplitude x0.6-1.5, sign flip of 5 %, +-2 sample shift, noise."""
    seg = data["segment"]
    n = len(seg)
    gain = rng.uniform(0.6, 1.5, n).astype(np.float32)
    gain[rng.random(n) < 0.05] *= -1.0
    shift = rng.integers(-2, 3, n)
    idx = np.clip(np.arange(SEG_LEN)[None, :] + shift[:, None], 0, SEG_LEN - 1)
    out = np.take_along_axis(seg, idx, axis=1) * gain[:, None]
    out += rng.normal(0, 0.03, out.shape).astype(np.float32)
    rhy = data["rhythm"] * rng.uniform(0.97, 1.03, (n, 1)).astype(np.float32)
    return {**data, "segment": out.astype(np.float32), "rhythm": np.clip(rhy, 0, 4)}


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
        hist = model.fit({"segment": data["segment"][:, :, None], "rhythm": data["rhythm"]},
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
            yield {"segment": rep["segment"][i][None, :, None],
                   "rhythm": rep["rhythm"][i][None, :]}

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    out: bytes = conv.convert()
    return out


def load_sources(data: Path, names: list[str], synthetic: bool, seed: int,
                 log: Any) -> list[LabelledWindows]:
    """The records ``names`` (and, if asked, the twin's synthetic rhythms)."""
    parts = []
    for name in names:
        parts.append(record_windows(data / name))
        log(f"record {name}: {len(parts[-1].beats)} beats")
    if synthetic:
        for k, rhythm in enumerate(SYNTHETIC):
            parts.append(synthetic_windows(rhythm, devices=24, windows=12, seed=seed * 100 + k))
        log(f"synthetic: {sum(len(p.beats) for p in parts[-len(SYNTHETIC):])} beats")
    return parts
