"""Fleet throughput benchmark: simulated device-seconds per wall-second, and peak memory.

Each fleet size runs the bundled baseline scenario in a fresh Python process, so its peak
resident memory (``ru_maxrss``) belongs to that size alone and one run's heap does not warm
the next. The target the design works towards is 10,000 devices at 10x real time or better on
a 2-core machine with the full physiology, TinyML and crypto in place.
"""

from __future__ import annotations

import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin.core.errors import MedtwinError

SCENARIO = "baseline"


IDENTITIES = ("seeded", "qdid")


def measure(devices: int, seconds: float, identity: str = "seeded") -> dict[str, Any]:
    """Run the baseline with ``devices`` for ``seconds`` of simulated time in this process.

    Args:
        devices: fleet size.
        seconds: simulated time.
        identity: ``"seeded"`` (identities from the seed) or ``"qdid"`` (every device's
            certificate from the platform's enrolment before the run: ``setup_seconds``
            shows that cost; the run figures exclude it, as they exclude loading).
    """
    from twin.runner import load, run_scenario
    from twin.scenario import Scenario

    scenario = load(SCENARIO).with_overrides(devices=devices, duration=seconds)
    if identity != scenario.fleet.identity:
        data = scenario.model_dump()
        data["fleet"]["identity"] = identity
        scenario = Scenario.model_validate(data)
    with tempfile.TemporaryDirectory(prefix="medtwin-bench-") as tmp:
        started = time.perf_counter()
        report = run_scenario(scenario, Path(tmp)).report
        total = time.perf_counter() - started
    wall = report["wall_seconds"]
    published = report["telemetry"]["published"]
    return {
        "scenario": SCENARIO,
        "identity": report["security"]["identities"],  # what the run used, from its report
        "devices": devices,
        "setup_seconds": round(total - wall, 2),
        "sim_seconds": seconds,
        "wall_seconds": wall,
        "realtime_factor": report["realtime_factor"],
        "device_seconds_per_wall_second": round(devices * seconds / wall),
        "messages": published,
        "messages_per_wall_second": round(published / wall),
        "stored": report["telemetry"]["stored"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_bench(sizes: list[int], seconds: float, progress: Callable[[str], None],
              identity: str = "seeded") -> dict[str, Any]:
    """Measure each fleet size in its own process (identities as :func:`measure`).

    Raises:
        MedtwinError: a measurement process failed (its stderr's last line is quoted).
    """
    results = []
    for n in sizes:
        progress(f"bench: {n:,} devices, {seconds:,.0f} s simulated ...")
        proc = subprocess.run(
            [sys.executable, "-m", "twin.bench.fleet", str(n), str(seconds), identity],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise MedtwinError(f"benchmark of {n} devices failed: {last}")
        results.append(json.loads(proc.stdout))
        r = results[-1]
        progress(f"  {r['realtime_factor']:,}x real time, "
                 f"{r['device_seconds_per_wall_second']:,} device-s/s, {r['peak_rss_mb']} MB")
    return {"scenario": SCENARIO, "identity": identity, "results": results}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {"python": platform.python_version(), "cpus": _cpus(),
            "processor": platform.machine()}


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), float(sys.argv[2]), *sys.argv[3:4])))
