"""``twin signals``: synthesise (or replay) signals with their labels into an ``.npz`` file.

Registered onto the ``twin`` app by :func:`register`; the command is a thin shell over
:mod:`devices.physiology` so that anyone's tools (numpy, wfdb, neurokit2, a notebook) can
check the signals or use them as a dataset.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from devices.physiology import (
    BEAT_DTYPE,
    DEFAULT_FS,
    EPISODE_DTYPE,
    READING_DTYPE,
    RHYTHMS,
    CohortParams,
    SignalBatch,
    WfdbReplay,
    make_source,
)
from twin.core.errors import MedtwinError
from twin.core.messages import KIND_METRICS, Kind
from twin.core.seeds import SeedTree
from twin.scenario import parse_duration

KINDS = {"ecg": Kind.ECG_PATCH, "bp": Kind.BP_CUFF, "sweat": Kind.SWEAT_PATCH}
MAX_SAMPLES = 200_000_000
"""Refuse exports larger than this many samples (800 MB of float32)."""

HELP = f"""Synthesise signals of KIND (ecg, bp, sweat) with their labels into FILE.npz.

The duration is rounded up to whole windows. The file holds (numpy .npz, no pickles):

\b
  fs            sampling rate of `signal` (Hz)
  signal        float32 (devices x samples), in `units`
  units         "mV" (ecg), "mmHg" (bp: arterial pulse wave), "mmol/L" (sweat: sodium)
  kind, seed    what was generated, with which run seed
  window_s      window length (s); values has one row per window
  metrics       names of the telemetry metrics, in `values` order
  values        float64 (windows x devices x metrics), as the device reports them
  beat_device, beat_sample, beat_label
                ecg only: every beat (device, sample index into `signal`, AAMI class
                N S V F Q)
  episodes      structured (device, kind, start_s, end_s): ground truth of every episode
  readings      bp only: structured (device, t_s, sys_mmhg, dia_mmhg) cuff readings

--rhythm forces one ECG rhythm on every device ({", ".join(RHYTHMS)});
--hr sets the sinus rate; --record replays a WFDB record (ecg only, e.g. MIT-BIH).
"""


def register(app: typer.Typer) -> None:
    """Add the ``signals`` command to a typer app."""
    app.command(name="signals", help=HELP)(signals)


def signals(
    kind: Annotated[str, typer.Argument(help="ecg, bp or sweat.")],
    out: Annotated[Path, typer.Option(help="The .npz file to write.")],
    devices: Annotated[int, typer.Option(help="How many devices.")] = 10,
    duration: Annotated[str, typer.Option(help="Signal length: 30s, 5m, 1h.")] = "60s",
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    rhythm: Annotated[str | None, typer.Option(help="Force an ECG rhythm.")] = None,
    hr: Annotated[float | None, typer.Option(help="Force the sinus rate (bpm).")] = None,
    fs: Annotated[float | None, typer.Option(help="Hz; default 250 ecg, 25 bp, 1 sweat.")] = None,
    window: Annotated[float, typer.Option(help="Window length (s).")] = 10.0,
    start_hour: Annotated[float, typer.Option(help="Clock hour at t = 0.")] = 8.0,
    record: Annotated[Path | None, typer.Option(help="Replay this WFDB record (ecg).")] = None,
) -> None:
    """Synthesise signals with their labels (see the command's help for the file format)."""
    try:
        arrays = _generate(kind, devices, duration, seed, rhythm, hr, fs, window, start_hour,
                           record)
    except (MedtwinError, ValueError) as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as handle:
        np.savez_compressed(handle, **arrays)
    shape = arrays["signal"].shape
    typer.echo(f"{out}: {shape[0]} x {shape[1]} samples at {arrays['fs']:g} Hz, "
               f"{len(arrays['episodes'])} episodes"
               + (f", {len(arrays['beat_label'])} beats" if kind == "ecg" else ""))


def _generate(name: str, devices: int, duration: str, seed: int, rhythm: str | None,
              hr: float | None, fs: float | None, window: float, start_hour: float,
              record: Path | None) -> dict[str, Any]:
    """Run the source window by window and gather its arrays (raises on bad options)."""
    kind = KINDS.get(name)
    if kind is None:
        raise ValueError(f"KIND must be one of {', '.join(KINDS)}, got {name!r}")
    if devices < 1:
        raise ValueError(f"--devices must be at least 1, got {devices}")
    if (rhythm is not None or hr is not None or record is not None) and kind is not Kind.ECG_PATCH:
        raise ValueError("--rhythm, --hr and --record apply to ecg only")
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise ValueError(f"--duration: {exc}") from None
    windows = max(1, math.ceil(seconds / window - 1e-9))
    rate = DEFAULT_FS[kind] if fs is None else fs
    if devices * windows * window * rate > MAX_SAMPLES:
        raise ValueError(f"{devices} devices x {windows * window:g} s at {rate:g} Hz is over "
                         f"{MAX_SAMPLES:,} samples; export fewer devices or less time")
    source: Any
    if record is not None:
        source = WfdbReplay(record, fs=rate, n_devices=devices, window_s=window)
    else:
        options: dict[str, Any] = {"fs": rate}
        if kind is Kind.ECG_PATCH:
            options.update(rhythm=rhythm, hr_bpm=hr)
        source = make_source(kind, devices, CohortParams(), SeedTree(seed), window_s=window,
                             start_hour=start_hour, **options)
    idx = np.arange(devices)
    batches = [source.window(window * (k + 1), idx) for k in range(windows)]
    return _arrays(kind, batches, seed, rate, window, windows * window)


def _arrays(kind: Kind, batches: list[SignalBatch], seed: int, fs: float, window: float,
            total_s: float) -> dict[str, Any]:
    """The .npz arrays of a run's batches."""
    per = batches[0].signal.shape[1]
    beats = np.concatenate([b.beats for b in batches]) if batches else np.empty(0, BEAT_DTYPE)
    offsets = np.concatenate([np.full(len(b.beats), k * per) for k, b in enumerate(batches)])
    episodes = np.concatenate([b.episodes for b in batches]).astype(EPISODE_DTYPE)
    episodes["end_s"] = np.minimum(episodes["end_s"], total_s)
    readings = np.concatenate([b.readings for b in batches]).astype(READING_DTYPE)
    cuff = np.empty(len(readings), np.dtype([("device", np.int64), ("t_s", np.float64),
                                             ("sys_mmhg", np.float64), ("dia_mmhg", np.float64)]))
    for field in ("t_s", "sys_mmhg", "dia_mmhg"):
        cuff[field] = readings[field]
    cuff["device"] = readings["row"]
    arrays: dict[str, Any] = {
        "fs": np.float64(fs), "units": np.str_(batches[0].units), "kind": np.str_(kind.value),
        "seed": np.int64(seed), "window_s": np.float64(window),
        "signal": np.concatenate([b.signal for b in batches], axis=1),
        "metrics": np.array(KIND_METRICS[kind]),
        "values": np.stack([b.values for b in batches]),
        "episodes": episodes,
    }
    if kind is Kind.ECG_PATCH:
        arrays.update(beat_device=beats["row"], beat_sample=beats["sample"] + offsets.astype(int),
                      beat_label=beats["label"])
    if kind is Kind.BP_CUFF:
        arrays["readings"] = cuff
    return arrays
