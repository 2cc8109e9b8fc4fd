"""Live benchmark: the embedded broker and Mosquitto, same fleet, same clients, same run.

One fleet is provisioned (QDID identities, certificates, the platform's Mosquitto export).
Each broker then runs in its own process, so the load generator (this process: one asyncio
loop driving every paho client through :mod:`twin.live.mqtt`, exactly as live mode does) and
the broker each have a core of a 2-core machine:

* **embedded**: ``python -m twin.cli broker --run FLEET --port P`` (the hardened amqtt broker);
* **mosquitto**: ``mosquitto -c`` the exported configuration, when Mosquitto is installed.

Per broker it measures, in order:

1. *connection storm*: wall seconds until N devices have their CONNACK (mutual TLS, paced
   as the live driver paces a fleet powering on), and the broker's resident memory per
   connection (RSS after the storm minus before, over N);
2. *sustained*: every device publishes QoS 1 at ``rate`` msg/s (staggered) for ``seconds``;
   one cloud subscriber (QoS 1) receives; delivered msg/s, messages lost (sent and never
   received after a 10 s drain), end-to-end latency p50/p99 (send to receive, same clock);
3. *peak*: 200 devices each publish 100 QoS 0 messages back to back to a QoS 0 subscriber
   (the reference measurement in ARCHITECTURE.md); messages received per second.

Finally ``live_run`` runs the live driver itself (``LiveRun``: provisioning, embedded broker,
cores, store all in one process) with the same fleet size at 1 window a second per device.
The load generator is one Python process; where a broker outruns it, the figure is the
generator's. Numbers from a shared machine are noisy: say so when quoting them.
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from twin.bench.liveload import Harness, percentile
from twin.live.identities import read_identities
from twin.live.mosquitto import Mosquitto, find_mosquitto, free_port
from twin.platform import provision

TENANT = "ward-7"
PEAK_PUBLISHERS = 200
PEAK_EACH = 100
STAMP = struct.Struct("!d")


class EmbeddedProcess:
    """``twin broker`` in a child process serving ``fleet`` on a free port."""

    def __init__(self, fleet: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "twin.cli", "broker", "--run", str(fleet), "--port",
             str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def wait_ready(self) -> None:
        """Block until the broker prints that it serves."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if "serving" not in line:
            raise RuntimeError(f"twin broker did not start: {line.strip()}")

    def stop(self) -> None:
        """SIGTERM, then wait (kill after 30 s: a benchmark must end)."""
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


async def _measure(harness: Harness, pid: int, rate: float, seconds: float) -> dict[str, Any]:
    broker = psutil.Process(pid)
    await harness.connect_cloud("cloud", qos=1)
    before = broker.memory_info().rss
    storm = await harness.storm()
    after = broker.memory_info().rss
    sustained = await harness.sustained(rate, seconds)
    await harness.disconnect_cloud()
    await harness.connect_cloud("cloud-peak", qos=0)
    peak = await harness.peak(PEAK_PUBLISHERS, PEAK_EACH)
    await harness.close()
    return {"connect_storm": storm,
            "memory_per_connection_kb": round((after - before) / 1024 / harness.size, 1),
            "broker_rss_mb": round(broker.memory_info().rss / 2**20, 1),
            "sustained": sustained, "peak_qos0": peak}


def _bench_broker(name: str, fleet: Path, devices: int, rate: float,
                  seconds: float) -> dict[str, Any]:
    if name == "embedded":
        proc = EmbeddedProcess(fleet)
        proc.wait_ready()
        port, pid, stop = proc.port, proc.process.pid, proc.stop
    else:
        mosquitto = Mosquitto(fleet).start()
        assert mosquitto.process is not None
        port, pid, stop = mosquitto.port, mosquitto.process.pid, mosquitto.stop
    try:
        harness = Harness(fleet, read_identities(fleet)[:devices], TENANT, port)
        return asyncio.run(_measure(harness, pid, rate, seconds))
    finally:
        stop()


def _live_run(devices: int, seconds: float) -> dict[str, Any]:
    """The live driver end to end: 1 window/s per device (10 s windows at time scale 10)."""
    import sqlite3

    from cloud.store import SqliteStore
    from twin.live import LiveRun
    from twin.runner import load

    scale = 10.0
    scenario = load("baseline").with_overrides(devices=devices, duration=seconds * scale,
                                               mode="live")
    with tempfile.TemporaryDirectory(prefix="medtwin-live-") as tmp:
        store = SqliteStore.create(Path(tmp) / "store.sqlite")
        run = LiveRun(scenario, store, Path(tmp) / "fleet", time_scale=scale)
        started = time.perf_counter()
        result = run.run()
        wall = time.perf_counter() - started
        t_published = result.counters.get("telemetry.published", 0)
        stored = store.count("telemetry")
        store.close()
        conn = sqlite3.connect(Path(tmp) / "store.sqlite")
        lat = sorted((r - t) / scale for r, t in conn.execute("SELECT received, t FROM telemetry"))
        conn.close()
    return {"devices": devices, "messages_per_device_per_s": 1.0, "wall_seconds": round(wall, 1),
            "fleet_connect_s": round(run.fleet_connect_s or 0.0, 2),
            "published": t_published, "stored": stored,
            "lost": result.counters.get("telemetry.lost", 0), "pending": result.pending,
            "latency_p50_s": percentile(lat, 0.50), "latency_p99_s": percentile(lat, 0.99),
            "latency_max_s": round(lat[-1], 3) if lat else None}


def run_live_bench(devices: int = 1000, seconds: float = 20.0, rate: float = 1.0,
                   progress: Any = print) -> dict[str, Any]:
    """Provision one fleet; measure the embedded broker, Mosquitto if installed, and a live run.

    Args:
        devices: fleet size (connections in the storm, publishers in the sustained phase).
        seconds: length of the sustained phase, and of the live run's streaming.
        rate: messages per second per device in the sustained phase.
        progress: called with a line of progress.

    Returns:
        A JSON-ready dict: per broker, and ``embedded_vs_mosquitto`` throughput ratios.
    """
    out: dict[str, Any] = {"devices": devices, "sustained_seconds": seconds,
                           "rate_per_device": rate, "brokers": {}}
    with tempfile.TemporaryDirectory(prefix="medtwin-livebench-") as tmp:
        fleet = Path(tmp) / "fleet"
        progress(f"bench: live: provisioning {devices:,} devices ...")
        provision(fleet, devices, seed=1, tenant=TENANT)
        names = ["embedded"] + (["mosquitto"] if find_mosquitto() else [])
        for name in names:
            progress(f"bench: live: {name} broker ...")
            r = out["brokers"][name] = _bench_broker(name, fleet, devices, rate, seconds)
            s = r["sustained"]
            progress(f"  storm {r['connect_storm']['seconds']} s, {s['delivered_per_s']:,} "
                     f"msg/s, lost {s['lost']}, p50 {s['latency_p50_s']} s p99 "
                     f"{s['latency_p99_s']} s, peak {r['peak_qos0']['received_per_s']:,} msg/s,"
                     f" {r['memory_per_connection_kb']} KB/connection")
    if "mosquitto" in out["brokers"]:
        e, m = out["brokers"]["embedded"], out["brokers"]["mosquitto"]
        out["embedded_vs_mosquitto"] = {
            "peak_qos0": round(e["peak_qos0"]["received_per_s"]
                               / max(m["peak_qos0"]["received_per_s"], 1), 2)}
    else:
        out["mosquitto"] = "not installed: apt-get install mosquitto"
    progress(f"bench: live: the live driver with {devices:,} devices ...")
    out["live_run"] = _live_run(devices, seconds)
    lr = out["live_run"]
    progress(f"  {lr['stored']:,}/{lr['published']:,} stored, p50 {lr['latency_p50_s']} s, "
             f"p99 {lr['latency_p99_s']} s, connect {lr['fleet_connect_s']} s")
    return out
