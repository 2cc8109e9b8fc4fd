"""The topic grammar: ``medtwin/v1/{tenant}/{device}/{channel}[/{rest}]``.

The tenant and device segments are what the broker policy checks against the identity in a
client certificate, so their grammar is strict: a tenant is ``[a-z0-9][a-z0-9-]{0,31}``, a
device is its UEID hex (``twin.core.identity``). Channels:

* ``telemetry``: device -> cloud, one message per window;
* ``events``: device -> cloud, lifecycle and security notices;
* ``strips``: device -> cloud, the raw signal of a window its model flagged (for the cloud
  to confirm);
* ``cmd``: cloud -> device commands (the device subscribes to ``.../cmd/#``);
* ``prov``: enrolment requests and responses.

Wildcard matching follows MQTT 3.1.1 / 5.0 section 4.7: ``+`` matches one level, ``#`` the
rest (and the parent level, MQTT-4.7.1-2), and neither wildcard matches a topic starting with
``$`` from the first level (MQTT-4.7.2-1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from twin.core.errors import TopicError, brief
from twin.core.identity import is_device_id

PREFIX = "medtwin/v1"
MAX_TOPIC_BYTES = 256
# Always used with fullmatch(): "$" also matches before a trailing newline.
_TENANT = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_REST = re.compile(r"[a-z0-9_-]{1,32}")
_TOPIC = re.compile(
    r"medtwin/v1/([a-z0-9][a-z0-9-]{0,31})/(01[0-9a-f]{32})/(telemetry|events|strips|cmd|prov)"
    r"(?:/([a-z0-9_-]{1,32}(?:/[a-z0-9_-]{1,32})*))?"
)
"""The whole grammar in one expression: the per-message fast path of :func:`parse`."""


class Channel(StrEnum):
    """What a topic carries."""

    TELEMETRY = "telemetry"
    EVENTS = "events"
    STRIPS = "strips"
    CMD = "cmd"
    PROV = "prov"


_CHANNELS = {c.value: c for c in Channel}


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed project topic."""

    tenant: str
    device: str
    channel: Channel
    rest: str = ""

    def __str__(self) -> str:
        return build(self.tenant, self.device, self.channel, self.rest)


def check_tenant(tenant: str) -> str:
    """Return ``tenant`` if it is a valid tenant segment.

    Raises:
        TopicError: naming the bad tenant.
    """
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise TopicError(f"bad tenant {brief(tenant, 40)}: use [a-z0-9][a-z0-9-]{{0,31}}")
    return tenant


def build(tenant: str, device: str, channel: Channel | str, rest: str = "") -> str:
    """Build a concrete topic name.

    Raises:
        TopicError: if a segment breaks the grammar.
    """
    check_tenant(tenant)
    if not is_device_id(device):
        raise TopicError(f"bad device segment {brief(device, 40)}: expected a UEID hex string")
    try:
        chan = Channel(channel)
    except ValueError:
        raise TopicError(f"unknown channel {brief(channel, 20)}") from None
    if rest and not all(_REST.fullmatch(part) for part in rest.split("/")):
        raise TopicError(f"bad topic suffix {rest[:40]!r}")
    topic = f"{PREFIX}/{tenant}/{device}/{chan.value}" + (f"/{rest}" if rest else "")
    if len(topic) > MAX_TOPIC_BYTES:
        raise TopicError(f"topic longer than {MAX_TOPIC_BYTES} bytes")
    return topic


def telemetry(tenant: str, device: str) -> str:
    """The topic a device publishes its windows to."""
    return build(tenant, device, Channel.TELEMETRY)


def events(tenant: str, device: str) -> str:
    """The topic a device publishes lifecycle and security notices to."""
    return build(tenant, device, Channel.EVENTS)


def strips(tenant: str, device: str) -> str:
    """The topic a device sends flagged signal strips on."""
    return build(tenant, device, Channel.STRIPS)


def command(tenant: str, device: str, name: str = "") -> str:
    """A command topic for one device (``name`` empty gives the command root)."""
    return build(tenant, device, Channel.CMD, name)


def parse(topic: str) -> Topic:
    """Parse a concrete topic name into its parts.

    Raises:
        TopicError: naming what is wrong with the topic.
    """
    if not isinstance(topic, str) or len(topic) > MAX_TOPIC_BYTES:
        raise TopicError(f"topic is not a string of at most {MAX_TOPIC_BYTES} characters")
    if (m := _TOPIC.fullmatch(topic)) is not None:
        return Topic(m[1], m[2], _CHANNELS[m[3]], m[4] or "")
    # Slow path: find which segment is wrong, for the error message.
    parts = topic.split("/", 5)
    if len(parts) < 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise TopicError(f"not a {PREFIX}/... topic: {brief(topic, 80)}")
    rest = parts[5] if len(parts) == 6 else ""
    if len(parts) == 6 and not rest:
        raise TopicError(f"empty last topic level: {topic[:80]!r}")
    # build() re-validates every segment and gives the precise error.
    build(parts[2], parts[3], parts[4], rest)
    return Topic(parts[2], parts[3], Channel(parts[4]), rest)


def check_filter(topic_filter: str) -> str:
    """Return ``topic_filter`` if it is a valid MQTT topic filter (MQTT-4.7.1).

    Raises:
        TopicError: for an empty filter, NUL, or a misplaced wildcard.
    """
    if not isinstance(topic_filter, str) or not topic_filter or "\x00" in topic_filter:
        raise TopicError("a topic filter is a non-empty string without NUL (MQTT-4.7.3-1)")
    if len(topic_filter.encode()) > MAX_TOPIC_BYTES:
        raise TopicError(f"topic filter longer than {MAX_TOPIC_BYTES} bytes")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            shown = brief(topic_filter, 80)
            raise TopicError(f"'#' must be a whole last level (MQTT-4.7.1-2): {shown}")
        if "+" in level and level != "+":
            raise TopicError(f"'+' must be a whole level (MQTT-4.7.1-3): {brief(topic_filter, 80)}")
    return topic_filter


def matches(topic_filter: str, topic: str) -> bool:
    """Whether a concrete topic matches a (valid) topic filter, per MQTT section 4.7."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False  # MQTT-4.7.2-1
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)
