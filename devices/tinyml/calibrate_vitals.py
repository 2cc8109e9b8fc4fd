"""Choosing the vitals models' flag thresholds on validation patients (no TensorFlow needed).

The vitals models were trained with episode rates raised (x20 BP, x4 sweat) so every kind is
seen often, which also raises their prior: at the ward's natural rates a 0.5 threshold made
the fleet flag far too often (PPV 0.21 on a 200-device, 30-min baseline). This module picks
each kind's threshold, and how many consecutive windows must be over it before the device
raises the flag (persistence), on *validation* patients only: a synthetic cohort at the
natural episode rate with its own seed, never used in training nor in any bundled scenario.

The criterion is the harmonic mean of episode sensitivity (an episode is caught when a flag
fires while it is active, or in the window after) and window PPV (flagged windows with an
episode active), over thresholds 0.5, 0.525, ... 0.975 and persistence 1-3 windows::

    python -m devices.tinyml.calibrate_vitals [--seed 3] [--devices 200] [--hours 4]
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.physiology import BpSource, CohortParams, SweatSource
from devices.tinyml.train_vitals import labelled_windows
from devices.tinyml.vitals import FEATURES, VitalsModel
from twin.core.seeds import SeedTree

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Operating:
    """One operating point and what it gives on the validation windows."""

    threshold: float
    persistence: int
    sensitivity: float
    ppv: float

    @property
    def f1(self) -> float:
        """Harmonic mean of episode sensitivity and window PPV."""
        s = self.sensitivity + self.ppv
        return 2 * self.sensitivity * self.ppv / s if s else 0.0


def scores(kind: str, devices: int, hours: float, seed: int
           ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """The shipped model's scores and the active episode class, ``(windows, devices)`` each."""
    src = (BpSource if kind == "bp" else SweatSource)(devices, CohortParams(), SeedTree(seed))
    model = VitalsModel.load(kind)
    out, labels = [], []
    for batch, label in labelled_windows(kind, src, devices, round(hours * 360)):
        out.append(model.score(FEATURES[kind](batch)).score)
        labels.append(label)
    return np.array(out), np.array(labels)


def persistent(raw: BoolArray, k: int) -> BoolArray:
    """Flags that fire only after ``k`` consecutive raw flags of a device (rows are time)."""
    out = raw.copy()
    for j in range(1, k):
        out[j:] &= raw[:-j]
        out[:j] = False
    return out


def evaluate(flag: BoolArray, label: npt.NDArray[np.int64]) -> tuple[float, float]:
    """Episode sensitivity and window PPV of ``flag`` against ``label`` (both time x device)."""
    caught = total = 0
    for dev in range(label.shape[1]):
        y, f = label[:, dev], flag[:, dev]
        edges = np.flatnonzero(np.diff(np.concatenate([[0], y, [0]])) != 0)
        for start, end in itertools.pairwise(edges):
            if y[start] > 0:
                total += 1
                caught += bool(f[start:end + 1].any())
    flagged = int(flag.sum())
    ppv = float((flag & (label > 0)).sum() / flagged) if flagged else 0.0
    return (caught / total if total else 0.0), ppv


def choose(score: npt.NDArray[np.float32], label: npt.NDArray[np.int64]) -> list[Operating]:
    """Every operating point of the grid, best (highest F1, then fewest windows of delay) first."""
    points = []
    for k in (1, 2, 3):
        for threshold in np.round(np.arange(0.5, 0.99, 0.025), 3):
            se, ppv = evaluate(persistent(score >= threshold, k), label)
            points.append(Operating(float(threshold), k, round(se, 4), round(ppv, 4)))
    return sorted(points, key=lambda p: (-round(p.f1, 4), p.persistence))


def main(argv: list[str] | None = None) -> None:
    """Print each kind's best operating points and the 0.5 / 1-window default."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--hours", type=float, default=4.0)
    args = parser.parse_args(argv)
    for kind in ("bp", "sweat"):
        score, label = scores(kind, args.devices, args.hours, args.seed)
        se, ppv = evaluate(score >= 0.5, label)
        print(f"{kind}: default 0.5 x1: sensitivity {se:.3f}, PPV {ppv:.3f}")
        for p in choose(score, label)[:3]:
            print(f"  threshold {p.threshold} x{p.persistence}: sensitivity {p.sensitivity:.3f}"
                  f", PPV {p.ppv:.3f}, F1 {p.f1:.3f}")


if __name__ == "__main__":
    main()
