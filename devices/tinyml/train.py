"""Train, quantise and document the shipped models: ``python -m devices.tinyml.train ...``.

Needs the optional ``train`` extra (``tensorflow-cpu``); nothing at run time or in tests does.

    python -m devices.tinyml.train ecg --data ../shared/data/mitdb-ds1 [--seed 0]
    python -m devices.tinyml.train vitals [--seed 0]

Each writes ``models/<name>.tflite`` (full-integer int8) and ``models/<name>.md`` (its card:
inputs, outputs, training data, validation metrics, size, MACs). The ECG validation metrics
are computed on the validation *patients* only, with the int8 model, exactly as
``twin eval ecg`` computes them. Data credit: MIT-BIH Arrhythmia Database, Moody & Mark 2001,
PhysioNet.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from devices.tinyml import evaluate as ev
from devices.tinyml.dataset import WINDOW_S
from devices.tinyml.ecg import ECG_MODEL, EcgModel, EcgResult
from devices.tinyml.energy import count_macs, window_cost
from devices.tinyml.features import DELTA_LEN, N_CONTEXT
from devices.tinyml.runtime import MODELS, TinyModel


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def train_ecg(args: argparse.Namespace) -> dict[str, Any]:
    """Train the ECG model on the training patients, write it and its card."""
    from devices.tinyml import train_ecg as te

    names = sorted(p.stem for p in Path(args.data).glob("*.hea"))
    train_names, val_names = te.split_records(names, args.seed, args.val_records)
    _log(f"train patients {train_names}\nvalidation patients {val_names}")
    train_parts = te.load_sources(Path(args.data), train_names, True, args.seed, _log)
    val_parts = te.load_sources(Path(args.data), val_names, False, args.seed, _log)
    data = te.stack(train_parts)
    counts = np.bincount(data["label"]).tolist()
    _log(f"training beats by class {dict(zip('NSVF', counts, strict=False))}")
    cv = None
    if args.folds > 1:
        cv_reports = te.cross_validate(train_parts, args.epochs, args.seed, args.folds, _log)
        cv = {"folds": args.folds,
              "total": ev.total_report(cv_reports, np.zeros(0), np.zeros(0, bool)),
              "records": [{k: v for k, v in r.items() if k != "counts"} for r in cv_reports]}
    model = te.fit(data, args.epochs, args.seed, _log)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{ECG_MODEL}.tflite"
    path.write_bytes(te.quantise(model, data, args.seed))
    int8, flt = EcgModel.load(str(path)), EcgModel(te.keras_runner(model), 0)
    reports, agree, scores, truth = [], [], [], []
    for lw in val_parts:
        q: EcgResult = int8.score(lw.batch.signal, lw.batch.fs, lw.device)
        f: EcgResult = flt.score(lw.batch.signal, lw.batch.fs, lw.device)
        reports.append(ev.record_report(lw, q))
        agree.append((q.flag == f.flag).astype(float))
        scores.append(ev.window_scores(q))
        truth.append(ev.window_truth(lw))
    total = ev.total_report(reports, np.concatenate(scores), np.concatenate(truth))
    tiny = TinyModel.load(str(path))
    macs = count_macs(tiny)
    summary = {"model": ECG_MODEL, "bytes": tiny.size_bytes, **macs,
               "train_patients": train_names, "validation_patients": val_names,
               "seed": args.seed, "epochs": args.epochs,
               "synthetic_s": te.SYNTHETIC_WINDOWS * WINDOW_S,
               "training_beats": {c: int(n) for c, n in zip("NSVF", np.bincount(data["label"]),
                                                             strict=False)},
               "validation": {"total": total, "records": [
                   {k: v for k, v in r.items() if k != "counts"} for r in reports]},
               "cross_validation": cv,
               "int8_float_flag_agreement": round(float(np.concatenate(agree).mean()), 4),
               "cost_per_window": window_cost(macs["macs"], macs["ops"], 12, 2500).__dict__}
    (out / f"{ECG_MODEL}.md").write_text(ecg_card(summary))
    _log(json.dumps(summary["validation"]["total"], indent=1))
    _log(f"int8/float window flag agreement {summary['int8_float_flag_agreement']}")
    return summary


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _rows(records: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"| {r['record']} | {r['windows']} | {r['V']['reference']} | {_fmt(r['V']['sensitivity'])}"
        f" | {_fmt(r['V']['ppv'])} | {r['S']['reference']} | {_fmt(r['S']['sensitivity'])} | "
        f"{_fmt(r['S']['ppv'])} | {_fmt((r['af'] or {}).get('sensitivity'))} | "
        f"{_fmt((r['af'] or {}).get('specificity'))} | {r['window_auroc']} |"
        for r in records)


def _cv_section(cv: dict[str, Any] | None) -> str:
    if cv is None:
        return "Not run for this file (`--folds 0`)."
    t = cv["total"]
    return CV_SECTION.format(
        folds=cv["folds"], vse=_fmt(t["V"]["sensitivity"]), vppv=_fmt(t["V"]["ppv"]),
        sse=_fmt(t["S"]["sensitivity"]), sppv=_fmt(t["S"]["ppv"]), nv=t["V"]["reference"],
        ns=t["S"]["reference"], rows=_rows(cv["records"]))


def ecg_card(s: dict[str, Any]) -> str:
    """The ECG model's card (Markdown)."""
    t = s["validation"]["total"]
    af = t["af"] or {}
    cost = s["cost_per_window"]
    return CARD.format(
        bytes=s["bytes"], macs=s["macs"], ops=s["ops"], train=", ".join(s["train_patients"]),
        val=", ".join(s["validation_patients"]), seed=s["seed"], epochs=s["epochs"],
        beats=s["training_beats"], rows=_rows(s["validation"]["records"]),
        vse=_fmt(t["V"]["sensitivity"]),
        vppv=_fmt(t["V"]["ppv"]), sse=_fmt(t["S"]["sensitivity"]), sppv=_fmt(t["S"]["ppv"]),
        afse=_fmt(af.get("sensitivity")), afsp=_fmt(af.get("specificity")),
        auroc=t["window_auroc"], agree=_fmt(s["int8_float_flag_agreement"]),
        ms=1e3 * cost["latency_s"], mj=cost["energy_mj"], nv=t["V"]["reference"],
        ns=t["S"]["reference"], cv=_cv_section(s.get("cross_validation")),
        n_delta=DELTA_LEN, n_context=N_CONTEXT, syn_s=s["synthetic_s"])


CARD = """# Model card: `ecg_beat_af.tflite`

Per-beat ECG classifier for the ECG patch: AAMI beat class (N, S, V, F) and "this beat is in
atrial fibrillation or flutter", int8, run by LiteRT on every beat of every 10-s window of the
fleet in one batch (`devices.tinyml.ecg.EcgModel`). A multilayer perceptron (two hidden
layers) over how each beat differs from the patient's own beats.

* **Size**: {bytes} bytes (limit 32 KB). **MACs per inference (one beat)**: {macs:,} in
  {ops} operators. Estimated on a Cortex-M4F @ 64 MHz (`devices.tinyml.energy`), a 10-s
  window with 12 beats, filters and QRS detection included: {ms:.2f} ms, {mj:.4f} mJ.
* **Inputs** (`devices.tinyml.features`; beats come from the device's own QRS detector at
  250 Hz, not from annotations): `delta` ({n_delta}): the beat from -256 ms to +384 ms around
  R at 125 Hz, 0.5-40 Hz band-passed and scaled by the window's median beat amplitude, minus
  the window's *template* (the sample-wise median of its first 9 beats that are not premature);
  `context` ({n_context}): previous/next RR (s), window median RR (s), their ratios, the
  window's normalised RMSSD, RR coefficient of variation and pNN50; the template's P wave
  (its range before the QRS as a share of the QRS range, saturating at 0.3: ADR 0018); the
  beat against the template: correlation, residual RMS, and over the QRS correlation,
  energy, width and slope ratios; then the beat and the template against the patient's
  *reference beat* (ADR 0017): in a window whose template is conducted (a P wave, under
  120 bpm, RR coefficient of variation under 0.15) that template, in any other the median
  of the last 5 conducted templates the patch carries from window to window: correlation,
  QRS correlation, QRS width ratio, and the template's QRS correlation with it.
* **Outputs**: `beat_class` softmax over N S V F; `af` sigmoid. Flags: V or S if its
  probability >= 0.5; a window is AF if it has >= 4 beats whose mean `af` is >= 0.5.
  Thresholds fixed at 0.5 before validation, never tuned on it.
* **Quantisation**: full-integer post-training (int8 weights, activations, inputs and
  outputs), 2,000 representative training beats. int8 and float models agree on
  **{agree}** of window flags on the validation windows.
* **Training data**: MIT-BIH Arrhythmia Database (Moody & Mark 2001, PhysioNet, ODC-By 1.0),
  DS1 half of the de Chazal inter-patient split, patients {train}; plus the twin's synthetic
  ECG (sinus, AF, bigeminy, PVCs, VT, tachycardia, bradycardia; 24 synthetic patients x
  {syn_s:.0f} s each). Detected training beats by class: {beats}. Seed {seed}, {epochs} epochs,
  class weights sqrt(inverse frequency), residual amplitude/noise and RR augmentation.
* **Validation patients** (never seen in training, patient-level split drawn by seed before
  training): {val}.

## Cross-validation on the training patients (how the inputs and the model were chosen)

{cv}

## Validation (int8 model, device pipeline, validation patients only)

Gross statistics over the validation patients ({nv} V beats, {ns} S beats), scored as
`twin eval ecg` scores them: as AAMI EC57 counts beats (WFDB `bxb`, ADR 0016): +-150 ms
matching; a V flag on an N or S beat or on no reference beat is a false positive, one on a
fusion beat is not counted; flutter/fibrillation spans are left out:

| | sensitivity | positive predictivity |
| --- | --- | --- |
| V beats | **{vse}** | **{vppv}** |
| S beats | {sse} | {sppv} |
| AF windows | {afse} | specificity {afsp} |

Window AUROC for "any abnormal beat": {auroc}.

| record | windows | V | V Se | V +P | S | S Se | S +P | AF Se | AF Sp | AUROC |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}

For scale: de Chazal et al. (IEEE TBME 2004) reached V 77.7 % / 81.9 % on DS2 from DS1.
These validation patients are a handful of DS1 records, so the numbers are noisy; DS2 was
never used. Limitations: one lead (MLII, chosen by name: record 114 stores it second); 10-s
windows whose only carry-over is the reference beat (beats at window edges have padded
context); patients who show no conducted window (203, in AF and flutter throughout, has none)
get no reference, and a window whose beats are mostly ventricular then has only its own,
ventricular template, which is where most missed V beats are; AF learnt from two real
patients and synthetic AF.
"""

CV_SECTION = """Leave-patients-out, {folds} folds over the training patients only (each fold's
records scored by a model trained on the other training records and the synthetic rhythms;
the validation patients play no part). Pooled: V Se **{vse}**, +P **{vppv}** ({nv} V beats);
S Se {sse}, +P {sppv} ({ns} S beats). Scored as the validation below. Detections in record
207's ventricular flutter are neither trained on nor scored (no beat is annotated there); 203
is the database's noisiest record.

| record | windows | V | V Se | V +P | S | S Se | S +P | AF Se | AF Sp | AUROC |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{rows}"""


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="python -m devices.tinyml.train")
    sub = parser.add_subparsers(dest="model", required=True)
    ecg = sub.add_parser("ecg", help="the ECG beat/AF model from MIT-BIH records")
    ecg.add_argument("--data", default=os.environ.get("MITDB", "../shared/data/mitdb-ds1"))
    ecg.add_argument("--seed", type=int, default=0)
    ecg.add_argument("--epochs", type=int, default=20)
    ecg.add_argument("--val-records", type=int, default=7)
    ecg.add_argument("--folds", type=int, default=5,
                     help="leave-patients-out folds over the training patients (0: skip)")
    ecg.add_argument("--out", default=str(MODELS))
    vit = sub.add_parser("vitals", help="the BP and sweat anomaly models from the twin")
    vit.add_argument("--seed", type=int, default=0)
    vit.add_argument("--epochs", type=int, default=8)
    vit.add_argument("--out", default=str(MODELS))
    vit.add_argument("--kinds", nargs="*", choices=("bp", "sweat"), default=None)
    args = parser.parse_args(argv)
    if args.model == "ecg":
        train_ecg(args)
    else:
        from devices.tinyml.train_vitals import train_vitals

        train_vitals(args, _log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
