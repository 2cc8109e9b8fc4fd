"""A bad or missing run directory is a clear message on the page, never a traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dashboards.run import RunProblem, latest_run, list_runs, open_run
from tests.dashboards.conftest import app_on

RUN_PAGES = ("Fleet", "Patient", "Security", "Root of trust")


def _bad_folders(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "store.sqlite").write_bytes(b"this is not a database" * 100)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with sqlite3.connect(foreign / "store.sqlite") as conn:
        conn.execute("CREATE TABLE x (a)")
    a_file = tmp_path / "a-file"
    a_file.write_text("hello")
    return {
        "missing": (tmp_path / "nope", "no such run directory"),
        "empty": (empty, "no store.sqlite here"),
        "garbage": (garbage, "not a medtwin run store"),
        "foreign": (foreign, "another application's database"),
        "file": (a_file, "not a directory"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "garbage", "foreign", "file"])
def test_open_run_names_the_folder_and_the_problem(case: str, tmp_path: Path):
    folder, why = _bad_folders(tmp_path)[case]
    with pytest.raises(RunProblem) as exc:
        open_run(folder)
    assert why in str(exc.value) and str(folder) in str(exc.value)


@pytest.mark.parametrize("page", RUN_PAGES)
@pytest.mark.parametrize("case", ["missing", "garbage"])
def test_pages_show_a_clear_message_not_a_traceback(page: str, case: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MEDTWIN_RUNS_ROOT", str(tmp_path / "no-runs"))
    folder, why = _bad_folders(tmp_path)[case]
    at = app_on(folder, page)
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and why in at.error[0].value and "no run to show" in at.error[0].value


def test_no_run_at_all_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MEDTWIN_RUNS_ROOT", str(tmp_path / "no-runs"))
    at = app_on("")
    assert not at.exception
    assert "twin run baseline" in at.error[0].value


def test_a_broken_report_is_a_message(baseline: Path, tmp_path: Path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(baseline, broken)
    (broken / "report.json").write_text("{not json")
    at = app_on(broken, "Fleet")
    assert not at.exception
    assert "unreadable report" in at.error[0].value


def test_compare_with_too_few_runs_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MEDTWIN_RUNS_ROOT", str(tmp_path / "no-runs"))
    at = app_on(tmp_path / "nope", "Compare")
    assert not at.exception
    assert "needs two runs" in at.warning[0].value


def test_latest_run_is_the_newest_store(runs_root: Path, tmp_path: Path):
    assert set(list_runs(runs_root)) == {runs_root / "baseline-small", runs_root / "outage-small"}
    assert latest_run(runs_root) == list_runs(runs_root)[0]
    assert latest_run(tmp_path / "nothing-here") is None
