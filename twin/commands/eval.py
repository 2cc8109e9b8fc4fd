"""``twin eval ecg``: score the shipped ECG model on WFDB records, as a device would run it.

Registered onto the ``twin`` app by :func:`register`. Every record (``.hea/.dat/.atr``) in
the folder is replayed at the patch's rate (250 Hz) in consecutive 10-s windows, all windows
of a record scored in one batch by the int8 model through LiteRT, and the flags are matched to
the reference annotations (:mod:`devices.tinyml.evaluate`: +-150 ms, AAMI classes). Records
the shipped model was trained on are marked, and a separate total covers the others only:
only those are a fair test. Data credit when run on MIT-BIH: MIT-BIH Arrhythmia Database,
Moody & Mark 2001, PhysioNet.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import numpy.typing as npt
import typer
from rich.console import Console
from rich.table import Table

from devices.tinyml import evaluate as ev
from devices.tinyml.dataset import record_windows
from devices.tinyml.ecg import TRAINING_RECORDS, EcgModel
from twin.core.errors import MedtwinError

eval_app = typer.Typer(help="Evaluate the on-device models on real data.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command group (``twin eval ecg``) to a typer app."""
    app.add_typer(eval_app, name="eval")


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@eval_app.command("ecg")
def ecg(
    records: Annotated[Path, typer.Option(help="Folder of WFDB records (.hea/.dat/.atr).")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write JSON here.")] = None,
    model: Annotated[Path | None, typer.Option(help="A .tflite instead of the shipped one.")]
    = None,
    lead: Annotated[str, typer.Option(
        help="The signal to score, by name; a record without it is read on its first.")]
    = "MLII",
) -> None:
    """Score the ECG model per record and in total: V and S beats, AF windows, AUROC."""
    if not records.is_dir():
        raise _fail(f"--records: {records} is not a folder")
    names = sorted(p.with_suffix("") for p in records.glob("*.hea")
                   if p.with_suffix(".atr").exists())
    if not names:
        raise _fail(f"--records: no WFDB records with .atr annotations in {records}")
    try:
        ecg_model = EcgModel.load(None if model is None else str(model))
        report = evaluate_records(ecg_model, names, lead)
    except MedtwinError as exc:
        raise _fail(str(exc)) from None
    _print(report)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")


def evaluate_records(model: EcgModel, paths: list[Path], lead: str = "MLII"
                     ) -> dict[str, Any]:
    """Run the model over every record and score it.

    Args:
        model: the ECG model.
        paths: records without extension.
        lead: the signal to score, by name (a record without it: its first signal).

    Returns:
        The JSON-ready report (``model_bytes``, ``inferences_per_second``, ``records``,
        ``total``, ``total_held_out``).

    Raises:
        RecordError: a record cannot be read (names it).
    """
    reports: list[dict[str, Any]] = []
    scores: list[npt.NDArray[Any]] = []
    truth: list[npt.NDArray[Any]] = []
    held: list[bool] = []
    windows = beats = 0
    spent = 0.0
    for path in paths:
        lw = record_windows(path, lead=lead)
        started = time.perf_counter()
        result = model.score(lw.batch.signal, lw.batch.fs, lw.device)
        spent += time.perf_counter() - started
        windows, beats = windows + lw.beats.n_rows, beats + len(result.beats)
        rep = ev.record_report(lw, result)
        rep["trained_on"] = lw.name in TRAINING_RECORDS
        reports.append(rep)
        scores.append(ev.window_scores(result))
        truth.append(ev.window_truth(lw))
        held.append(not rep["trained_on"])
    total = ev.total_report(reports, np.concatenate(scores), np.concatenate(truth))
    keep = [i for i, h in enumerate(held) if h]
    held_out = ev.total_report([reports[i] for i in keep],
                               np.concatenate([scores[i] for i in keep]),
                               np.concatenate([truth[i] for i in keep])) if keep else None
    for rep in reports:
        del rep["counts"]
    return {
        "model_bytes": model.size_bytes,
        "inferences_per_second": round(windows / spent, 1) if spent else None,
        "beats_per_second": round(beats / spent, 1) if spent else None,
        "window_s": 10.0, "fs_hz": 250.0, "lead": lead, "scoring": SCORING,
        "records": reports, "total": total, "total_held_out": held_out,
        "credit": "MIT-BIH Arrhythmia Database, Moody & Mark 2001, PhysioNet (if MIT-BIH)",
    }


SCORING = ("AAMI EC57 beat-by-beat, as WFDB bxb counts (ADR 0016): +-150 ms matching; a V flag "
           "on an N or S beat or on no beat is a false positive, on an F or Q beat not counted; "
           "beats and flags in annotated flutter/fibrillation not counted; whole records")
"""How the report counts beats, written into it."""


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _row(name: str, r: dict[str, Any]) -> list[str]:
    af = r["af"] or {}
    return [name, str(r["windows"]), str(r["V"]["reference"]), _pct(r["V"]["sensitivity"]),
            _pct(r["V"]["ppv"]), str(r["S"]["reference"]), _pct(r["S"]["sensitivity"]),
            _pct(r["S"]["ppv"]), _pct(af.get("sensitivity")), _pct(af.get("specificity")),
            "-" if r["window_auroc"] is None else f"{r['window_auroc']:.3f}"]


def _print(report: dict[str, Any]) -> None:
    table = Table(title="ECG model on WFDB records (%; V/S: beats, AF: 10-s windows)")
    for col in ("record", "windows", "V", "V Se", "V +P", "S", "S Se", "S +P", "AF Se",
                "AF Sp", "AUROC"):
        table.add_column(col, justify="right")
    for r in report["records"]:
        table.add_row(*_row(r["record"] + (" (train)" if r["trained_on"] else ""), r))
    table.add_row(*_row("total", report["total"]), style="bold")
    if report["total_held_out"] is not None:
        table.add_row(*_row("held out", report["total_held_out"]), style="bold")
    Console(width=120).print(table)
    not_counted = report["total"]["V"]["not_counted"]
    typer.echo(f"scored as {SCORING}; {not_counted:,} V flags not counted")
    typer.echo(f"model: {report['model_bytes']:,} bytes; {report['inferences_per_second']:,} "
               f"windows/s ({report['beats_per_second']:,} beats/s) including beat detection")
