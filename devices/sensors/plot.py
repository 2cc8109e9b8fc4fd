"""Figures of the physiology models, so people can look before they trust.

``python -m devices.sensors.plot --out DIR [--seed S]`` writes ``ecg.png``, ``bp.png`` and
``sweat.png``: 10 s of each signal kind in several states, each episode shaded and labelled,
ECG beats marked with their AAMI class, plus longer trends where 10 s says little (a day of
blood pressure, hours of sweat). A ``replay.png`` of MIT-BIH record 208 is added when
``--mitdb DIR`` is given (MIT-BIH Arrhythmia Database, Moody & Mark 2001, PhysioNet).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from devices.physiology import BpSource, CohortParams, EcgSource, SweatSource, WfdbReplay
from twin.core.seeds import SeedTree

ECG_CASES = (
    ("sinus", None), ("pvc_single", None), ("pvc_couplet", None), ("bigeminy", "bigeminy"),
    ("pac", None), ("af", "af"), ("vt", None), ("st_elevation", "st_elevation"),
    ("electrode_off", None),
)
_QUIET = CohortParams(episode_rate=0.0)


def _shade(ax: Any, start: float, end: float, label: str, t0: float, t1: float) -> None:
    lo, hi = max(start, t0), min(end, t1)
    if hi > lo:
        ax.axvspan(lo, hi, color="tab:orange", alpha=0.15)
        ax.text(lo, 1.0, f" {label}", transform=ax.get_xaxis_transform(), va="top",
                fontsize=8, color="tab:red")


def ecg_figure(out: Path, seed: int) -> Path:
    """Ten seconds of ECG per case; beats labelled, episodes shaded."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(ECG_CASES), 1, figsize=(14, 1.55 * len(ECG_CASES)),
                             sharex=True)
    for ax, (case, forced) in zip(axes, ECG_CASES, strict=True):
        src = EcgSource(1, _QUIET, SeedTree(seed), rhythm=forced)
        if forced is None and case != "sinus":
            duration = 5.0 if case == "vt" else 3.0
            src.episodes.inject(np.array([0]), case, 14.0, duration, severity=0.4)
        first = src.window(10.0, np.array([0]))
        b = src.window(20.0, np.array([0]))
        t = 10.0 + np.arange(b.signal.shape[1]) / b.fs
        ax.plot(t, b.signal[0], lw=0.7, color="black")
        for beat in b.beats:
            ax.text(beat["t_s"], b.signal[0, beat["sample"]] + 0.1, beat["label"], fontsize=7,
                    ha="center", color="tab:blue" if beat["label"] == "N" else "tab:red")
        for ep in np.concatenate([first.episodes, b.episodes]):
            _shade(ax, ep["start_s"], ep["end_s"], str(ep["kind"]), 10.0, 20.0)
        ax.set_ylabel(f"{case}\nmV", fontsize=8)
        ax.set_ylim(b.signal[0].min() - 0.3, b.signal[0].max() + 0.5)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle("Synthetic single-lead ECG, 250 Hz (beats: AAMI class; shaded: episode)")
    return _save(fig, out / "ecg.png")


def bp_figure(out: Path, seed: int) -> Path:
    """Ten seconds of the pulse wave in three states, and a day of a normal dipper."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(14, 9))
    for ax, case in zip(axes[:3], ("resting", "hypertensive_urgency",
                                   "orthostatic_hypotension"), strict=True):
        src = BpSource(1, _QUIET, SeedTree(seed))
        if case != "resting":
            src.episodes.inject(np.array([0]), case, 0.0 if case.startswith("hyper") else 1200.0,
                                7200.0 if case.startswith("hyper") else 180.0, severity=0.5)
        t_end = 3600.0 if case.startswith("hyper") else 1230.0
        for t in np.arange(10.0, t_end + 1, 10.0):
            b = src.window(float(t), np.array([0]))
        t = t_end - 10.0 + np.arange(b.signal.shape[1]) / b.fs
        ax.plot(t, b.signal[0], color="black", lw=0.8)
        ax.set_ylabel(f"{case}\nmmHg", fontsize=8)
        ax.set_title(f"{case}: window {b.values[0, 0]:.0f}/{b.values[0, 1]:.0f} mmHg",
                     fontsize=9, loc="left")
        if case != "resting":
            _shade(ax, t[0], t[-1], case, t[0], t[-1])
    _bp_day(axes[3], seed)
    fig.suptitle("Blood pressure: 25 Hz pulse wave (10 s) and 24 h of a normal dipper")
    return _save(fig, out / "bp.png")


def _bp_day(ax: Any, seed: int) -> None:
    src = BpSource(1, CohortParams(dipping_mix=(0, 1, 0, 0), white_coat_fraction=1.0),
                   SeedTree(seed), fs=1.0, window_s=60.0)
    ts = np.arange(60.0, 86401.0, 60.0)
    batches = [src.window(float(t), np.array([0])) for t in ts]
    hours = 8.0 + ts / 3600.0
    vals = np.stack([b.values[0] for b in batches])
    ax.plot(hours, vals[:, 0], lw=0.6, label="systolic (continuous)")
    ax.plot(hours, vals[:, 1], lw=0.6, label="diastolic (continuous)")
    cuff = np.concatenate([b.readings for b in batches])
    ax.plot(8.0 + cuff["t_s"] / 3600.0, cuff["sys_mmhg"], "v", ms=4, label="cuff systolic")
    p = src.patients
    bed, wake = float(p.bed_h[0]), float(p.wake_h[0]) + 24.0
    ax.axvspan(bed, wake, color="tab:blue", alpha=0.08)
    ax.text(bed, 1.0, " asleep", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    for ep in np.concatenate([b.episodes for b in batches]):
        _shade(ax, 8 + ep["start_s"] / 3600, 8 + ep["end_s"] / 3600, str(ep["kind"]), 8, 32)
    ax.set_xlabel("clock hour (08:00 to 08:00)")
    ax.set_ylabel("mmHg")
    ax.legend(fontsize=7, loc="lower left")


def sweat_figure(out: Path, seed: int) -> Path:
    """Ten seconds of the sodium reading per state, and six hours with a dehydration."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(14, 7))
    cases = ("normal", "dehydration", "abnormal_chloride", "sensor_drift", "sensor_saturation")
    src = SweatSource(len(cases), _QUIET, SeedTree(seed))
    same = SweatSource(len(cases), _QUIET, SeedTree(seed))  # the same patients, no episodes
    for row, case in enumerate(cases[1:], start=1):
        src.episodes.inject(np.array([row]), case, 600.0, 6 * 3600.0, severity=0.9)
    rows = np.arange(len(cases))
    times = np.arange(10.0, 6 * 3600.0 + 1, 10.0)
    batches = [src.window(float(t), rows) for t in times]
    reference = np.stack([same.window(float(t), rows).values[1, 0] for t in times])
    last = batches[-1]
    t = 6 * 3600.0 - 10.0 + np.arange(last.signal.shape[1]) / last.fs
    for row, case in enumerate(cases):
        axes[0].plot(t - t[0], last.signal[row], marker="o", ms=3, label=case)
    axes[0].set_ylabel("Na reading (mmol/L)")
    axes[0].set_xlabel("s (last 10 s of the run; episodes since 00:10)")
    axes[0].legend(fontsize=7, ncol=5)
    hours = np.array([b.t_end for b in batches]) / 3600.0
    vals = np.stack([b.values for b in batches])
    for j, name in enumerate(("Na", "K", "Cl")):
        axes[1].plot(hours, vals[:, 1, j], lw=0.8, label=f"{name} (dehydration patient)")
    axes[1].plot(hours, reference, lw=0.8, ls="--", label="Na (same patient, no episode)")
    ax2 = axes[1].twinx()
    ax2.plot(hours, vals[:, 1, 3], color="grey", lw=0.8, label="sweat rate")
    ax2.set_ylabel("sweat rate (L/h)")
    _shade(axes[1], 600 / 3600, 6.0, "dehydration", 0.0, 6.0)
    axes[1].set_xlabel("hours")
    axes[1].set_ylabel("mmol/L")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.suptitle("Sweat electrolytes (1 Hz sodium reading; window values over 6 h)")
    return _save(fig, out / "sweat.png")


def replay_figure(out: Path, mitdb: Path) -> Path:
    """Ten seconds of MIT-BIH record 208 replayed at 250 Hz, reference labels marked."""
    import matplotlib.pyplot as plt

    src = WfdbReplay(mitdb / "208", fs=250.0)
    b = src.window(10.0, np.array([0]))
    fig, ax = plt.subplots(figsize=(14, 2.5))
    t = np.arange(b.signal.shape[1]) / b.fs
    ax.plot(t, b.signal[0], color="black", lw=0.7)
    for beat in b.beats:
        ax.text(beat["t_s"], b.signal[0, beat["sample"]] + 0.1, beat["label"], fontsize=7,
                color="tab:blue" if beat["label"] == "N" else "tab:red")
    ax.set_title("MIT-BIH record 208 replayed at 250 Hz (MIT-BIH Arrhythmia Database, "
                 "Moody & Mark 2001, PhysioNet)", fontsize=9)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mV")
    return _save(fig, out / "replay.png")


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    """Render the figures; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    parser = argparse.ArgumentParser(prog="python -m devices.sensors.plot",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mitdb", type=Path, default=None, help="MIT-BIH folder (optional)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [ecg_figure(args.out, args.seed), bp_figure(args.out, args.seed),
             sweat_figure(args.out, args.seed)]
    if args.mitdb is not None:
        paths.append(replay_figure(args.out, args.mitdb))
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
