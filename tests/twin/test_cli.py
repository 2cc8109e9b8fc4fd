"""The ``twin`` command line: happy paths and one clear line for each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin import __version__
from twin.cli import app

runner = CliRunner()


def twin(*args: str):
    return runner.invoke(app, list(args))


def error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), result.output
    return " ".join(lines)


def test_version():
    result = twin("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"medtwin {__version__}"


def test_scenarios_lists_bundled_ones_with_a_line_each():
    result = twin("scenarios")
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines()]
    assert "baseline" in names and "outage" in names


def test_run_writes_the_three_files_and_prints_the_report_path(tmp_path: Path):
    out = tmp_path / "run"
    result = twin("run", "baseline", "--devices", "30", "--duration", "2m", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.json'}" in result.output
    for name in ("report.json", "report.md", "store.sqlite"):
        assert (out / name).is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["devices"] == 30 and report["sim_seconds"] == 120


def test_run_refuses_to_overwrite_a_run_unless_forced(tmp_path: Path):
    args = ("run", "baseline", "--devices", "10", "--duration", "30s", "--out", str(tmp_path))
    assert twin(*args).exit_code == 0
    assert "already holds a run" in error_line(twin(*args))
    assert twin(*args, "--force").exit_code == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("run", "no/such/file.yaml"), "no/such/file.yaml: no such file"),
        (("run", "nosuchscenario"), "no bundled scenario of that name (bundled: baseline"),
        (("run", "baseline", "--devices", "-5"), "--devices must be at least 1"),
        (("run", "baseline", "--devices", "0"), "--devices must be at least 1"),
        (("run", "baseline", "--duration", "-10m"), "--duration"),
        (("run", "baseline", "--duration", "soon"), "--duration"),
        (("run", "baseline", "--mode", "warp"), "mode"),
        (("run", "ota", "--mode", "live"), "live mode cannot run an OTA campaign yet"),
    ],
)
def test_bad_input_gives_one_clear_line(args, expected, tmp_path: Path):
    line = error_line(twin(*args, "--out", str(tmp_path / "o")))
    assert expected in line


def test_bad_yaml_names_the_file_and_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfleet: {devices: {ecg_patch: 1}\n")
    line = error_line(twin("run", str(bad), "--out", str(tmp_path / "o")))
    assert "bad.yaml:" in line and "invalid YAML" in line


def test_unknown_key_is_named(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nduration: 1m\nfleet: {devices: {ecg_patch: 1}}\nturbo: true\n")
    line = error_line(twin("run", str(bad), "--out", str(tmp_path / "o")))
    assert "turbo" in line and "unknown key" in line


def test_unwritable_output_folder_is_refused(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = error_line(twin("run", "baseline", "--devices", "5", "--duration", "30s",
                           "--out", str(blocker / "run")))
    assert "cannot create output folder" in line


def test_bench_rejects_bad_sizes():
    assert "--devices" in error_line(twin("bench", "--devices", "0"))
    assert "bad --devices" in error_line(twin("bench", "--devices", "many"))


def test_bench_rejects_an_unknown_suite():
    assert "unknown suite 'warp'" in error_line(twin("bench", "--only", "warp"))


def test_bench_rejects_an_unknown_identity():
    assert "--identity: 'warp'" in error_line(twin("bench", "--only", "fleet",
                                                   "--identity", "warp"))


def test_bench_fleet_suite_runs_with_platform_enrolled_identities():
    result = twin("bench", "--only", "fleet", "--devices", "6", "--duration", "1m",
                  "--identity", "qdid")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout[result.stdout.index("{"):])
    (measured,) = doc["fleet"]["results"]
    assert measured["identity"] == "qdid" and measured["stored"] > 0


def test_bench_signals_suite_reports_ecg_throughput():
    import json

    result = twin("bench", "--only", "signals")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout[result.stdout.index("{"):])
    assert doc["signals"] and "machine" in doc


def test_a_defence_can_be_switched_off_from_the_command_line(tmp_path: Path):
    out = tmp_path / "run"
    result = twin("run", "baseline", "--devices", "10", "--duration", "30s",
                  "--defence", "topic_acl=off", "--out", str(out))
    assert result.exit_code == 0, result.output
    defences = json.loads((out / "report.json").read_text())["security"]["defences"]
    assert defences["topic_acl"] is False and defences["replay_window"] is True


@pytest.mark.parametrize(("item", "expected"), [
    ("firewall=off", "unknown defence 'firewall'"),
    ("topic_acl", "write NAME=on or NAME=off"),
    ("topic_acl=maybe", "write NAME=on or NAME=off"),
])
def test_a_bad_defence_switch_is_one_clear_line(item: str, expected: str, tmp_path: Path):
    assert expected in error_line(twin("run", "baseline", "--defence", item,
                                       "--out", str(tmp_path / "o")))
