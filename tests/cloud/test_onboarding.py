"""Onboarding exports agree with the broker policy the sim and the embedded broker enforce."""

from __future__ import annotations

import pytest

from broker.policy import AccessDenied, BrokerPolicy, Principal, Role
from cloud.onboarding import cloud_grants, device_grants, mosquitto_acl, mosquitto_conf
from twin.core.errors import TopicError
from twin.core.identity import Ueid

TENANT = "ward-7"
DEVICE = Ueid.from_random(bytes(range(16))).hex
OTHER = Ueid.from_random(bytes(16)).hex


def test_device_grants_are_exactly_what_the_policy_allows():
    policy = BrokerPolicy()
    who = Principal(Role.DEVICE, TENANT, DEVICE)
    grants = device_grants(TENANT, DEVICE)
    for topic in grants.publish:
        policy.authorize_publish(who, topic)
    for topic_filter in grants.subscribe:
        policy.authorize_subscribe(who, topic_filter)
    with pytest.raises(AccessDenied):
        policy.authorize_publish(who, device_grants(TENANT, OTHER).publish[0])


def test_cloud_grants_are_allowed_for_the_cloud():
    policy = BrokerPolicy()
    who = Principal(Role.CLOUD, TENANT, "cloud")
    for topic_filter in cloud_grants(TENANT).subscribe:
        policy.authorize_subscribe(who, topic_filter)


def test_acl_has_one_block_per_identity_and_no_wildcard_writes_for_devices():
    acl = mosquitto_acl([device_grants(TENANT, DEVICE), cloud_grants(TENANT)])
    assert f"user {DEVICE}\ntopic write medtwin/v1/{TENANT}/{DEVICE}/telemetry" in acl
    device_block = acl.split(f"user {DEVICE}\n")[1].split("\n\n")[0]
    assert all("+" not in line and "#" not in line
               for line in device_block.splitlines() if line.startswith("topic write"))
    assert "user cloud" in acl


def test_mosquitto_conf_requires_certificates_and_pins_identity():
    conf = mosquitto_conf(port=8883, cafile="pki/chain.pem", certfile="broker/cert.pem",
                          keyfile="broker/key.pem", crlfile="pki/crl.pem",
                          aclfile="broker/acl")
    for line in ("require_certificate true", "use_identity_as_username true",
                 "use_username_as_clientid true", "crlfile pki/crl.pem",
                 "allow_anonymous false", "tls_version tlsv1.2", "listener 8883 127.0.0.1"):
        assert line in conf.splitlines()


def test_bad_identities_are_refused():
    with pytest.raises(TopicError):
        device_grants(TENANT, "not-a-ueid")
    with pytest.raises(TopicError):
        device_grants("Bad Tenant", DEVICE)
