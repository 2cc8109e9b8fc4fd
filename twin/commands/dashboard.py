"""``twin dashboard [RUN_DIR] [--port P]``: start the Streamlit dashboard on 127.0.0.1.

Registered onto the ``twin`` app by ``twin.cli`` with :func:`register`. The dashboard opens on
``RUN_DIR``, or on the most recently written run under ``./runs`` (``$MEDTWIN_RUNS_ROOT``)
when none is given; a folder that is not a readable run is still opened, and the page says
what is wrong with it (so a mistyped path is corrected in the sidebar, not by restarting).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Annotated

import typer

DEFAULT_PORT = 8501
HOST = "127.0.0.1"


def app_path() -> Path:
    """The dashboard's Streamlit entry script (``dashboards/app.py``), found without importing
    the app (which needs a Streamlit script context)."""
    spec = find_spec("dashboards")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the dashboards package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "app.py"


def streamlit_command(run_dir: Path | None, port: int) -> list[str]:
    """The ``streamlit run`` command line: local address only, headless, no usage stats."""
    cmd = [sys.executable, "-m", "streamlit", "run", str(app_path()),
           "--server.address", HOST, "--server.port", str(port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false"]
    return cmd + (["--", str(run_dir)] if run_dir is not None else [])


def port_free(port: int) -> bool:
    """Whether ``HOST:port`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _serve(cmd: list[str]) -> int:
    """Run Streamlit in the foreground until it exits or Ctrl-C; returns its exit status."""
    process = subprocess.Popen(cmd)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()


def dashboard(
    run_dir: Annotated[Path | None, typer.Argument(
        help="A run folder (default: the newest under ./runs).", show_default=False)] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.", min=1, max=65535)]
    = DEFAULT_PORT,
) -> None:
    """Open the Streamlit dashboard on a run (finished, or still being written)."""
    from dashboards.run import latest_run, runs_root

    if run_dir is None:
        run_dir = latest_run()
        if run_dir is None:
            typer.echo(f"no runs under {runs_root()}/ yet: the dashboard opens on its "
                       "Scenarios page, or run `twin run baseline` first", err=True)
    if not port_free(port):
        typer.echo(f"error: port {port} on {HOST} is in use; choose another with --port",
                   err=True)
        raise typer.Exit(2)
    typer.echo(f"dashboard: http://{HOST}:{port}/"
               + (f" (run {run_dir})" if run_dir is not None else ""))
    raise typer.Exit(_serve(streamlit_command(run_dir, port)))


def register(app: typer.Typer) -> None:
    """Add the ``dashboard`` command to ``app`` (the ``twin`` CLI)."""
    app.command("dashboard")(dashboard)
