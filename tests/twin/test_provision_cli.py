"""``twin provision`` and ``twin platform revoke|renew`` through typer's CliRunner.

The commands are registered onto a fresh ``typer.Typer()`` (``twin.cli`` wires the real one).
``twin provision --devices 50`` must write every file of issue 5 item 9, and every device
certificate must chain to the root according to ``openssl verify``, a tool we did not write.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import typer
from cryptography import x509
from typer.testing import CliRunner

from cloud.inventory import SqliteInventory
from cloud.onboarding import device_grants
from twin.commands import provision

N = 50
TENANT = "ward-9"
OPENSSL = shutil.which("openssl")


def _app() -> typer.Typer:
    app = typer.Typer()
    provision.register(app)
    return app


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "fleet"
    result = CliRunner().invoke(_app(), ["provision", "--devices", str(N), "--out", str(out),
                                         "--seed", "3", "--tenant", TENANT])
    assert result.exit_code == 0, result.output
    assert f"provisioned {N} devices for tenant {TENANT}: {N} onboarded" in result.output
    assert "devices/s" in result.output
    return out


def test_provision_writes_every_file_of_the_run_directory(run: Path) -> None:
    for name in ("pki/root.pem", "pki/issuing.pem", "pki/crl.pem", "cloud/cert.pem",
                 "cloud/key.pem", "broker/cert.pem", "broker/key.pem", "broker/mosquitto.conf",
                 "broker/acl", "broker/ca-bundle.pem", "inventory.sqlite", "platform.json"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    devices = sorted((run / "devices").iterdir())
    assert len(devices) == N
    for folder in devices:
        assert {p.name for p in folder.iterdir()} == {"cert.pem", "key.pem", "device.json"}
        assert stat.S_IMODE((folder / "key.pem").stat().st_mode) == 0o600
        doc = json.loads((folder / "device.json").read_text())
        grants = device_grants(TENANT, folder.name)
        assert doc["id"] == folder.name and doc["tenant"] == TENANT
        assert doc["kind"] in ("ecg_patch", "bp_cuff", "sweat_patch")
        assert (doc["publish"], doc["subscribe"]) == (list(grants.publish),
                                                      list(grants.subscribe))
    inventory = SqliteInventory(run / "inventory.sqlite")
    try:
        assert inventory.by_state() == {"onboarded": N}
        assert {r.device for r in inventory.records()} == {d.name for d in devices}
    finally:
        inventory.close()


def test_the_broker_files_are_what_mosquitto_and_twin_broker_expect(run: Path) -> None:
    chain = x509.load_pem_x509_certificates((run / "broker" / "cert.pem").read_bytes())
    issuing = x509.load_pem_x509_certificate((run / "pki" / "issuing.pem").read_bytes())
    root = x509.load_pem_x509_certificate((run / "pki" / "root.pem").read_bytes())
    assert len(chain) == 2 and chain[1] == issuing  # the broker cert, then the issuing CA
    bundle = x509.load_pem_x509_certificates((run / "broker" / "ca-bundle.pem").read_bytes())
    assert bundle == [root, issuing]
    conf = (run / "broker" / "mosquitto.conf").read_text()
    for line in (f"cafile {(run / 'broker' / 'ca-bundle.pem').resolve()}",
                 f"crlfile {(run / 'pki' / 'crl.pem').resolve()}",
                 f"acl_file {(run / 'broker' / 'acl').resolve()}", "require_certificate true",
                 "use_identity_as_username true", "use_username_as_clientid true"):
        assert line in conf.splitlines(), line
    acl = (run / "broker" / "acl").read_text()
    assert acl.count("\nuser ") + acl.startswith("user ") == N + 1  # every device + the cloud


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_every_device_certificate_chains_to_the_root(run: Path) -> None:
    assert OPENSSL is not None
    certs = sorted(str(p / "cert.pem") for p in (run / "devices").iterdir())
    result = subprocess.run(
        [OPENSSL, "verify", "-CAfile", str(run / "pki" / "root.pem"), "-untrusted",
         str(run / "pki" / "issuing.pem"), "-crl_check", "-CRLfile", str(run / "pki" / "crl.pem"),
         "-purpose", "sslclient", *certs], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": OK") == N


def test_platform_revoke_and_renew_act_on_the_run_directory(tmp_path: Path) -> None:
    out = tmp_path / "small"
    runner, app = CliRunner(), _app()
    assert runner.invoke(app, ["provision", "--devices", "3", "--out", str(out)]).exit_code == 0
    doomed, live, _ = sorted(p.name for p in (out / "devices").iterdir())
    result = runner.invoke(app, ["platform", "revoke", str(out), doomed])
    assert result.exit_code == 0 and f"revoked {doomed}" in result.output, result.output
    crl = x509.load_pem_x509_crl((out / "pki" / "crl.pem").read_bytes())
    assert len(list(crl)) == 1
    again = runner.invoke(app, ["platform", "revoke", str(out), doomed])
    assert again.exit_code == 2 and "revoked" in again.output
    refused = runner.invoke(app, ["platform", "renew", str(out), doomed])
    assert refused.exit_code == 2 and "revoked" in refused.output
    renewed = runner.invoke(app, ["platform", "renew", str(out), live])
    assert renewed.exit_code == 0 and f"renewed {live}" in renewed.output, renewed.output


@pytest.mark.parametrize("args, message", [
    (["--devices", "0"], "--devices must be"),
    (["--devices", "2", "--tenant", "Bad Tenant"], "--tenant"),
    (["--devices", "2", "--seed", "-1"], "--seed"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(_app(), ["provision", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "x").exists()


def test_provision_never_overwrites_an_inventory(tmp_path: Path) -> None:
    runner, app = CliRunner(), _app()
    out = tmp_path / "once"
    assert runner.invoke(app, ["provision", "--devices", "1", "--out", str(out)]).exit_code == 0
    before = (out / "inventory.sqlite").read_bytes()
    result = runner.invoke(app, ["provision", "--devices", "1", "--out", str(out)])
    assert result.exit_code == 2 and "already holds an inventory" in result.output
    assert (out / "inventory.sqlite").read_bytes() == before


def test_unknown_device_and_missing_directory_are_one_line_errors(tmp_path: Path) -> None:
    runner, app = CliRunner(), _app()
    result = runner.invoke(app, ["platform", "revoke", str(tmp_path), "01" + "ab" * 16])
    assert result.exit_code == 2 and "not a provisioned run directory" in result.output
    out = tmp_path / "one"
    assert runner.invoke(app, ["provision", "--devices", "1", "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["platform", "renew", str(out), "01" + "ab" * 16])
    assert result.exit_code == 2 and "no device" in result.output
