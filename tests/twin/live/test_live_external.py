"""Live mode against an external broker: Debian's Mosquitto started with the configuration
the platform exported for a provisioned fleet (``twin run --mode live --broker mqtts://...
--platform DIR``), and the command line's refusals of a bad ``--broker``.

The Mosquitto test skips, saying why, when Mosquitto is not installed (CI installs it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.live.mosquitto import Mosquitto, find_mosquitto
from twin.platform import provision
from twin.runner import load, run_scenario

TENANT = "ward-7"  # the baseline scenario's tenant


@pytest.mark.slow
def test_a_live_run_through_mosquitto_stores_every_window_and_names_the_broker(
        tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    fleet = tmp_path / "fleet"
    provision(fleet, 6, seed=3, tenant=TENANT)
    scenario = load("baseline").with_overrides(devices=5, duration=30, mode="live")
    with Mosquitto(fleet) as mosquitto:
        output = run_scenario(scenario, tmp_path / "out", time_scale=10.0, broker=mosquitto.url,
                              platform=fleet)
    report = output.report
    t = report["telemetry"]
    assert t["published"] > 0 and t["stored"] == t["published"], t
    assert (t["lost"], t["pending"], t["rejected"]) == (0, 0, 0), t
    [broker] = report["brokers"]
    assert broker["kind"] == "external" and broker["url"] == mosquitto.url
    assert broker["published"] >= t["published"] and broker["delivered"] >= t["stored"]
    assert broker["connections"] == 5 + 1
    assert "## Brokers" in (tmp_path / "out" / "report.md").read_text()
    assert not (tmp_path / "out" / "platform").exists()  # the given fleet was used


@pytest.mark.parametrize(("args", "message"), [
    (["--broker", "mqtt://127.0.0.1:1883"], "mqtts://HOST:PORT"),
    (["--broker", "mqtts://127.0.0.1"], "mqtts://HOST:PORT"),
    (["--broker", "mqtts://127.0.0.1:8883"], "--platform"),
])
def test_a_bad_external_broker_is_refused_with_one_line(tmp_path: Path, args: list[str],
                                                        message: str) -> None:
    result = CliRunner().invoke(app, ["run", "baseline", "--mode", "live", "--devices", "2",
                                      "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_a_fleet_of_another_tenant_is_refused(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet"
    provision(fleet, 2, seed=3, tenant="ward-1")
    result = CliRunner().invoke(app, ["run", "baseline", "--mode", "live", "--devices", "2",
                                      "--duration", "20s", "--out", str(tmp_path / "out"),
                                      "--platform", str(fleet)])
    assert result.exit_code == 2 and "tenant 'ward-1'" in result.output, result.output
