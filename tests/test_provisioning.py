"""A provisioned run directory against tools the project did not write, and its own broker.

* ``openssl verify -crl_check`` accepts an active device's certificate and rejects a revoked
  one (issue 5 acceptance);
* the files ``twin provision`` writes serve the embedded broker as they are: a provisioned
  device's ``cert.pem`` + ``key.pem`` connects and its telemetry reaches the cloud (with the
  cloud's own files); after ``twin platform revoke`` and a CRL reload its session is dropped
  and it cannot come back, while the rest of the fleet is served.

Everything is written to pytest's tmp folders; nothing here is committed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from broker.embedded import BrokerSettings, BrokerThread
from broker.tls import TlsFiles
from cloud.enrolment import EnrolmentError
from cloud.inventory import SqliteInventory, State
from tests.broker.pki_fixtures import Client, Creds
from twin.platform import provision, renew_device, revoke_device

TENANT = "ward-3"
OPENSSL = shutil.which("openssl")


def _devices(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "devices").iterdir())


def _openssl_verify(run: Path, *certs: Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, "verify", "-CAfile", str(run / "pki" / "root.pem"),
         "-untrusted", str(run / "pki" / "issuing.pem"), "-crl_check",
         "-CRLfile", str(run / "pki" / "crl.pem"), *map(str, certs)],
        capture_output=True, text=True, timeout=30, check=False)


def _wait(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def run(tmp_path: Path) -> Path:
    provision(tmp_path / "run", 4, seed=11, tenant=TENANT)
    return tmp_path / "run"


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_openssl_rejects_the_revoked_certificate_and_accepts_the_others(run: Path) -> None:
    doomed, *others = _devices(run)
    certs = [run / "devices" / d / "cert.pem" for d in (doomed, *others)]
    before = _openssl_verify(run, *certs)
    assert before.returncode == 0 and before.stdout.count(": OK") == 4, before.stdout
    done = revoke_device(run, doomed, "keyCompromise")
    assert done.devices == (doomed,) and done.crl_number == 2
    revoked = _openssl_verify(run, certs[0])
    assert revoked.returncode != 0
    assert "certificate revoked" in revoked.stdout + revoked.stderr
    still = _openssl_verify(run, *certs[1:])
    assert still.returncode == 0 and still.stdout.count(": OK") == 3, still.stdout
    inventory = SqliteInventory(run / "inventory.sqlite")
    try:
        states = {r.device: r.state for r in inventory.records()}
        assert states[doomed] is State.REVOKED
        assert inventory.audit()[-1].event == "revoke"
    finally:
        inventory.close()
    assert doomed not in (run / "broker" / "acl").read_text()  # the broker policy too


def test_renewal_of_a_revoked_device_is_refused_and_a_live_one_renews(run: Path) -> None:
    doomed, live, *_ = _devices(run)
    old = (run / "devices" / live / "cert.pem").read_bytes()
    revoke_device(run, doomed)
    with pytest.raises(EnrolmentError, match="revoked"):
        renew_device(run, doomed)
    done = renew_device(run, live)
    assert done.kind.value == "renew" and done.device == live
    assert (run / "devices" / live / "cert.pem").read_bytes() not in (old, b"")
    if OPENSSL is not None:
        assert _openssl_verify(run, run / "devices" / live / "cert.pem").returncode == 0


def _creds(run: Path, device: str) -> Creds:
    folder = run / "devices" / device
    doc = json.loads((folder / "device.json").read_text())
    return Creds(doc["id"], folder / "cert.pem", folder / "key.pem", 0)


@pytest.mark.slow
def test_the_written_files_serve_the_embedded_broker_and_revocation_drops_the_session(
        run: Path) -> None:
    settings = BrokerSettings(TlsFiles.from_run_dir(run), connect_timeout=2.0)
    root = run / "pki" / "root.pem"
    kept, doomed = (_creds(run, d) for d in _devices(run)[:2])
    with BrokerThread(settings) as broker:
        cloud = Client(broker.port, root, Creds("cloud", run / "cloud" / "cert.pem",
                                                run / "cloud" / "key.pem", 0))
        assert cloud.connect(), cloud.reason
        assert cloud.subscribe(f"medtwin/v1/{TENANT}/+/telemetry") == [1]
        clients = {c.name: Client(broker.port, root, c) for c in (kept, doomed)}
        for name, client in clients.items():
            assert client.connect(), (name, client.reason)
            topic = json.loads((run / "devices" / name / "device.json").read_text())["publish"][0]
            client.publish(topic, f"hello from {name}".encode())
        assert _wait(lambda: len(cloud.messages) == 2), cloud.messages
        revoke_device(run, doomed.name)
        assert broker.reload_crl() == [doomed.name]
        assert _wait(clients[doomed.name].closed.is_set)
        again = Client(broker.port, root, doomed)
        assert not again.connect(), "a revoked device came back"
        clients[kept.name].publish(f"medtwin/v1/{TENANT}/{kept.name}/telemetry", b"still here")
        assert _wait(lambda: any(p == b"still here" for _, p in cloud.messages))
        for client in (cloud, clients[kept.name]):
            client.stop()
