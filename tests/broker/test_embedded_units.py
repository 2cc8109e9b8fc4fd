"""The embedded broker's pure parts without sockets: identity from certificates, the gate,
token buckets, CRL checks, and the policy's client-id rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from broker.errors import BrokerSetupError
from broker.gate import ClientIdRejected, Gate
from broker.identity import principal_from_certificate
from broker.policy import AccessDenied, BrokerPolicy, Principal, Role
from broker.ratelimit import RateLimiter, RateLimits, TokenBucket, Verdict
from broker.tls import load_crl
from cloud import pki
from tests.broker.pki_fixtures import TENANT, Creds, Pki, key, telemetry


@pytest.fixture(scope="module")
def p(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def _cert(creds: Creds) -> x509.Certificate:
    return x509.load_pem_x509_certificate(creds.cert.read_bytes())


def _der(creds: Creds) -> bytes:
    return _cert(creds).public_bytes(serialization.Encoding.DER)


def test_a_device_certificate_names_its_ueid_and_tenant(p: Pki) -> None:
    dev = p.device("unit device")
    assert principal_from_certificate(_cert(dev)) == Principal(Role.DEVICE, TENANT, dev.name)


def test_a_cloud_certificate_is_the_cloud_only_if_its_name_is_allowed(p: Pki) -> None:
    assert principal_from_certificate(_cert(p.cloud())).role is Role.CLOUD
    with pytest.raises(AccessDenied):
        principal_from_certificate(_cert(p.cloud("dashboard")))


def test_the_brokers_own_server_certificate_is_not_a_client(p: Pki) -> None:
    server = x509.load_pem_x509_certificate((p.folder / "broker" / "cert.pem").read_bytes())
    with pytest.raises(AccessDenied, match="client authentication"):
        principal_from_certificate(server)


def test_a_device_uri_not_bound_to_the_key_is_refused(p: Pki) -> None:
    other = key("someone else").public_key()
    victim = p.device("uri victim")
    forged = pki.issue_device(p.issuing, other, TENANT, p.now)  # its own, correct URI
    builder = (x509.CertificateBuilder().subject_name(forged.subject)
               .issuer_name(forged.issuer).public_key(other).serial_number(7)
               .not_valid_before(forged.not_valid_before_utc)
               .not_valid_after(forged.not_valid_after_utc)
               .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                   f"urn:medtwin:device:{victim.name}")]), critical=False)
               .add_extension(forged.extensions.get_extension_for_class(
                   x509.ExtendedKeyUsage).value, critical=False))
    with pytest.raises(AccessDenied, match="hash of its key"):
        principal_from_certificate(p.issuing.sign(builder))


def test_the_gate_binds_client_ids_to_identities(p: Pki) -> None:
    gate = Gate(BrokerPolicy())
    alice, bob = p.device("gate alice"), p.device("gate bob")
    gate.admit(_der(alice), alice.name, None, 0.0)
    with pytest.raises(ClientIdRejected):
        gate.admit(_der(bob), alice.name, None, 0.0)
    with pytest.raises(ClientIdRejected):
        gate.admit(_der(bob), "", None, 0.0)
    assert gate.principal(alice.name) == Principal(Role.DEVICE, TENANT, alice.name)
    assert gate.admit(_der(p.cloud()), "cloud-worker-2", None, 0.0).principal.role is Role.CLOUD


def test_the_gate_checks_the_will_topic_and_revocation(p: Pki) -> None:
    gate = Gate(BrokerPolicy())
    alice, bob = p.device("will alice"), p.device("will bob")
    with pytest.raises(AccessDenied):
        gate.admit(_der(alice), alice.name, telemetry(bob), 0.0)
    gate.admit(_der(alice), alice.name, telemetry(alice), 0.0)
    assert gate.revoke([alice.serial]) == [alice.name]
    assert not gate.receive(alice.name)
    with pytest.raises(AccessDenied, match="revoked"):
        gate.admit(_der(alice), alice.name, None, 0.0)
    with pytest.raises(AccessDenied):
        gate.admit(None, alice.name, None, 0.0)
    with pytest.raises(AccessDenied):
        gate.admit(b"\x30\x03garbage", alice.name, None, 0.0)


def test_the_gate_finds_sessions_whose_certificate_expired(p: Pki) -> None:
    gate = Gate(BrokerPolicy())
    dev = p.device("expiring", validity=timedelta(hours=1))
    gate.admit(_der(dev), dev.name, None, 0.0)
    assert gate.expired(datetime.now(UTC)) == []
    assert gate.expired(datetime.now(UTC) + timedelta(hours=2)) == [dev.name]


def test_publish_rate_is_limited_per_identity_and_a_flood_is_cut() -> None:
    a = Principal(Role.DEVICE, TENANT, "01" + "aa" * 16)
    b = Principal(Role.DEVICE, TENANT, "01" + "bb" * 16)
    limiter = RateLimiter(RateLimits(messages_per_s=10, message_burst=5, cut_after=3))
    assert [limiter.message(a, 0.0) for _ in range(5)] == [Verdict.PASS] * 5
    assert [limiter.message(a, 0.0) for _ in range(3)] == [Verdict.DROP, Verdict.DROP,
                                                           Verdict.CUT]
    assert limiter.message(b, 0.0) is Verdict.PASS  # another identity is unaffected
    assert limiter.message(a, 0.1) is Verdict.PASS  # one token a tenth of a second later


def test_a_cut_session_has_nothing_more_routed_until_it_connects_again(p: Pki) -> None:
    gate = Gate(BrokerPolicy(), RateLimiter(RateLimits(messages_per_s=10, message_burst=2,
                                                       cut_after=2)))
    cut: list[str] = []
    gate.on_cut = cut.append
    dev = p.device("flood after cut")
    topic = telemetry(dev)
    gate.admit(_der(dev), dev.name, None, 0.0)
    assert [gate.publish(dev.name, topic, 0.0) for _ in range(4)] == [True, True, False, False]
    assert cut == [dev.name]
    # PUBLISHes the session sent before it was closed are still read: a refilled bucket
    # must not route them (it did, one in ~50, on the real broker).
    assert not gate.publish(dev.name, topic, 5.0)
    gate.admit(_der(dev), dev.name, None, 10.0)
    assert gate.publish(dev.name, topic, 10.0)


def test_token_bucket_refills_up_to_its_burst_and_ignores_time_going_back() -> None:
    bucket = TokenBucket(rate=2, burst=2)
    assert bucket.take(0) and bucket.take(0) and not bucket.take(0)
    assert not bucket.take(-5)
    assert bucket.take(100) and bucket.take(100) and not bucket.take(100)
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1)


def test_connect_rate_is_limited() -> None:
    who = Principal(Role.DEVICE, TENANT, "01" + "cc" * 16)
    limiter = RateLimiter(RateLimits(connects_per_min=60, connect_burst=2))
    assert limiter.connect(who, 0) and limiter.connect(who, 0) and not limiter.connect(who, 0)
    assert limiter.connect(who, 1.0)


def _crl_file(p: Pki, path: Path, ca: pki.Authority, now: datetime, number: int) -> Path:
    crl = pki.build_crl(ca, [], now, number=number)
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


def test_a_crl_must_be_the_issuers_current_and_not_older(p: Pki, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    good = load_crl(_crl_file(p, tmp_path / "a.pem", p.issuing, now, 5), p.issuing.certificate,
                    now)
    with pytest.raises(BrokerSetupError, match="older"):
        load_crl(_crl_file(p, tmp_path / "b.pem", p.issuing, now, 4), p.issuing.certificate,
                 now, newer_than=good)
    with pytest.raises(BrokerSetupError, match="issuing CA"):
        load_crl(_crl_file(p, tmp_path / "c.pem", p.root, now, 6), p.issuing.certificate, now)
    with pytest.raises(BrokerSetupError, match="not current"):
        load_crl(_crl_file(p, tmp_path / "d.pem", p.issuing, now - timedelta(days=3), 7),
                 p.issuing.certificate, now)
    (tmp_path / "e.pem").write_bytes(b"not a crl")
    with pytest.raises(BrokerSetupError, match="cannot read"):
        load_crl(tmp_path / "e.pem", p.issuing.certificate, now)


def test_policy_client_id_rule() -> None:
    policy = BrokerPolicy()
    dev = Principal(Role.DEVICE, TENANT, "01" + "dd" * 16)
    cloud = Principal(Role.CLOUD, TENANT, "cloud")
    policy.authorize_client_id(dev, dev.name)
    policy.authorize_client_id(cloud, "cloud-ingest-1")
    for who, cid in ((dev, dev.name + "-x"), (dev, "cloud"), (cloud, "cloudy"), (dev, "")):
        with pytest.raises(AccessDenied):
            policy.authorize_client_id(who, cid)


def test_a_crl_reusing_the_number_in_force_with_other_contents_is_refused(
        p: Pki, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    revoked = pki.build_crl(p.issuing, [(1234, now)], now, number=5)
    (tmp_path / "in-force.pem").write_bytes(revoked.public_bytes(serialization.Encoding.PEM))
    good = load_crl(tmp_path / "in-force.pem", p.issuing.certificate, now)
    # The same CRL again (a restart, a re-publish) is fine ...
    assert load_crl(tmp_path / "in-force.pem", p.issuing.certificate, now, newer_than=good)
    # ... but number 5 without the revocation would un-revoke serial 1234.
    with pytest.raises(BrokerSetupError, match="reuses the CRL number"):
        load_crl(_crl_file(p, tmp_path / "forged.pem", p.issuing, now, 5),
                 p.issuing.certificate, now, newer_than=good)


def test_subscription_dict_can_change_while_a_broadcast_iterates() -> None:
    from broker.routing import Subscriptions

    subs = Subscriptions({"medtwin/v1/ward-7/+/telemetry": []})
    seen = []
    for topic_filter, _ in subs.items():  # amqtt awaits here; a SUBSCRIBE may land meanwhile
        subs["medtwin/v1/ward-7/x/cmd/#"] = []
        seen.append(topic_filter)
    for topic_filter in subs:
        subs.pop(topic_filter)
    assert seen == ["medtwin/v1/ward-7/+/telemetry"] and subs == {}
    assert len(subs.index) == 0 and subs.index.match("medtwin/v1/ward-7/x/cmd/reboot") == []
