"""The topic grammar and MQTT section 4.7 filters and matching."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.core import topics
from twin.core.errors import MedtwinError, TopicError
from twin.core.identity import Ueid
from twin.core.subscriptions import SubscriptionTree
from twin.core.topics import (
    MAX_TOPIC_BYTES,
    PREFIX,
    Channel,
    Topic,
    build,
    check_filter,
    check_tenant,
    matches,
    parse,
)

DEV = "01" + "ab" * 16
OTHER = "01" + "cd" * 16


def _match(tree: SubscriptionTree[Any], topic: str) -> list[Any]:
    """``tree.match`` as a list (the return type is any ordered sequence)."""
    return list(tree.match(topic))

tenants = st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True)
devices = st.binary(min_size=16, max_size=16).map(lambda b: Ueid.from_random(b).hex)
rests = st.lists(st.from_regex(r"[a-z0-9_-]{1,32}", fullmatch=True), max_size=3).map("/".join)


# ---------------------------------------------------------------- builders


def test_builders_follow_the_documented_grammar() -> None:
    assert topics.telemetry("acme", DEV) == f"medtwin/v1/acme/{DEV}/telemetry"
    assert topics.events("acme", DEV) == f"medtwin/v1/acme/{DEV}/events"
    assert topics.command("acme", DEV) == f"medtwin/v1/acme/{DEV}/cmd"
    assert topics.command("acme", DEV, "quarantine") == f"medtwin/v1/acme/{DEV}/cmd/quarantine"
    assert build("h-1", DEV, Channel.PROV, "req") == f"medtwin/v1/h-1/{DEV}/prov/req"
    assert build("acme", DEV, "prov") == f"{PREFIX}/acme/{DEV}/prov"
    assert build("acme", DEV, "cmd", "ota/v2_1") == f"{PREFIX}/acme/{DEV}/cmd/ota/v2_1"


def test_topic_str_is_the_built_topic() -> None:
    topic = Topic("acme", DEV, Channel.CMD, "set_window")
    assert str(topic) == topics.command("acme", DEV, "set_window")
    assert str(Topic("acme", DEV, Channel.TELEMETRY)) == topics.telemetry("acme", DEV)


@pytest.mark.parametrize("tenant", ["a", "acme", "0", "h-1", "a" * 32, "a-" * 16])
def test_good_tenants(tenant: str) -> None:
    assert check_tenant(tenant) == tenant


@pytest.mark.parametrize(
    "tenant",
    ["", "-acme", "Acme", "ACME", "a" * 33, "ac me", "ac/me", "ac_me", "ác", "+", "#", 5, None],
)
def test_bad_tenant_raises(tenant: Any) -> None:
    with pytest.raises(TopicError, match="tenant"):
        check_tenant(tenant)
    with pytest.raises(TopicError, match="tenant"):
        build(tenant, DEV, Channel.TELEMETRY)


def test_tenant_with_trailing_newline_is_refused() -> None:
    # topics._TENANT ends in "$", which also matches before a final "\n".
    with pytest.raises(TopicError):
        check_tenant("acme\n")


@pytest.mark.parametrize(
    "device",
    ["", "acme", DEV.upper(), "02" + "ab" * 16, DEV[:-2], DEV + "ab", "+", "#", DEV[:-1] + "g"],
)
def test_bad_device_raises(device: str) -> None:
    with pytest.raises(TopicError, match="device"):
        build("acme", device, Channel.TELEMETRY)


def test_device_with_trailing_newline_is_refused() -> None:
    # identity._HEX ends in "$": build() accepts "<hex>\n" and puts a newline in the topic.
    with pytest.raises(TopicError):
        build("acme", DEV + "\n", Channel.TELEMETRY)


@pytest.mark.parametrize("channel", ["", "Telemetry", "status", "cmd/x", "+", "#", 1, None])
def test_bad_channel_raises(channel: Any) -> None:
    with pytest.raises(TopicError, match="channel"):
        build("acme", DEV, channel)


@pytest.mark.parametrize(
    "rest", ["a//b", "/a", "a/", "A", "+", "#", "a/+", "a/#", "x" * 33, "a b", "a.b", "é"]
)
def test_bad_suffix_raises(rest: str) -> None:
    with pytest.raises(TopicError, match="suffix"):
        build("acme", DEV, Channel.CMD, rest)


def test_suffix_with_trailing_newline_is_refused() -> None:
    # topics._REST ends in "$", which also matches before a final "\n".
    with pytest.raises(TopicError):
        build("acme", DEV, Channel.CMD, "quarantine\n")


def test_topic_error_is_a_medtwin_error() -> None:
    assert issubclass(TopicError, MedtwinError)


# ---------------------------------------------------------------- parse


@given(tenants, devices, st.sampled_from(Channel), rests)
def test_parse_round_trips_what_build_makes(
    tenant: str, device: str, channel: Channel, rest: str
) -> None:
    topic = build(tenant, device, channel, rest)
    parsed = parse(topic)
    assert parsed == Topic(tenant, device, channel, rest)
    assert str(parsed) == topic


@given(st.text(max_size=120))
def test_parse_returns_a_topic_or_raises_topic_error(text: str) -> None:
    try:
        parsed = parse(text)
    except TopicError:
        return
    assert str(parsed) == text


@settings(max_examples=300)
@given(
    tenants,
    devices,
    st.sampled_from(Channel),
    rests,
    st.sampled_from(["/", "//", "\n", "/\n", " ", "/+", "/#", "\x00"])
    | st.text(alphabet="/+#\n\x00 aZ-_.é$", min_size=1, max_size=4),
)
def test_parse_of_a_valid_topic_plus_noise_round_trips_or_raises(
    tenant: str, device: str, channel: Channel, rest: str, noise: str
) -> None:
    # Whatever parse() accepts must be exactly the topic it describes: otherwise the broker
    # policy and the subscription tree see two different topics.
    text = build(tenant, device, channel, rest) + noise
    try:
        parsed = parse(text)
    except TopicError:
        return
    assert str(parsed) == text


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "medtwin",
        "medtwin/v1",
        f"medtwin/v1/acme/{DEV}",
        f"medtwin/v2/acme/{DEV}/telemetry",
        f"Medtwin/v1/acme/{DEV}/telemetry",
        f"/medtwin/v1/acme/{DEV}/telemetry",
        f"medtwin/v1/Acme/{DEV}/telemetry",
        f"medtwin/v1/acme/{DEV.upper()}/telemetry",
        f"medtwin/v1/acme/{DEV}/status",
        f"medtwin/v1/acme/{DEV}/cmd//x",
        f"medtwin/v1/acme/{DEV}/cmd/+",
        f"medtwin/v1/+/{DEV}/telemetry",
        f"medtwin/v1/acme/{DEV}/#",
        "medtwin/v1/acme//telemetry",
        f"medtwin/v1/acme/{DEV}/cmd/" + "/".join(["x" * 32] * 7),
    ],
)
def test_parse_refuses_malformed_topics(topic: str) -> None:
    with pytest.raises(TopicError):
        parse(topic)


@pytest.mark.parametrize("topic", [None, 5, b"medtwin/v1"])
def test_parse_refuses_non_strings(topic: Any) -> None:
    with pytest.raises(TopicError):
        parse(topic)


def test_parse_refuses_a_trailing_empty_level() -> None:
    # ".../telemetry/" is a different MQTT topic from ".../telemetry" (an extra empty level),
    # but parse() takes rest="" and returns the telemetry topic: str(parse(t)) != t.
    with pytest.raises(TopicError):
        parse(f"medtwin/v1/acme/{DEV}/telemetry/")


def test_build_never_makes_a_topic_that_parse_refuses() -> None:
    # build() checks each segment but not MAX_TOPIC_BYTES; parse() does, so a long but
    # segment-valid command topic is built and then refused (280 bytes here).
    rest = "/".join(["x" * 32] * 6)
    try:
        topic = build("a" * 32, DEV, Channel.CMD, rest)
    except TopicError:
        return
    assert len(topic.encode()) > MAX_TOPIC_BYTES
    assert parse(topic) == Topic("a" * 32, DEV, Channel.CMD, rest)


# ---------------------------------------------------------------- filters (MQTT-4.7.1)


@pytest.mark.parametrize(
    "topic_filter",
    [
        "#", "+", "a", "a/b", "a/#", "a/+", "+/+", "+/#", "a/+/b/#", "/", "//", "a//b", "/#",
        "$SYS/#", "$SYS/+/x", "medtwin/v1/+/+/telemetry", f"medtwin/v1/acme/{DEV}/cmd/#",
    ],
)
def test_valid_filters(topic_filter: str) -> None:
    assert check_filter(topic_filter) == topic_filter


@pytest.mark.parametrize(
    "topic_filter",
    [
        "a/#/b", "#/a", "#/#", "a#", "a/b#", "#a", "##", "a/#/",  # MQTT-4.7.1-2
        "a+", "+a", "a/b+", "a/+b/c", "++", "+/a+",  # MQTT-4.7.1-3
    ],
)
def test_misplaced_wildcards_are_refused(topic_filter: str) -> None:
    with pytest.raises(TopicError, match=r"MQTT-4\.7\.1-[23]"):
        check_filter(topic_filter)


@pytest.mark.parametrize("topic_filter", ["", "\x00", "a\x00b", "a/\x00", None, 5, b"a"])
def test_empty_nul_and_non_string_filters_are_refused(topic_filter: Any) -> None:
    with pytest.raises(TopicError):
        check_filter(topic_filter)


def test_overlong_filter_is_refused() -> None:
    check_filter("a" * MAX_TOPIC_BYTES)
    with pytest.raises(TopicError):
        check_filter("a" * (MAX_TOPIC_BYTES + 1))
    with pytest.raises(TopicError):
        check_filter("é" * (MAX_TOPIC_BYTES // 2 + 1))  # counted in UTF-8 bytes


# ---------------------------------------------------------------- matching (MQTT-4.7)

MATCH_TABLE = [
    # filter, topic, expected
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/b", "a", False),
    ("a/b", "a/b/c", False),
    ("a/+", "a/b", True),
    ("a/+", "a", False),
    ("a/+", "a/b/c", False),
    ("a/+", "a/", True),  # an empty level is a level
    ("+/b", "a/b", True),
    ("+/+", "a/b", True),
    ("+", "a", True),
    ("+", "a/b", False),
    ("+", "/a", False),
    ("+/+", "/a", True),
    ("/+", "/a", True),
    ("a/+/c", "a/b/c", True),
    ("a/+/c", "a/b/d", False),
    ("#", "a", True),
    ("#", "a/b/c", True),
    ("#", "/", True),
    ("a/#", "a/b", True),
    ("a/#", "a/b/c", True),
    ("a/#", "a", True),  # MQTT-4.7.1-2: '#' also matches the parent level
    ("a/#", "b", False),
    ("a/#", "ab", False),
    ("a/b/#", "a", False),
    ("a/+/#", "a/b", True),
    ("a/+/#", "a", False),
    ("+/#", "a", True),
    ("a", "a/b", False),
    ("A", "a", False),  # case sensitive
    # MQTT-4.7.2-1: no leading wildcard matches a topic that starts with '$'
    ("#", "$SYS", False),
    ("#", "$SYS/broker/load", False),
    ("+/broker/load", "$SYS/broker/load", False),
    ("+/#", "$SYS/x", False),
    ("+", "$x", False),
    ("$SYS/#", "$SYS/broker/load", True),
    ("$SYS/#", "$SYS", True),
    ("$SYS/+/load", "$SYS/broker/load", True),
    ("$SYS/broker/load", "$SYS/broker/load", True),
    ("a/#", "a/$x", True),  # '$' only matters on the first level
    ("+/$x", "a/$x", True),
    ("#", "x$", True),
    ("medtwin/v1/+/+/telemetry", topics.telemetry("acme", DEV), True),
    ("medtwin/v1/+/+/telemetry", topics.events("acme", DEV), False),
    (f"medtwin/v1/acme/{DEV}/cmd/#", topics.command("acme", DEV), True),
    (f"medtwin/v1/acme/{DEV}/cmd/#", topics.command("acme", DEV, "quarantine"), True),
    (f"medtwin/v1/acme/{DEV}/cmd/#", topics.command("acme", OTHER, "quarantine"), False),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCH_TABLE)
def test_matches_table(topic_filter: str, topic: str, expected: bool) -> None:
    check_filter(topic_filter)
    assert matches(topic_filter, topic) is expected


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCH_TABLE)
def test_subscription_tree_agrees_with_the_table(
    topic_filter: str, topic: str, expected: bool
) -> None:
    tree: SubscriptionTree[str] = SubscriptionTree()
    tree.add(topic_filter, "s")
    assert _match(tree, topic) == (["s"] if expected else [])


# Few levels, so that random filters and topics collide often; '$' levels included.
LEVELS = ["a", "b", "", "$SYS", "$x", "c$"]
topic_levels = st.lists(st.sampled_from(LEVELS), min_size=1, max_size=4)
topics_st = topic_levels.map("/".join)
filters_st = st.builds(
    lambda levels, plus_at, tail: "/".join(
        ["+" if i in plus_at else level for i, level in enumerate(levels)] + tail
    ),
    st.lists(st.sampled_from(LEVELS), min_size=0, max_size=4),
    st.sets(st.integers(min_value=0, max_value=3)),
    st.sampled_from([[], ["#"]]),
).filter(bool)


@given(filters_st)
def test_generated_filters_are_valid(topic_filter: str) -> None:
    assert check_filter(topic_filter) == topic_filter


@settings(max_examples=500, deadline=None)
@given(st.lists(filters_st, max_size=12), st.lists(topics_st, min_size=1, max_size=8))
def test_subscription_tree_agrees_with_brute_force_matches(
    topic_filters: list[str], topic_names: list[str]
) -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    for i, topic_filter in enumerate(topic_filters):
        tree.add(topic_filter, i)
    for topic in topic_names:
        expected = {i for i, f in enumerate(topic_filters) if matches(f, topic)}
        found = _match(tree, topic)
        assert len(found) == len(set(found))
        assert set(found) == expected, (topic, topic_filters)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(filters_st, st.integers(min_value=0, max_value=3)), max_size=12),
    st.data(),
)
def test_tree_with_shared_subscribers_and_removals_agrees_with_brute_force(
    subscriptions: list[tuple[str, int]], data: st.DataObject
) -> None:
    tree: SubscriptionTree[int] = SubscriptionTree()
    for topic_filter, subscriber in subscriptions:
        tree.add(topic_filter, subscriber)
    live = set(subscriptions)
    for topic_filter, subscriber in data.draw(st.lists(st.sampled_from(subscriptions))
                                              if subscriptions else st.just([])):
        assert tree.remove(topic_filter, subscriber) is ((topic_filter, subscriber) in live)
        live.discard((topic_filter, subscriber))
    assert len(tree) == len(live)
    for topic in data.draw(st.lists(topics_st, min_size=1, max_size=6)):
        expected = {s for f, s in live if matches(f, topic)}
        found = _match(tree, topic)
        assert len(found) == len(set(found))
        assert set(found) == expected
