"""A device core and the cloud core as a pair over an in-memory link: no SimPy, no sockets.

This is the proof that the cores are driver-independent (h11's paired-peer tests): the test
itself plays the driver, moving each Publish effect of one side to the other side's
``handle`` as a MessageReceived, with the broker policy deciding what may pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from broker.policy import AccessDenied, BrokerPolicy, Principal, Role
from cloud.ingest import CloudCore
from cloud.store import MemoryStore
from devices.battery import PROFILES, Battery
from devices.lifecycle import State
from devices.wearable import Provisioned, WearableConfig, WearableCore
from twin.core import topics
from twin.core.events import (
    Connect,
    Count,
    LinkDown,
    LinkUp,
    MessageReceived,
    PowerOn,
    Publish,
    Subscribe,
    WindowReady,
)
from twin.core.identity import Ueid
from twin.core.messages import Kind

TENANT = "ward-7"


class InMemoryLink:
    """Carries Publish effects from a device to the cloud instantly, under the broker policy."""

    def __init__(self, device: WearableCore, cloud: CloudCore, policy: BrokerPolicy) -> None:
        self.device, self.cloud, self.policy = device, cloud, policy
        self.who = Principal(Role.DEVICE, TENANT, device.device)
        self.store = MemoryStore()
        self.counts: dict[str, int] = {}
        self.up = False

    def feed_device(self, event: object, now: float) -> None:
        for effect in self.device.handle(event, now):  # type: ignore[arg-type]
            if isinstance(effect, Publish):
                self.policy.authorize_publish(self.who, effect.topic)
                self.feed_cloud(MessageReceived(effect.topic, effect.payload), now)
            elif isinstance(effect, Subscribe):
                self.policy.authorize_subscribe(self.who, effect.topic_filter)
            elif isinstance(effect, Connect):
                self.up = True
            elif isinstance(effect, Count):
                self.counts[effect.name] = self.counts.get(effect.name, 0) + effect.n

    def feed_cloud(self, event: object, now: float) -> None:
        effects = self.cloud.handle(event, now)  # type: ignore[arg-type]
        for effect in effects:
            if isinstance(effect, Count):
                self.counts[effect.name] = self.counts.get(effect.name, 0) + effect.n
        self.store.apply(effects, now)


def make_pair(seed: int = 0) -> InMemoryLink:
    device = WearableCore(Ueid.from_random(bytes(range(16))).hex, Kind.BP_CUFF, TENANT,
                          Battery(PROFILES[Kind.BP_CUFF]), np.random.default_rng(seed),
                          WearableConfig())
    return InMemoryLink(device, CloudCore(TENANT), BrokerPolicy())


def window(sys: float = 120.0) -> WindowReady:
    return WindowReady({"sys_mmhg": sys, "dia_mmhg": 80.0})


def test_device_windows_reach_the_cloud_store_in_order():
    pair = make_pair()
    pair.feed_device(Provisioned(), 0.0)
    pair.feed_device(PowerOn(), 0.0)
    assert pair.up
    pair.feed_device(LinkUp(), 0.1)
    for k in range(1, 11):
        pair.feed_device(window(), 10.0 * k)
    rows = pair.store.telemetry_rows()
    assert len(rows) == 10 == pair.counts["telemetry.published"]
    assert pair.counts["telemetry.delivered"] == 10
    assert pair.device.state is State.STREAMING


def test_windows_buffered_offline_are_stored_after_reconnect_without_gaps():
    pair = make_pair()
    for event in (Provisioned(), PowerOn(), LinkUp()):
        pair.feed_device(event, 0.0)
    pair.feed_device(window(), 10.0)
    pair.feed_device(LinkDown(), 15.0)
    for k in range(2, 6):
        pair.feed_device(window(), 10.0 * k)  # buffered: nothing reaches the cloud
    assert pair.store.count("telemetry") == 1
    pair.feed_device(LinkUp(), 61.0)
    assert pair.store.count("telemetry") == 5
    assert pair.counts.get("telemetry.gaps", 0) == 0
    assert pair.counts.get("telemetry.duplicates", 0) == 0


def test_a_resent_window_is_stored_once():
    pair = make_pair()
    for event in (Provisioned(), PowerOn(), LinkUp()):
        pair.feed_device(event, 0.0)
    sent = pair.device.handle(window(), 10.0)
    publish = next(e for e in sent if isinstance(e, Publish))
    for t in (10.0, 12.0):  # a QoS 1 redelivery after a lost PUBACK
        pair.feed_cloud(MessageReceived(publish.topic, publish.payload), t)
    assert pair.store.count("telemetry") == 1
    assert pair.counts["telemetry.duplicates"] == 1


def test_alerts_follow_the_measurements():
    pair = make_pair()
    for event in (Provisioned(), PowerOn(), LinkUp()):
        pair.feed_device(event, 0.0)
    for k, sys in enumerate((120.0, 185.0, 190.0, 120.0), start=1):
        pair.feed_device(window(sys), 10.0 * k)
    states = [(a.rule, a.state, a.value) for a in pair.store.alerts()]
    assert states == [("hypertensive_urgency_sys", "raised", 185.0),
                      ("hypertensive_urgency_sys", "cleared", 120.0)]


def test_the_policy_stops_a_device_speaking_for_another():
    pair = make_pair()
    other = Ueid.from_random(bytes(16)).hex
    with pytest.raises(AccessDenied):
        pair.policy.authorize_publish(pair.who, topics.telemetry(TENANT, other))


def test_a_payload_claiming_another_device_is_rejected_by_the_cloud():
    pair = make_pair()
    for event in (Provisioned(), PowerOn(), LinkUp()):
        pair.feed_device(event, 0.0)
    sent = pair.device.handle(window(), 10.0)
    publish = next(e for e in sent if isinstance(e, Publish))
    other = topics.telemetry(TENANT, Ueid.from_random(bytes(16)).hex)
    pair.feed_cloud(MessageReceived(other, publish.payload), 10.0)  # the ACL defence is off
    assert pair.store.count("telemetry") == 0
    assert pair.store.rejects_by_reason() == {"identity_mismatch": 1}
