"""Launching ``twin run`` in the background from the Scenarios page, and following its progress.

The dashboard never simulates: it starts ``python -m twin run SCENARIO ... --out
runs/NAME-N`` as a child process (output to ``twin-run.log`` in the run folder) and reads
progress from the store the run is writing. A scenario whose defence switches were changed in
the form is written to ``scenario.yaml`` in the run folder first (the bundled file's own
YAML with only ``defences:`` replaced), so the run is reproducible from its folder alone.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dashboards.run import REPORT, STORE

LOG = "twin-run.log"
LAUNCH = "launch.json"
SCENARIO_FILE = "scenario.yaml"


@dataclass
class Launch:
    """A run started from the dashboard: its folder, command and process (if still ours)."""

    out: Path
    command: list[str]
    process: subprocess.Popen[bytes] | None
    duration: float


@dataclass(frozen=True)
class Progress:
    """Where a launched run is: ``state`` is starting, running, finished or failed."""

    state: str
    fraction: float
    message: str


def next_out(root: Path, name: str) -> Path:
    """Claim ``root/NAME-N`` for the smallest unused N >= 1 (mkdir is the atomic claim)."""
    root.mkdir(parents=True, exist_ok=True)
    n = 1 + max((int(p.name.rsplit("-", 1)[1]) for p in root.glob(f"{name}-*")
                 if p.name.rsplit("-", 1)[1].isdigit()), default=0)
    while True:
        out = root / f"{name}-{n}"
        try:
            out.mkdir()
        except FileExistsError:
            n += 1
            continue
        return out


def bundled_yaml(name: str) -> dict[str, Any]:
    """The raw mapping of a bundled scenario file (durations stay as the author wrote them)."""
    text = resources.files("scenarios").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"scenarios/{name}.yaml: not a mapping")
    return data


def command(scenario: str, out: Path, *, devices: int | None, duration: str | None,
            seed: int | None) -> list[str]:
    """The ``twin run`` command line for a launch (run with this interpreter)."""
    cmd = [sys.executable, "-m", "twin", "run", scenario, "--out", str(out)]
    if devices is not None:
        cmd += ["--devices", str(devices)]
    if duration is not None:
        cmd += ["--duration", duration]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    return cmd


def launch(name: str, root: Path, *, devices: int | None = None, duration: str | None = None,
           seed: int | None = None, defences: Mapping[str, bool] | None = None,
           sim_seconds: float = 0.0) -> Launch:
    """Start ``twin run`` for bundled scenario ``name`` in a new ``root/NAME-N`` folder.

    Args:
        name: a bundled scenario name.
        root: the runs folder.
        devices, duration, seed: overrides, as ``twin run`` takes them (None: the file's).
        defences: switches that differ from the file's are written into a scenario copy.
        sim_seconds: the simulated duration, for the progress bar.

    Returns:
        The :class:`Launch`; the process runs on after the dashboard's script run ends.

    Raises:
        OSError: the run folder or its log cannot be created, or the process not started.
    """
    out = next_out(root, name)
    source = name
    original = bundled_yaml(name)
    current = dict(original.get("defences") or {})
    if defences and any(current.get(k, True) != v for k, v in defences.items()):
        original["defences"] = {**current, **dict(defences)}
        (out / SCENARIO_FILE).write_text(yaml.safe_dump(original, sort_keys=False))
        source = str(out / SCENARIO_FILE)
    cmd = command(source, out, devices=devices, duration=duration, seed=seed)
    with (out / LOG).open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    (out / LAUNCH).write_text(json.dumps(
        {"command": cmd, "pid": process.pid, "duration_s": sim_seconds}, indent=2) + "\n")
    return Launch(out, cmd, process, sim_seconds)


def _stored_until(store: Path) -> float:
    """The simulated time of the last window stored (the last row, no scan)."""
    try:
        conn = sqlite3.connect(store.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT t FROM telemetry ORDER BY rowid DESC LIMIT 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0.0
    return float(row[0]) if row else 0.0


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def progress(item: Launch) -> Progress:
    """How far a launched run has got, from its folder (and its process, if known)."""
    if (item.out / REPORT).is_file():
        return Progress("finished", 1.0, "finished: report written")
    code = item.process.poll() if item.process is not None else None
    if code not in (None, 0):
        return Progress("failed", 0.0, f"twin run exited with status {code}: "
                        f"{_tail(item.out / LOG) or 'no output'}")
    store = item.out / STORE
    if not store.is_file():
        return Progress("starting", 0.0, "starting")
    done = _stored_until(store)
    frac = min(done / item.duration, 0.99) if item.duration else 0.0
    return Progress("running", frac, f"{done / 60:,.1f} of {item.duration / 60:,.1f} "
                    "simulated minutes")


def stop(item: Launch) -> None:
    """Stop a launched run that is still going (only our own child process)."""
    if item.process is not None and item.process.poll() is None:
        item.process.terminate()


def format_command(cmd: Sequence[str]) -> str:
    """The command as a person would type it (``twin run ...``)."""
    args = list(cmd)
    if args[1:3] == ["-m", "twin"]:
        args = ["twin", *args[3:]]
    return " ".join(args).replace(os.getcwd() + os.sep, "")
