"""``twin eval ecg`` through typer's CliRunner on a fresh app."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from devices.tinyml.dataset import record_windows
from twin.commands import eval as eval_cmd

MITDB = Path(__file__).resolve().parents[3] / "shared" / "data" / "mitdb-ds1"
needs_data = pytest.mark.skipif(not (MITDB / "201.hea").exists(), reason="no MIT-BIH DS1")


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    eval_cmd.register(app)
    return app


def _copy(records: list[str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in records:
        for ext in (".hea", ".dat", ".atr"):
            shutil.copy(MITDB / f"{name}{ext}", folder / f"{name}{ext}")
    return folder


@needs_data
def test_eval_scores_records_in_any_folder(tmp_path: Path) -> None:
    folder = _copy(["201", "119"], tmp_path / "somewhere else")
    out = tmp_path / "out" / "eval.json"
    result = CliRunner().invoke(_app(), ["eval", "ecg", "--records", str(folder),
                                         "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "201" in result.output and "held out" in result.output
    assert "bxb" in result.output and "V flags not counted" in result.output
    report = json.loads(out.read_text())
    assert 0 < report["model_bytes"] <= 32 * 1024
    assert report["inferences_per_second"] > 0
    assert [r["record"] for r in report["records"]] == ["119", "201"]
    assert [r["trained_on"] for r in report["records"]] == [True, False]
    total = report["total"]
    for cls in ("V", "S"):
        assert 0.0 <= total[cls]["sensitivity"] <= 1.0 and 0.0 <= total[cls]["ppv"] <= 1.0
    assert set(total["af"]) >= {"sensitivity", "specificity"}  # 201 has AF
    assert 0.5 < total["window_auroc"] <= 1.0
    rec119 = report["records"][0]
    assert rec119["af"] is None  # no AF annotated in 119
    assert report["total_held_out"]["records"] == 1
    assert "EC57" in report["scoring"]
    assert total["V"]["not_counted"] >= 0 and total["V"]["flagged"] >= 0


def test_missing_folder_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["eval", "ecg", "--records", str(tmp_path / "no")])
    assert result.exit_code == 2
    assert "not a folder" in result.output


def test_folder_without_records_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    result = CliRunner().invoke(_app(), ["eval", "ecg", "--records", str(tmp_path)])
    assert result.exit_code == 2
    assert "no WFDB records" in result.output


def test_corrupt_record_is_named(tmp_path: Path) -> None:
    (tmp_path / "x1.hea").write_text("garbage header\n")
    (tmp_path / "x1.atr").write_bytes(b"\x00\x01")
    result = CliRunner().invoke(_app(), ["eval", "ecg", "--records", str(tmp_path)])
    assert result.exit_code == 2
    assert "x1" in result.output


def test_bad_model_file_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "r.hea").write_text("r 1 250 10\n")
    (tmp_path / "r.atr").write_bytes(b"")
    bad = tmp_path / "m.tflite"
    bad.write_bytes(b"nope")
    result = CliRunner().invoke(_app(), ["eval", "ecg", "--records", str(tmp_path),
                                         "--model", str(bad)])
    assert result.exit_code == 2
    assert "m.tflite" in result.output


@needs_data
def test_another_lead_can_be_scored(tmp_path: Path) -> None:
    folder = _copy(["119"], tmp_path / "records")  # only a training patient: nothing held out
    reports = {}
    for lead in ("MLII", "V1"):
        out = tmp_path / f"{lead}.json"
        result = CliRunner().invoke(_app(), ["eval", "ecg", "--records", str(folder),
                                             "--lead", lead, "--json", str(out)])
        assert result.exit_code == 0, result.output
        reports[lead] = json.loads(out.read_text())
    assert reports["V1"]["lead"] == "V1" and reports["V1"]["total_held_out"] is None
    assert reports["V1"]["records"][0]["V"]["reference"] == 444  # the same annotations
    v1, mlii = (record_windows(folder / "119", lead=lead).batch.signal for lead in ("V1", "MLII"))
    assert not np.allclose(v1, mlii)  # another signal was scored
