"""Training the BP and sweat models on the twin's own signals (needs tensorflow-cpu).

Training cohorts and validation cohorts are different synthetic patients (different seeds).
Labels are the physiology's ground truth: the episode active at each window's end. Episode
rates are raised (x20) so that every kind is seen often; "none" windows are subsampled.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.physiology import BpSource, CohortParams, SweatSource
from devices.tinyml.energy import count_macs
from devices.tinyml.runtime import TinyModel
from devices.tinyml.vitals import EPISODES, FEATURES, N_FEATURES, THRESHOLDS, VitalsModel, fold
from twin.core.seeds import SeedTree

RATE = {"bp": 20.0, "sweat": 4.0}
"""Episode-rate multipliers: sweat episodes last hours, so x20 would put most windows in one
and teach the model that anomalies are the norm (it then flagged half the quiet windows)."""
SOURCES: dict[str, type[BpSource] | type[SweatSource]] = {"bp": BpSource,
                                                          "sweat": SweatSource}


def windows(kind: str, devices: int, hours: float, seed: int
            ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Features and labels of every window of a synthetic cohort."""
    cohort = CohortParams(episode_rate=RATE[kind])
    src: BpSource | SweatSource = SOURCES[kind](devices, cohort, SeedTree(seed))
    xs, ys = [], []
    for batch, label in labelled_windows(kind, src, devices, int(hours * 360)):
        xs.append(FEATURES[kind](batch))
        ys.append(label)
    return np.concatenate(xs), np.concatenate(ys)


def labelled_windows(kind: str, src: BpSource | SweatSource, devices: int, n: int
                     ) -> Iterator[tuple[Any, npt.NDArray[np.int64]]]:
    """The first ``n`` 10 s windows of every device, each with the episode class active at
    its end (0 = none), the ground truth both training and threshold calibration score."""
    idx = np.arange(devices)
    classes = EPISODES[kind]
    for k in range(n):
        t_end = 10.0 * (k + 1)
        batch = src.window(t_end, idx)
        label = np.zeros(devices, np.int64)
        for c, name in enumerate(classes[1:], start=1):
            label[src.episodes.active(name, t_end, idx)] = c
        yield batch, label


def _model(n_in: int, n_out: int, seed: int) -> Any:
    import tensorflow as tf
    from tensorflow import keras

    tf.keras.backend.clear_session()  # fresh layer names, so a kind trains the same after another
    tf.keras.utils.set_random_seed(seed)
    x = keras.Input((n_in,), name="features")
    h = keras.layers.Dense(24, activation="relu")(x)
    h = keras.layers.Dense(16, activation="relu")(h)
    out = keras.layers.Dense(n_out, activation="softmax", name="episode")(h)
    model = keras.Model(x, out)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    return model


def _quantise(model: Any, x: npt.NDArray[np.float32]) -> bytes:
    import tensorflow as tf

    def rep() -> Any:
        for row in x[:2000]:
            yield [row[None, :]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    out: bytes = conv.convert()
    return out


def _metrics(flag: npt.NDArray[np.bool_], y: npt.NDArray[np.int64], classes: tuple[str, ...]
             ) -> dict[str, Any]:
    per = {name: round(float(flag[y == c].mean()), 4) if (y == c).any() else None
           for c, name in enumerate(classes) if c}
    tp, fp = int((flag & (y > 0)).sum()), int((flag & (y == 0)).sum())
    return {"window_sensitivity": per,
            "specificity": round(float(1 - flag[y == 0].mean()), 4),
            "ppv": round(tp / (tp + fp), 4) if tp + fp else None}


def train_one(kind: str, args: argparse.Namespace, log: Callable[[str], None]
              ) -> dict[str, Any]:
    """Train, quantise, validate and document one kind's model."""
    classes = EPISODES[kind]
    x, y = windows(kind, 300, 4.0, args.seed * 10 + 1)
    rng = np.random.default_rng(args.seed)
    log(f"{kind}: {len(y)} training windows, by class {np.bincount(y).tolist()}")
    model = _model(x.shape[1], len(classes), args.seed)
    model.fit(x, y, epochs=args.epochs, batch_size=512, verbose=0)
    out = Path(args.out)
    path = out / f"vitals_{kind}.tflite"
    path.write_bytes(_quantise(model, x[rng.permutation(len(x))]))
    xv, yv = windows(kind, 200, 4.0, args.seed * 10 + 2)
    q = VitalsModel.load(kind, str(path)).score(xv)
    f = fold(model.predict(xv, batch_size=8192, verbose=0).astype(np.float32), classes,
             THRESHOLDS[kind])
    tiny = TinyModel.load(str(path))
    summary = {"kind": kind, "bytes": tiny.size_bytes, **count_macs(tiny),
               "classes": classes, "validation": _metrics(q.flag, yv, classes),
               "validation_windows": len(yv),
               "agreement": round(float((q.flag == f.flag).mean()), 4)}
    (out / f"vitals_{kind}.md").write_text(card(summary, args))
    log(str(summary))
    return summary


def train_vitals(args: argparse.Namespace, log: Callable[[str], None]) -> None:
    """Train the vitals models (``args.kinds``, default both)."""
    for kind in getattr(args, "kinds", None) or ("bp", "sweat"):
        train_one(kind, args, log)


def card(s: dict[str, Any], args: argparse.Namespace) -> str:
    """The vitals model's card (Markdown)."""
    feats = {"bp": "sys/100, dia/100, pulse pressure/100, MAP/100, change of the pulse wave's "
                   "systolic and diastolic envelope across the window /10",
             "sweat": "Na/100, K/10, Cl/100, sweat rate (L/h), (Cl-Na)/50, Cl/Na, sodium "
                      "trend across the window /10, sodium s.d."}[s["kind"]]
    v = s["validation"]
    sens = "\n".join(f"| {k} | {'n/a' if x is None else f'{100 * x:.1f} %'} |"
                     for k, x in v["window_sensitivity"].items())
    return f"""# Model card: `vitals_{s['kind']}.tflite`

Per-window episode classifier for the {s['kind']} device (`devices.tinyml.vitals.VitalsModel`).

* **Size**: {s['bytes']} bytes. **MACs per inference (one window)**: {s['macs']:,} in
  {s['ops']} operators.
* **Input** `features` ({N_FEATURES[s['kind']]}): {feats}.
* **Output** softmax over {', '.join(s['classes'])}; score = 1 - P(none), flag at
  >= {THRESHOLDS[s['kind']]} (chosen on validation patients, `devices.tinyml.calibrate_vitals`).
* **Quantisation**: full-integer int8 (inputs, weights, activations, outputs). int8 and float
  models agree on **{100 * s['agreement']:.1f} %** of validation window flags.
* **Training data**: the twin's own synthetic patients (`devices.physiology`, episode rates
  x{RATE[s['kind']]:g}), 300 patients x 4 h of 10-s windows, seed {args.seed * 10 + 1};
  {args.epochs} epochs, unweighted cross-entropy (flags keep the natural prior, so
  specificity stays high).
* **Validation**: 200 different synthetic patients x 4 h (seed {args.seed * 10 + 2}),
  {s['validation_windows']:,} windows, never used in training.

| episode active at window end | windows flagged |
| --- | --- |
{sens}

Specificity (windows without an episode not flagged): {100 * v['specificity']:.1f} %;
positive predictivity of flags: {'n/a' if v['ppv'] is None else f"{100 * v['ppv']:.1f} %"}.
Episodes whose signature is relative to the patient's own baseline (white-coat rise,
slow sensor drift) are hard from one window; the cloud sees the series.
"""
