"""Finding and checking run directories: the only place the dashboard decides what a run is.

A run directory holds ``store.sqlite`` (written by ``twin run``, readable while it writes) and,
once the run has finished, ``report.json``. Nothing here imports Streamlit, so the CLI and the
tests use it too. Every way a folder can be unusable ends in one :class:`RunProblem` whose
message says what is wrong with which path, for the page to show instead of a traceback.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.errors import StoreError
from cloud.store import SqliteStore

STORE = "store.sqlite"
REPORT = "report.json"
RUNS_ROOT_ENV = "MEDTWIN_RUNS_ROOT"
RUN_DIR_ENV = "MEDTWIN_RUN_DIR"


class RunProblem(Exception):
    """A folder is not a readable run; the message names the path and what is wrong."""


@dataclass(frozen=True, slots=True)
class Run:
    """A checked run directory.

    Attributes:
        path: the folder (resolved).
        store: its ``store.sqlite``.
        finished: whether ``report.json`` exists (the run wrote its report and stopped).
        key: file sizes and modification times of the store, its WAL and the report; the
            cache key of every query, so a run in progress is re-read as it grows.
    """

    path: Path
    store: Path
    finished: bool
    key: tuple[int, ...]

    @property
    def name(self) -> str:
        """The folder's name, as the sidebar shows it."""
        return self.path.name


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


def open_run(folder: str | os.PathLike[str] | None) -> Run:
    """Check that ``folder`` is a run directory whose store the dashboard can read.

    Args:
        folder: the run directory (or its ``store.sqlite``); None or "" means none chosen.

    Returns:
        The checked :class:`Run`.

    Raises:
        RunProblem: naming the folder: none chosen, missing, not a folder, no store yet, or
            a store that is not a readable medtwin store (from ``SqliteStore.open_readonly``).
    """
    if folder is None or str(folder).strip() == "":
        raise RunProblem("no run chosen: run `twin run baseline` or launch one from Scenarios")
    path = Path(folder).expanduser()
    if path.name == STORE and path.is_file():
        path = path.parent
    if not path.exists():
        raise RunProblem(f"{path}: no such run directory")
    if not path.is_dir():
        raise RunProblem(f"{path}: not a directory (expected a run folder holding {STORE})")
    store = path / STORE
    if not store.is_file():
        raise RunProblem(f"{path}: no {STORE} here, so this is not a run directory (yet)")
    try:
        SqliteStore.open_readonly(store).close()  # checks the application id and schema
    except StoreError as exc:
        raise RunProblem(str(exc)) from None
    report = path / REPORT
    key = (*_stamp(store), *_stamp(Path(f"{store}-wal")), *_stamp(report))
    return Run(path.resolve(), store.resolve(), report.is_file(), key)


def read_report(run: Run) -> dict[str, Any] | None:
    """The run's ``report.json``, or None while the run is still going.

    Raises:
        RunProblem: the report exists but is not a JSON object of schema 1.
    """
    path = run.path / REPORT
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunProblem(f"{path}: unreadable report ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != 1:
        raise RunProblem(f"{path}: not a medtwin report of schema 1")
    return data


def runs_root() -> Path:
    """Where runs live: ``$MEDTWIN_RUNS_ROOT``, else ``./runs``."""
    return Path(os.environ.get(RUNS_ROOT_ENV) or "runs")


def list_runs(root: Path | None = None) -> list[Path]:
    """Run directories directly under ``root`` (default :func:`runs_root`), newest first.

    A folder counts if it holds ``store.sqlite``; its age is that of its newest run file.
    """
    base = runs_root() if root is None else root
    try:
        entries = [p for p in base.iterdir() if (p / STORE).is_file()]
    except OSError:
        return []

    def age(p: Path) -> int:
        return max(_stamp(p / n)[0] for n in (STORE, REPORT, f"{STORE}-wal"))

    return sorted(entries, key=lambda p: (age(p), p.name), reverse=True)


def latest_run(root: Path | None = None) -> Path | None:
    """The most recently written run under ``root``, or None if there is none."""
    runs = list_runs(root)
    return runs[0] if runs else None
