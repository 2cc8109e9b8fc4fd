"""``twin dashboard [RUN_DIR] [--port P]``, registered onto a fresh Typer app."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import twin.commands.dashboard as command


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Capture the Streamlit command line instead of starting Streamlit."""
    calls: list[list[str]] = []
    monkeypatch.setattr(command, "_serve", lambda cmd: calls.append(cmd) or 0)
    return calls


def _cli() -> typer.Typer:
    app = typer.Typer()
    command.register(app)

    @app.command()
    def other() -> None:  # a second command, so typer keeps "dashboard" as a sub-command
        """Nothing."""

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_starts_streamlit_locally_on_the_given_run(served, tmp_path: Path):
    port = _free_port()
    result = CliRunner().invoke(_cli(), ["dashboard", str(tmp_path), "--port", str(port)])
    assert result.exit_code == 0, result.output
    (cmd,) = served
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("dashboards/app.py")
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.port") + 1] == str(port)
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[-2:] == ["--", str(tmp_path)]
    assert f"http://127.0.0.1:{port}/" in result.output


def test_without_a_run_it_opens_the_newest_under_runs(served, runs_root: Path, monkeypatch):
    monkeypatch.setenv("MEDTWIN_RUNS_ROOT", str(runs_root))
    (runs_root / "baseline-small" / "report.json").touch()  # make it the newest
    result = CliRunner().invoke(_cli(), ["dashboard", "--port", str(_free_port())])
    assert result.exit_code == 0, result.output
    assert served[0][-1] == str(runs_root / "baseline-small")


def test_without_any_run_it_still_starts_and_says_why(served, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MEDTWIN_RUNS_ROOT", str(tmp_path / "none"))
    result = CliRunner().invoke(_cli(), ["dashboard", "--port", str(_free_port())])
    assert result.exit_code == 0
    assert "--" not in served[0]
    assert "no runs under" in result.output


def test_a_busy_port_is_a_one_line_error(served, tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(_cli(), ["dashboard", str(tmp_path), "--port", str(port)])
    assert result.exit_code == 2
    assert f"port {port}" in result.output and not served


def test_streamlit_exit_status_is_passed_on(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(command, "_serve", lambda cmd: 3)
    result = CliRunner().invoke(_cli(), ["dashboard", str(tmp_path), "--port", str(_free_port())])
    assert result.exit_code == 3
