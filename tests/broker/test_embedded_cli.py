"""``twin broker --run DIR``: registered on a fresh Typer app and driven by CliRunner."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.broker.pki_fixtures import TENANT, Client, Pki, telemetry
from twin.commands.broker import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop", hidden=True)
    def _noop() -> None:  # a second command keeps typer from collapsing the group
        """Unused."""

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_missing_pki_is_one_line_and_status_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["broker", "--run", str(tmp_path), "--port", "0"])
    assert result.exit_code == 2
    assert "root file not found" in result.output
    assert "Traceback" not in result.output


def test_bad_port_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["broker", "--run", str(tmp_path), "--port", "70000"])
    assert result.exit_code == 2


@pytest.mark.slow
def test_serves_the_provisioned_fleet_until_the_time_is_up(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    port = _free_port()
    results: list[object] = []
    runner = threading.Thread(target=lambda: results.append(CliRunner().invoke(
        _app(), ["broker", "--run", str(tmp_path), "--port", str(port), "--seconds", "4"])))
    runner.start()
    cloud = Client(port, pki.root_pem, pki.cloud())
    deadline = time.monotonic() + 3
    while not cloud.connect(timeout=1) and time.monotonic() < deadline:
        cloud = Client(port, pki.root_pem, pki.cloud())
        time.sleep(0.1)
    assert cloud.subscribe(f"medtwin/v1/{TENANT}/+/telemetry") == [1]
    device = Client(port, pki.root_pem, pki.device("cli device"))
    assert device.connect()
    device.publish(telemetry(pki.device("cli device")), b"via the CLI")
    time.sleep(0.3)
    assert (telemetry(pki.device("cli device")), b"via the CLI") in cloud.messages
    device.stop()
    cloud.stop()
    runner.join(10)
    result = results[0]
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert f"serving mqtts://127.0.0.1:{port}" in result.output  # type: ignore[attr-defined]
