"""TinyML benchmark: batched inferences per second per model, and memory at 10,000 devices.

Target (issue 6): at most 2 us per window per device for the ECG model in a 10,000-window
batch on one core (LiteRT runs with one thread). The ECG model runs per beat, so its figure
is the invoke time over all beats of the batch divided by the windows; beat detection and
feature extraction (numpy) are timed apart. Memory is the process's resident set (LiteRT's
tensor arena is native memory, invisible to tracemalloc): before loading the models, and the
peak after the batches.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from typing import Any

import numpy as np

from devices.physiology import BpSource, CohortParams, EcgSource, SweatSource
from devices.tinyml.ecg import EcgModel
from devices.tinyml.energy import count_macs, window_cost
from devices.tinyml.features import extract
from devices.tinyml.runtime import TinyModel, chunks
from devices.tinyml.vitals import VitalsModel
from twin.core.seeds import SeedTree

TARGET_US_PER_WINDOW = 2.0


def _rss_mb() -> float:
    """Current resident set size (MB), from /proc where available."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:  # pragma: no cover - not Linux
        return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _best(fn: Any, repeats: int) -> tuple[float, Any]:
    """Median wall seconds of ``repeats`` calls (after one warm-up) and the last result."""
    out = fn()
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - started)
    return statistics.median(walls), out


def _ecg(devices: int, repeats: int, seed: int) -> dict[str, Any]:
    src = EcgSource(devices, CohortParams(), SeedTree(seed))
    signal = src.window(10.0, np.arange(devices)).signal
    model = EcgModel.load()
    feat_s, beats = _best(lambda: extract(signal, 250.0), repeats)
    tiny = model_tiny("ecg_beat_af")
    order = [beats.context, beats.delta] if "context" in tiny.input_names[0] else [
        beats.delta, beats.context]
    infer_s, _ = _best(lambda: tiny.run(*order), repeats)
    invoke_only_s = _invoke_only(tiny, order, repeats)
    total_s, _ = _best(lambda: model.score(signal, 250.0), max(1, repeats // 2))
    macs = count_macs(tiny)
    per_window = len(beats) / devices
    cost = window_cost(macs["macs"], macs["ops"], per_window, signal.shape[1])
    return {"devices": devices, "beats": len(beats), "model_bytes": tiny.size_bytes, **macs,
            "invoke_s": round(infer_s, 4), "features_s": round(feat_s, 4),
            "pipeline_s": round(total_s, 4),
            "inferences_per_s": round(len(beats) / infer_s),
            "us_per_window_inference": round(1e6 * infer_s / devices, 3),
            "us_per_window_invoke_only": round(1e6 * invoke_only_s / devices, 3),
            "us_per_window_pipeline": round(1e6 * total_s / devices, 1),
            "meets_target": 1e6 * infer_s / devices <= TARGET_US_PER_WINDOW,
            "device_estimate": {"ms_per_window": round(1e3 * cost.latency_s, 3),
                                "mj_per_window": round(cost.energy_mj, 5)}}


def _invoke_only(tiny: TinyModel, inputs: list[Any], repeats: int) -> float:
    """Median seconds of the interpreter's invokes alone for the batch (inputs already
    quantised and set), to tell LiteRT's share from the int8 conversion around it."""
    tiny.run(*inputs)  # sizes the interpreter to the (equal) chunks and sets its inputs
    invokes = chunks(len(inputs[0]))

    def invoke_all() -> None:
        for _ in range(invokes):
            tiny.invoke()

    seconds, _ = _best(invoke_all, repeats)
    return seconds


def model_tiny(name: str) -> TinyModel:
    """The process's shared interpreter of a shipped model."""
    from devices.tinyml.runtime import model_path

    return TinyModel.load(model_path(name))


def _vitals(kind: str, devices: int, repeats: int, seed: int) -> dict[str, Any]:
    cls = BpSource if kind == "bp" else SweatSource
    batch = cls(devices, CohortParams(), SeedTree(seed)).window(10.0, np.arange(devices))
    model = VitalsModel.load(kind)
    feats = model.features(batch)
    infer_s, _ = _best(lambda: model.score(feats), repeats)
    macs = count_macs(model_tiny(f"vitals_{kind}"))
    return {"devices": devices, "model_bytes": model.size_bytes, **macs,
            "invoke_s": round(infer_s, 5), "inferences_per_s": round(devices / infer_s),
            "us_per_window": round(1e6 * infer_s / devices, 3)}


def run_tinyml_bench(devices: int = 10_000, repeats: int = 5, seed: int = 0) -> dict[str, Any]:
    """Time the shipped models on one window of a ``devices`` fleet, batched.

    Args:
        devices: fleet size (windows per batch).
        repeats: timed repetitions (median reported) after one warm-up.
        seed: seed of the synthetic fleet.

    Returns:
        A JSON-ready dict: per model, inferences per second, microseconds per window, MACs,
        size, the on-device estimate; and the resident memory before and at peak.
    """
    rss0 = _rss_mb()
    out: dict[str, Any] = {
        "benchmark": "tinyml",
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "processor": platform.machine()},
        "ecg": _ecg(devices, repeats, seed),
        "vitals_bp": _vitals("bp", devices, repeats, seed),
        "vitals_sweat": _vitals("sweat", devices, repeats, seed),
    }
    out["memory"] = {"rss_before_mb": round(rss0, 1), "rss_after_mb": round(_rss_mb(), 1),
                     "peak_rss_mb": round(_peak_mb(), 1),
                     "note": "whole process, includes the synthetic fleet's signals"}
    out["target_us_per_window"] = TARGET_US_PER_WINDOW
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run_tinyml_bench(), indent=2))
