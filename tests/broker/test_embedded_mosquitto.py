"""The same refusals against Debian's Mosquitto with the configuration the platform exports
(``cloud.onboarding.mosquitto_conf`` and ``mosquitto_acl``), checked with ``mosquitto_pub`` and
``mosquitto_sub``: tools the project did not write.

Needs the Debian packages ``mosquitto`` and ``mosquitto-clients``, which ``make test`` installs
as root (``scripts/system-packages``); without them the tests skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from cloud.onboarding import cloud_grants, device_grants, mosquitto_acl, mosquitto_conf
from tests.broker.pki_fixtures import TENANT, Creds, Pki, telemetry

pytestmark = pytest.mark.slow
SBIN = ("/usr/sbin", "/usr/local/sbin")


def _which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def _ensure_mosquitto() -> str:
    if _which("mosquitto") and _which("mosquitto_pub"):
        return str(_which("mosquitto"))
    found = _which("mosquitto")
    if not found or not _which("mosquitto_pub"):
        pytest.skip("Mosquitto is not installed (as root: scripts/system-packages, or "
                    "apt-get install -y mosquitto mosquitto-clients)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Fleet:
    """A PKI, the devices it knows, and a Mosquitto configured by the platform's export."""

    def __init__(self, folder: Path) -> None:
        self.pki = Pki(folder)
        self.alice, self.bob = self.pki.device("alice"), self.pki.device("bob")
        self.revoked = self.pki.device("revoked")
        self.pki.revoke(self.revoked)
        self.cloud = self.pki.cloud()
        self.port = _free_port()
        bundle = folder / "pki" / "ca-bundle.pem"  # verifies clients: root and issuing CA
        bundle.write_bytes(self.pki.root_pem.read_bytes()
                           + (folder / "pki" / "issuing.pem").read_bytes())
        grants = [device_grants(TENANT, d.name) for d in (self.alice, self.bob, self.revoked)]
        (folder / "acl").write_text(mosquitto_acl([*grants, cloud_grants(TENANT)]))
        conf = mosquitto_conf(port=self.port, cafile=str(bundle),
                              certfile=str(folder / "broker" / "cert.pem"),
                              keyfile=str(folder / "broker" / "key.pem"),
                              crlfile=str(self.pki.crl_pem), aclfile=str(folder / "acl"))
        if os.geteuid() == 0:  # as root Mosquitto drops to user "mosquitto": keep the tmp files
            conf += "user root\n"
        (folder / "mosquitto.conf").write_text(conf)
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"

    def args(self, creds: Creds | None, client_id: str | None = None) -> list[str]:
        """Connection arguments for mosquitto_pub / mosquitto_sub."""
        out = ["-h", "127.0.0.1", "-p", str(self.port), "--cafile", str(self.pki.root_pem)]
        if creds is not None:
            out += ["--cert", str(creds.cert), "--key", str(creds.key)]
        return [*out, "-i", client_id or (creds.name if creds else "anonymous")]

    def pub(self, creds: Creds | None, topic: str, message: str,
            client_id: str | None = None) -> subprocess.CompletedProcess[str]:
        """Publish one QoS 1 message; returns the finished process."""
        return subprocess.run(["mosquitto_pub", *self.args(creds, client_id), "-t", topic,
                               "-m", message, "-q", "1"], capture_output=True, text=True,
                              timeout=20)

    def sub(self, creds: Creds, topic_filter: str, count: int = 1,
            wait: int = 4) -> subprocess.Popen[str]:
        """Start a subscriber printing ``topic payload`` lines; give it time to subscribe."""
        proc = subprocess.Popen(["mosquitto_sub", *self.args(creds), "-t", topic_filter, "-v",
                                 "-q", "1", "-C", str(count), "-W", str(wait)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.7)
        return proc


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    binary = _ensure_mosquitto()
    f = Fleet(tmp_path_factory.mktemp("mosquitto"))
    log = f.conf.with_name("mosquitto.log").open("w")  # a file: a full pipe would block it
    proc = subprocess.Popen([binary, "-v", "-c", str(f.conf)], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", f.port), 0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"mosquitto exited: {f.log.read_text()[-2000:]}")
            time.sleep(0.1)
    yield f
    proc.terminate()
    proc.wait(10)
    log.close()


def _fleet_still_served(f: Fleet) -> None:
    sub = f.sub(f.cloud, f"medtwin/v1/{TENANT}/+/telemetry")
    assert f.pub(f.alice, telemetry(f.alice), "alive").returncode == 0
    out, _ = sub.communicate(timeout=10)
    assert f"{telemetry(f.alice)} alive" in out


def test_valid_device_telemetry_reaches_the_cloud(fleet: Fleet) -> None:
    _fleet_still_served(fleet)


CASES = {
    "no certificate": lambda f: None,
    "self-signed": lambda f: f.pki.self_signed_device("self-signed"),
    "another CA": lambda f: f.pki.foreign_device("foreign"),
    "expired": lambda f: f.pki.device("expired", issued=f.pki.now - timedelta(days=10),
                                      validity=timedelta(days=1)),
    "revoked": lambda f: f.revoked,
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_at_the_handshake(fleet: Fleet, case: str) -> None:
    creds = CASES[case](fleet)
    result = fleet.pub(creds, telemetry(creds) if creds else "x", "should not pass")
    assert result.returncode != 0, result
    _fleet_still_served(fleet)


def test_publish_to_another_devices_topic_is_not_delivered(fleet: Fleet) -> None:
    sub = fleet.sub(fleet.cloud, f"medtwin/v1/{TENANT}/+/telemetry", count=2, wait=3)
    fleet.pub(fleet.bob, telemetry(fleet.alice), "forged")
    fleet.pub(fleet.bob, telemetry(fleet.bob), "own")
    out, _ = sub.communicate(timeout=10)
    assert f"{telemetry(fleet.bob)} own" in out
    assert "forged" not in out


def test_subscribing_to_everything_gets_nothing(fleet: Fleet) -> None:
    spy = fleet.sub(fleet.bob, "#", wait=2)
    fleet.pub(fleet.alice, telemetry(fleet.alice), "private")
    out, _ = spy.communicate(timeout=10)
    assert "private" not in out


def test_client_id_spoofing_does_not_knock_the_victim_off(fleet: Fleet) -> None:
    victim_cmd = f"medtwin/v1/{TENANT}/{fleet.alice.name}/cmd/ping"
    victim = fleet.sub(fleet.alice, f"medtwin/v1/{TENANT}/{fleet.alice.name}/cmd/#", wait=5)
    fleet.pub(fleet.bob, telemetry(fleet.bob), "spoof", client_id=fleet.alice.name)
    assert fleet.pub(fleet.cloud, victim_cmd, "still there?").returncode == 0
    out, _ = victim.communicate(timeout=10)
    assert f"{victim_cmd} still there?" in out
    # use_username_as_clientid: the spoofer got its own id, alice's session was never replaced
    assert f"Client {fleet.alice.name} already connected" not in fleet.log.read_text()
