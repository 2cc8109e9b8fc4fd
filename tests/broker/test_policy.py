"""The broker access policy (broker/policy.py): one test per rule, typed error on refusal."""

from __future__ import annotations

import pytest

from broker.policy import AccessDenied, BrokerPolicy, Principal, Role
from twin.core import topics
from twin.core.errors import MedtwinError
from twin.core.identity import Ueid

TENANT = "ward-7"
ELSEWHERE = "ward-9"
DEV = Ueid.from_random(bytes(16)).hex
OTHER = Ueid.from_random(bytes(range(16))).hex

DEVICE = Principal(Role.DEVICE, TENANT, DEV)
CLOUD = Principal(Role.CLOUD, TENANT, "ingest")

MALFORMED_TOPICS = [
    "",
    "medtwin/v1",
    f"medtwin/v1/{TENANT}/{DEV}",
    f"medtwin/v2/{TENANT}/{DEV}/telemetry",
    f"medtwin/v1/{TENANT}/{DEV}/vitals",
    f"medtwin/v1/{TENANT}/01{'AB' * 16}/telemetry",  # UEID hex is lowercase
    f"medtwin/v1/{TENANT}/+/telemetry",
    f"medtwin/v1/{TENANT}/{DEV}/#",
    f"medtwin/v1/Ward 7/{DEV}/telemetry",
    f"medtwin/v1/{TENANT}/{DEV}/telemetry/../../x",
    f"medtwin/v1/{TENANT}/{DEV}/telemetry/" + "a" * 300,
]
MALFORMED_FILTERS = ["", "#/x", f"medtwin/v1/{TENANT}/#/cmd", f"medtwin/v1/{TENANT}/{DEV}/cmd#",
                     f"medtwin/v1/{TENANT}/{DEV}+/cmd", "a\x00b", "x/" * 200]


@pytest.fixture
def policy() -> BrokerPolicy:
    return BrokerPolicy()


@pytest.fixture
def open_policy() -> BrokerPolicy:
    return BrokerPolicy(topic_acl=False)


def test_access_denied_is_a_medtwin_error() -> None:
    assert issubclass(AccessDenied, MedtwinError)


# ---------------------------------------------------------------- connect


def test_device_and_cloud_may_connect(policy: BrokerPolicy) -> None:
    policy.authorize_connect(DEVICE)
    policy.authorize_connect(CLOUD)


def test_revoked_device_may_not_connect(policy: BrokerPolicy) -> None:
    policy.revoke(DEV)
    with pytest.raises(AccessDenied):
        policy.authorize_connect(DEVICE)
    assert policy.revoked == {DEV}


def test_revocation_is_per_device(policy: BrokerPolicy) -> None:
    policy.revoke(OTHER)
    policy.authorize_connect(DEVICE)


def test_revocation_holds_without_topic_acl(open_policy: BrokerPolicy) -> None:
    open_policy.revoke(DEV)
    with pytest.raises(AccessDenied):
        open_policy.authorize_connect(DEVICE)


# ---------------------------------------------------------------- device publish


@pytest.mark.parametrize("channel", ["telemetry", "events", "prov"])
def test_device_publishes_to_its_own_topics(policy: BrokerPolicy, channel: str) -> None:
    policy.authorize_publish(DEVICE, topics.build(TENANT, DEV, channel))


def test_device_publishes_under_its_own_topic_suffix(policy: BrokerPolicy) -> None:
    policy.authorize_publish(DEVICE, topics.build(TENANT, DEV, "prov", "request"))


def test_device_may_not_publish_as_another_device(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_publish(DEVICE, topics.telemetry(TENANT, OTHER))


def test_device_may_not_publish_into_another_tenant(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_publish(DEVICE, topics.telemetry(ELSEWHERE, DEV))


def test_device_may_not_publish_commands(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_publish(DEVICE, topics.command(TENANT, DEV, "release"))


def test_device_may_not_command_another_device(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_publish(DEVICE, topics.command(TENANT, OTHER, "quarantine"))


@pytest.mark.parametrize("topic", MALFORMED_TOPICS)
def test_device_may_not_publish_to_a_malformed_topic(policy: BrokerPolicy, topic: str) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_publish(DEVICE, topic)


def test_refusal_does_not_echo_the_topic(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied) as info:
        policy.authorize_publish(DEVICE, topics.telemetry(TENANT, OTHER))
    assert OTHER not in str(info.value)


# ---------------------------------------------------------------- device subscribe


@pytest.mark.parametrize("topic_filter", [
    f"medtwin/v1/{TENANT}/{DEV}/cmd/#",
    f"medtwin/v1/{TENANT}/{DEV}/cmd",
    f"medtwin/v1/{TENANT}/{DEV}/cmd/+",
    f"medtwin/v1/{TENANT}/{DEV}/prov",
    f"medtwin/v1/{TENANT}/{DEV}/prov/#",
])
def test_device_subscribes_to_its_own_commands(policy: BrokerPolicy, topic_filter: str) -> None:
    policy.authorize_subscribe(DEVICE, topic_filter)


def test_device_may_not_subscribe_to_everything(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(DEVICE, "#")


def test_device_may_not_subscribe_to_the_tenant(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(DEVICE, f"medtwin/v1/{TENANT}/#")


def test_device_may_not_wildcard_the_device_level(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(DEVICE, f"medtwin/v1/{TENANT}/+/cmd/#")


def test_device_may_not_read_another_devices_commands(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(DEVICE, f"medtwin/v1/{TENANT}/{OTHER}/cmd/#")


def test_device_may_not_read_its_commands_in_another_tenant(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(DEVICE, f"medtwin/v1/{ELSEWHERE}/{DEV}/cmd/#")


def test_device_may_not_wildcard_its_channel(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(DEVICE, f"medtwin/v1/{TENANT}/{DEV}/#")


def test_device_may_not_subscribe_to_telemetry(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(DEVICE, f"medtwin/v1/{TENANT}/{DEV}/telemetry")


def test_device_may_not_subscribe_to_system_topics(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(DEVICE, "$SYS/#")


@pytest.mark.parametrize("topic_filter", MALFORMED_FILTERS)
def test_malformed_filter_is_refused(policy: BrokerPolicy, topic_filter: str) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(DEVICE, topic_filter)


# ---------------------------------------------------------------- cloud


@pytest.mark.parametrize("channel", ["telemetry", "events"])
def test_cloud_subscribes_to_its_tenants_device_topics(policy: BrokerPolicy, channel: str) -> None:
    policy.authorize_subscribe(CLOUD, f"medtwin/v1/{TENANT}/+/{channel}")
    policy.authorize_subscribe(CLOUD, f"medtwin/v1/{TENANT}/{DEV}/{channel}")


def test_cloud_may_not_read_commands(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(CLOUD, f"medtwin/v1/{TENANT}/+/cmd/#")


@pytest.mark.parametrize("topic_filter", [
    f"medtwin/v1/{TENANT}/+/#",
    f"medtwin/v1/{TENANT}/+/+",
    f"medtwin/v1/{TENANT}/#",
])
def test_cloud_may_not_wildcard_the_channel(policy: BrokerPolicy, topic_filter: str) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(CLOUD, topic_filter)


def test_cloud_may_not_read_another_tenant(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(CLOUD, f"medtwin/v1/{ELSEWHERE}/+/telemetry")


def test_cloud_may_not_wildcard_the_tenant(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(CLOUD, "medtwin/v1/+/+/telemetry")


def test_cloud_may_not_subscribe_to_everything(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(CLOUD, "#")


def test_cloud_publishes_commands_in_its_tenant(policy: BrokerPolicy) -> None:
    policy.authorize_publish(CLOUD, topics.command(TENANT, DEV))
    policy.authorize_publish(CLOUD, topics.command(TENANT, OTHER, "quarantine"))


def test_cloud_may_not_forge_device_telemetry(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_publish(CLOUD, topics.telemetry(TENANT, DEV))


def test_cloud_may_not_forge_device_events(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_publish(CLOUD, topics.events(TENANT, DEV))


def test_cloud_may_not_command_another_tenant(policy: BrokerPolicy) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_publish(CLOUD, topics.command(ELSEWHERE, DEV, "quarantine"))


@pytest.mark.parametrize("topic", MALFORMED_TOPICS)
def test_cloud_may_not_publish_to_a_malformed_topic(policy: BrokerPolicy, topic: str) -> None:
    with pytest.raises(AccessDenied):
        policy.authorize_publish(CLOUD, topic)


# ---------------------------------------------------------------- topic_acl off (insecure)


@pytest.mark.parametrize("topic", [
    topics.telemetry(TENANT, OTHER),
    topics.telemetry(ELSEWHERE, DEV),
    topics.command(TENANT, OTHER, "quarantine"),
])
def test_without_topic_acl_devices_publish_anywhere(open_policy: BrokerPolicy, topic: str) -> None:
    open_policy.authorize_publish(DEVICE, topic)


@pytest.mark.parametrize("topic_filter", ["#", f"medtwin/v1/{TENANT}/+/cmd/#",
                                          f"medtwin/v1/{ELSEWHERE}/+/telemetry"])
def test_without_topic_acl_devices_subscribe_anywhere(open_policy: BrokerPolicy,
                                                      topic_filter: str) -> None:
    open_policy.authorize_subscribe(DEVICE, topic_filter)


@pytest.mark.parametrize("topic_filter", MALFORMED_FILTERS)
def test_without_topic_acl_malformed_filters_are_still_refused(
    open_policy: BrokerPolicy, topic_filter: str
) -> None:
    with pytest.raises(AccessDenied):
        open_policy.authorize_subscribe(DEVICE, topic_filter)


# ---------------------------------------------------------------- the platform (enrolment)

PLATFORM = Principal(Role.PLATFORM, TENANT, "platform")


def test_the_platform_reads_enrolment_requests_and_answers_on_responses(policy):
    policy.authorize_subscribe(PLATFORM, f"medtwin/v1/{TENANT}/+/prov/request")
    policy.authorize_publish(PLATFORM, topics.build(TENANT, DEV, topics.Channel.PROV,
                                                    "response"))


@pytest.mark.parametrize("topic_filter", [
    f"medtwin/v1/{TENANT}/+/telemetry",
    f"medtwin/v1/{TENANT}/+/prov/#",
    f"medtwin/v1/{TENANT}/+/prov/response",
    f"medtwin/v1/{TENANT}/{DEV}/cmd/#",
    f"medtwin/v1/{ELSEWHERE}/+/prov/request",
])
def test_the_platform_reads_nothing_but_enrolment_requests(policy, topic_filter):
    with pytest.raises(AccessDenied):
        policy.authorize_subscribe(PLATFORM, topic_filter)


@pytest.mark.parametrize("topic", [
    topics.build(TENANT, DEV, topics.Channel.PROV, "request"),  # would pose as the device
    topics.build(TENANT, DEV, topics.Channel.CMD, "quarantine"),
    topics.build(TENANT, DEV, topics.Channel.TELEMETRY),
    topics.build(ELSEWHERE, DEV, topics.Channel.PROV, "response"),
])
def test_the_platform_publishes_nothing_but_enrolment_responses(policy, topic):
    with pytest.raises(AccessDenied):
        policy.authorize_publish(PLATFORM, topic)
