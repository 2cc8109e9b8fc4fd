"""Physiology benchmark: ECG samples synthesised per wall-second (``twin bench``).

The design target (issue 3): 10 s of 250 Hz ECG for 10,000 devices in under 1 s on one core,
i.e. 25 M samples/s, so that the whole twin can run 10x faster than real time. The first
window is timed apart: it pays for page faults on fresh arrays. BP and sweat are timed too.
"""

from __future__ import annotations

import platform
import statistics
import time
from typing import Any

import numpy as np

from devices.physiology import BpSource, CohortParams, EcgSource, SweatSource
from twin.core.seeds import SeedTree

TARGET_SAMPLES_PER_S = 25_000_000


def _time_windows(source: Any, n: int, window_s: float, repeats: int) -> tuple[float, list[float]]:
    """Seconds for the first window and for each of ``repeats`` later ones."""
    idx = np.arange(n)
    started = time.perf_counter()
    source.window(window_s, idx)
    first = time.perf_counter() - started
    walls = []
    for k in range(2, repeats + 2):
        started = time.perf_counter()
        source.window(window_s * k, idx)
        walls.append(time.perf_counter() - started)
    return first, walls


def run_signals_bench(devices: int = 10_000, window_s: float = 10.0, fs: float = 250.0,
                      repeats: int = 5, seed: int = 0) -> dict[str, Any]:
    """Time one window of ECG (and BP, sweat) for ``devices`` devices.

    Args:
        devices: fleet size per kind.
        window_s: window length (s).
        fs: ECG rate (Hz).
        repeats: windows timed after the first.
        seed: run seed.

    Returns:
        A JSON-ready dict: ECG samples per wall-second (median of the repeats), the seconds a
        window takes, whether the 25 M samples/s target is met, and BP/sweat window times.
    """
    cohort = CohortParams()
    built = time.perf_counter()
    ecg = EcgSource(devices, cohort, SeedTree(seed), fs=fs, window_s=window_s)
    build_s = time.perf_counter() - built
    first, walls = _time_windows(ecg, devices, window_s, repeats)
    median = statistics.median(walls)
    samples = devices * round(fs * window_s)
    others = {}
    for name, cls in (("bp", BpSource), ("sweat", SweatSource)):
        _, w = _time_windows(cls(devices, cohort, SeedTree(seed), window_s=window_s), devices,
                             window_s, repeats)
        others[name] = {"window_wall_s": round(statistics.median(w), 4)}
    return {
        "benchmark": "signals",
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "processor": platform.machine()},
        "ecg": {
            "devices": devices, "fs_hz": fs, "window_s": window_s, "samples_per_window": samples,
            "build_s": round(build_s, 3), "first_window_s": round(first, 3),
            "window_wall_s": round(median, 4), "window_wall_min_s": round(min(walls), 4),
            "samples_per_s": round(samples / median),
            "target_samples_per_s": TARGET_SAMPLES_PER_S,
            "meets_target": samples / median >= TARGET_SAMPLES_PER_S,
            "realtime_factor": round(window_s / median, 1),
        },
        **others,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run_signals_bench(), indent=2))
