"""The embedded broker over real loopback sockets: paho-mqtt clients, mutual TLS, cloud.pki.

One test per refusal the issue names (handshake: no, self-signed, foreign, expired, revoked
certificate; policy: another device's topic, ``#``, a spoofed client id, a will on another
device's topic), each followed by the check that the fleet is still served.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from broker.embedded import BrokerSettings, BrokerThread
from broker.errors import BrokerSetupError
from broker.ratelimit import RateLimits
from broker.tls import TlsFiles
from tests.broker.pki_fixtures import TENANT, Client, Creds, Pki, telemetry

pytestmark = pytest.mark.slow
FLEET = f"medtwin/v1/{TENANT}/+/telemetry"


def _wait(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    p = Pki(tmp_path_factory.mktemp("run"))
    p.revoked_at_start = p.device("revoked before start")  # type: ignore[attr-defined]
    p.revoke(p.revoked_at_start)  # type: ignore[attr-defined]
    return p


@pytest.fixture(scope="module")
def broker(pki: Pki) -> Iterator[BrokerThread]:
    settings = BrokerSettings(TlsFiles.from_run_dir(pki.folder), connect_timeout=2.0)
    with BrokerThread(settings) as running:
        yield running


@pytest.fixture
def cloud(pki: Pki, broker: BrokerThread) -> Iterator[Client]:
    client = Client(broker.port, pki.root_pem, pki.cloud())
    assert client.connect(), client.reason
    assert client.subscribe(FLEET) == [1]
    yield client
    client.stop()


def _device(pki: Pki, port: int, label: str, **kw: object) -> Client:
    client = Client(port, pki.root_pem, pki.device(label), **kw)  # type: ignore[arg-type]
    assert client.connect(), client.reason
    return client


def _fleet_still_served(pki: Pki, broker: BrokerThread, cloud: Client, label: str) -> None:
    """A valid device connects and its telemetry reaches the cloud."""
    dev = _device(pki, broker.port, label)
    try:
        payload = f"alive after {label}".encode()
        dev.publish(telemetry(pki.device(label)), payload)
        assert _wait(lambda: any(p == payload for _, p in cloud.messages)), cloud.messages
    finally:
        dev.stop()


@pytest.mark.parametrize("tls12", [False, True], ids=["tls1.3", "tls1.2"])
def test_valid_device_telemetry_reaches_the_cloud(pki: Pki, broker: BrokerThread,
                                                  cloud: Client, tls12: bool) -> None:
    dev = _device(pki, broker.port, f"valid {tls12}", tls12=tls12)
    dev.publish(telemetry(pki.device(f"valid {tls12}")), b"window 1")
    assert _wait(lambda: (telemetry(pki.device(f"valid {tls12}")), b"window 1")
                 in cloud.messages)
    dev.stop()


def _refused_at_handshake(broker: BrokerThread, client: Client) -> None:
    before = broker.stats()["handshakes_failed"]
    assert not client.connect(), "the broker accepted a certificate it must refuse"
    assert _wait(lambda: broker.stats()["handshakes_failed"] > before)


CASES = {
    "no certificate": lambda p: None,
    "self-signed": lambda p: p.self_signed_device("self-signed"),
    "another CA": lambda p: p.foreign_device("foreign"),
    "expired": lambda p: p.device("expired", issued=p.now - timedelta(days=10),
                                  validity=timedelta(days=1)),
    "revoked": lambda p: p.revoked_at_start,
}


@pytest.mark.parametrize("case", list(CASES))
def test_refused_at_the_tls_handshake(pki: Pki, broker: BrokerThread, cloud: Client,
                                      case: str) -> None:
    creds: Creds | None = CASES[case](pki)
    client_id = creds.name if creds else "01" + "00" * 16
    _refused_at_handshake(broker, Client(broker.port, pki.root_pem, creds, client_id))
    _fleet_still_served(pki, broker, cloud, f"after {case}")


def test_publish_to_another_devices_topic_is_not_delivered(pki: Pki, broker: BrokerThread,
                                                           cloud: Client) -> None:
    attacker, victim = pki.device("attacker"), pki.device("victim")
    dev = _device(pki, broker.port, "attacker")
    dev.publish(telemetry(victim), b"forged")  # QoS 1: acknowledged, then dropped
    dev.publish(telemetry(attacker), b"own")  # same connection, routed after the forgery
    assert _wait(lambda: (telemetry(attacker), b"own") in cloud.messages)
    assert all(p != b"forged" for _, p in cloud.messages)
    dev.stop()
    assert any("publish" in k for k in broker.stats()["refusals"])


def test_subscribing_to_everything_gets_nothing(pki: Pki, broker: BrokerThread,
                                                cloud: Client) -> None:
    spy = _device(pki, broker.port, "spy")
    assert spy.subscribe("#") == [128]  # MQTT-3.9.3: failure
    assert spy.subscribe(FLEET) == [128]
    assert spy.subscribe(f"medtwin/v1/{TENANT}/{pki.device('victim').name}/cmd/#") == [128]
    _fleet_still_served(pki, broker, cloud, "while spied on")
    time.sleep(0.2)
    assert spy.messages == []
    spy.stop()


def test_client_id_spoofing_is_refused_and_the_victim_stays(pki: Pki, broker: BrokerThread,
                                                            cloud: Client) -> None:
    victim = _device(pki, broker.port, "spoof victim")
    spoofer = Client(broker.port, pki.root_pem, pki.device("spoofer"),
                     client_id=pki.device("spoof victim").name)
    assert not spoofer.connect()
    assert "identifier" in spoofer.reason.lower()  # CONNACK 0x02 (MQTT-3.2.2-3)
    time.sleep(0.2)
    assert victim.connected.is_set() and not victim.closed.is_set()
    victim.publish(telemetry(pki.device("spoof victim")), b"still here")
    assert _wait(lambda: any(p == b"still here" for _, p in cloud.messages))
    victim.stop()


def test_a_will_on_another_devices_topic_is_refused(pki: Pki, broker: BrokerThread,
                                                    cloud: Client) -> None:
    client = Client(broker.port, pki.root_pem, pki.device("will forger"))
    client.mqtt.will_set(telemetry(pki.device("victim")), b"forged will", qos=1)
    assert not client.connect()  # stock amqtt routes the will without the topic ACL
    assert "authori" in client.reason.lower()
    _fleet_still_served(pki, broker, cloud, "after will forgery")


def _raw_tls(pki: Pki, port: int, label: str) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=str(pki.root_pem))
    creds = pki.device(label)
    ctx.load_cert_chain(creds.cert, creds.key)
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), 5),
                           server_hostname="127.0.0.1")


def _hangs_up(sock: ssl.SSLSocket) -> bool:
    """Whether the broker closes the connection before the socket's timeout."""
    try:
        while sock.recv(1024):
            pass
    except TimeoutError:
        return False
    except OSError:  # reset, or a TLS alert
        pass
    return True


@pytest.mark.parametrize("garbage", [
    b"\x00" * 64,                       # reserved packet type
    b"\x10\xff\xff\xff\x7f",            # CONNECT announcing 256 MB (MQTT-2.2.3 maximum)
    b"\x10\x05\x00\x04MQT",             # truncated CONNECT, then EOF
    b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\xff",  # client id length past the end
    b"\x30\x03\x00\x01",                # PUBLISH before CONNECT
], ids=["zeros", "huge-length", "truncated", "bad-length", "publish-first"])
def test_bad_bytes_end_one_connection_not_the_broker(pki: Pki, broker: BrokerThread,
                                                     cloud: Client, garbage: bytes) -> None:
    with _raw_tls(pki, broker.port, "garbler") as sock:
        sock.sendall(garbage)
        sock.settimeout(4)  # the CONNECT timeout is 2 s: the broker must hang up by then
        assert _hangs_up(sock)
    with socket.create_connection(("127.0.0.1", broker.port), 5) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256)))  # not even TLS
    _fleet_still_served(pki, broker, cloud, f"after {garbage[:4].hex()}")


def test_crl_reload_drops_the_revoked_session(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    with BrokerThread(BrokerSettings(TlsFiles.from_run_dir(tmp_path))) as broker:
        cloud = Client(broker.port, pki.root_pem, pki.cloud())
        assert cloud.connect() and cloud.subscribe(FLEET) == [1]
        old_crl = pki.crl_pem.read_bytes()
        doomed_creds = pki.device("doomed")
        doomed, bystander = (_device(pki, broker.port, n) for n in ("doomed", "bystander"))
        pki.revoke(doomed_creds)
        assert broker.reload_crl() == [doomed_creds.name]
        assert _wait(doomed.closed.is_set)
        assert not bystander.closed.is_set()
        _refused_at_handshake(broker, Client(broker.port, pki.root_pem, doomed_creds))
        replay = tmp_path / "old-crl.pem"
        replay.write_bytes(old_crl)
        with pytest.raises(BrokerSetupError, match="older"):
            broker.reload_crl(replay)  # RFC 5280 5.2.3: a replayed CRL cannot un-revoke
        _refused_at_handshake(broker, Client(broker.port, pki.root_pem, doomed_creds))
        bystander.publish(telemetry(pki.device("bystander")), b"unaffected")
        assert _wait(lambda: any(p == b"unaffected" for _, p in cloud.messages))
        for c in (cloud, bystander):
            c.stop()


def test_a_flooding_device_is_cut_and_the_others_are_served(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    limits = RateLimits(messages_per_s=20, message_burst=20, cut_after=50)
    settings = BrokerSettings(TlsFiles.from_run_dir(tmp_path), limits=limits)
    with BrokerThread(settings) as broker:
        cloud = Client(broker.port, pki.root_pem, pki.cloud())
        assert cloud.connect() and cloud.subscribe(FLEET) == [1]
        flooder, calm = (_device(pki, broker.port, n) for n in ("flooder", "calm"))
        topic = telemetry(pki.device("flooder"))
        started = time.monotonic()
        for i in range(1000):
            if flooder.closed.is_set():
                break
            flooder.mqtt.publish(topic, b"%d" % i, qos=0)
        assert _wait(flooder.closed.is_set), "the flood was not cut"
        calm.publish(telemetry(pki.device("calm")), b"calm")
        assert _wait(lambda: any(p == b"calm" for _, p in cloud.messages))
        elapsed = time.monotonic() - started
        got = sum(1 for t, _ in cloud.messages if t == telemetry(pki.device("flooder")))
        assert got <= 20 + 20 * elapsed + 1
        assert broker.stats()["rate_cut"] >= 1
        for c in (cloud, calm):
            c.stop()
