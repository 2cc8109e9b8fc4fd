"""Ingest pair tests: real payloads from twin.core.codec through CloudCore.handle."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.effects import RaiseAlert, Reject, StoreEvent, StoreTelemetry
from cloud.ingest import CloudCore
from twin.core import topics
from twin.core.codec import encode
from twin.core.events import (
    Count,
    LinkDown,
    LinkUp,
    MessageReceived,
    Notice,
    PowerOn,
    Subscribe,
    TimerFired,
)
from twin.core.messages import Command, DeviceEvent, Kind, Telemetry

TENANT = "ward-7"
DEV = "01" + "a1" * 16
OTHER = "01" + "b2" * 16


def tm(seq: int, device: str = DEV, **values: float) -> Telemetry:
    return Telemetry(device, seq, float(seq), Kind.ECG_PATCH, values or {"hr_bpm": 72.0}, 0.9)


def deliver(core: CloudCore, message: Telemetry | DeviceEvent | Command, *, topic: str = "",
            now: float = 100.0) -> list[object]:
    if not topic:
        build = topics.events if isinstance(message, DeviceEvent) else topics.telemetry
        topic = build(TENANT, message.device)
    return list(core.handle(MessageReceived(topic, encode(message)), now))


def of(effects: list[object], kind: type) -> list[object]:
    return [e for e in effects if isinstance(e, kind)]


def counts(effects: list[object]) -> dict[str, int]:
    return {e.name: e.n for e in effects if isinstance(e, Count)}


def rejected(effects: list[object]) -> str:
    (reject,) = of(effects, Reject)
    assert isinstance(reject, Reject)
    channel = "events" if reject.topic.endswith("/events") else "telemetry"
    assert counts(effects)[f"{channel}.rejected"] == 1
    assert not of(effects, StoreTelemetry)
    (notice,) = of(effects, Notice)
    assert isinstance(notice, Notice) and notice.name == "ingest_rejected"
    assert notice.detail["reason"] == reject.reason
    return reject.reason


@pytest.mark.parametrize("event", [PowerOn(), LinkUp()])
def test_subscribes_to_the_tenants_device_channels(event: PowerOn | LinkUp) -> None:
    assert CloudCore(TENANT).handle(event, 0.0) == [
        Subscribe(f"medtwin/v1/{TENANT}/+/telemetry"),
        Subscribe(f"medtwin/v1/{TENANT}/+/events"),
        Subscribe(f"medtwin/v1/{TENANT}/+/strips"),
    ]


def test_other_events_do_nothing() -> None:
    core = CloudCore(TENANT)
    assert core.handle(LinkDown(), 0.0) == [] and core.handle(TimerFired("x"), 0.0) == []


def test_accepted_telemetry_is_stored_with_its_receive_time() -> None:
    effects = deliver(CloudCore(TENANT), tm(0), now=12.5)
    assert of(effects, StoreTelemetry) == [StoreTelemetry(tm(0), 12.5)]
    assert counts(effects) == {"telemetry.delivered": 1, "telemetry.stored": 1}
    assert not of(effects, Reject)


def test_duplicate_is_dropped_and_counted_not_rejected() -> None:
    core = CloudCore(TENANT)
    deliver(core, tm(0))
    effects = deliver(core, tm(0))
    assert counts(effects) == {"telemetry.delivered": 1, "telemetry.duplicates": 1}
    assert not of(effects, StoreTelemetry) and not of(effects, Reject)


def test_too_old_is_dropped_and_counted() -> None:
    core = CloudCore(TENANT, window=8)
    deliver(core, tm(100))
    assert counts(deliver(core, tm(50)))["telemetry.too_old"] == 1


def test_gap_is_counted_and_late_arrival_fills_it() -> None:
    core = CloudCore(TENANT)
    deliver(core, tm(0))
    assert counts(deliver(core, tm(4)))["telemetry.gaps"] == 3
    late = deliver(core, tm(2))
    assert counts(late)["telemetry.gaps_filled"] == 1 and of(late, StoreTelemetry)


def test_events_and_telemetry_share_one_sequence_counter() -> None:
    core = CloudCore(TENANT)
    deliver(core, tm(0))
    ev = DeviceEvent(DEV, 1, 1.0, "rebooted", {"why": "watchdog"})
    effects = deliver(core, ev, now=3.0)
    assert of(effects, StoreEvent) == [StoreEvent(ev, 3.0)]
    assert counts(effects) == {"events.delivered": 1, "events.stored": 1}
    assert counts(deliver(core, tm(1)))["telemetry.duplicates"] == 1  # seq 1 was the event


def test_identity_mismatch_is_rejected() -> None:
    # PSA goal 1: a device publishing on its own topic cannot speak for another device.
    effects = deliver(CloudCore(TENANT), tm(0, device=OTHER), topic=topics.telemetry(TENANT, DEV))
    assert rejected(effects) == "identity_mismatch"


@pytest.mark.parametrize(
    "payload", [b"", b"\xff\xff", b"not cbor at all", encode(tm(0)) + b"\x00", b"\xa0"])
def test_bad_bytes_are_rejected_without_raising(payload: bytes) -> None:
    effects = CloudCore(TENANT).handle(MessageReceived(topics.telemetry(TENANT, DEV), payload), 1.0)
    assert rejected(list(effects)) == "decode"


@pytest.mark.parametrize(
    "topic",
    ["garbage", f"medtwin/v1/{TENANT}/not-a-device/telemetry",
     f"medtwin/v1/other/{DEV}/telemetry", f"medtwin/v1/{TENANT}/{DEV}/cmd",
     f"medtwin/v1/{TENANT}/{DEV}/telemetry/extra"],
)
def test_bad_topics_are_rejected(topic: str) -> None:
    assert rejected(deliver(CloudCore(TENANT), tm(0), topic=topic)) == "topic"


def test_wrong_kind_metrics_are_rejected() -> None:
    bad = Telemetry(DEV, 0, 0.0, Kind.ECG_PATCH, {"sys_mmhg": 120.0, "dia_mmhg": 80.0}, 0.5)
    assert rejected(deliver(CloudCore(TENANT), bad)) == "kind_mismatch"
    partial = Telemetry(DEV, 0, 0.0, Kind.BP_CUFF, {"sys_mmhg": 120.0}, 0.5)
    assert rejected(deliver(CloudCore(TENANT), partial)) == "kind_mismatch"


def test_messages_on_the_wrong_channel_are_rejected() -> None:
    core = CloudCore(TENANT)
    assert rejected(deliver(core, tm(0), topic=topics.events(TENANT, DEV))) == "channel_mismatch"
    cmd = Command(DEV, 0, 0.0, "quarantine")
    assert rejected(deliver(core, cmd)) == "channel_mismatch"
    ev = DeviceEvent(DEV, 1, 0.0, "booted")
    assert rejected(deliver(core, ev, topic=topics.telemetry(TENANT, DEV))) == "channel_mismatch"


def test_rejected_message_does_not_advance_the_window() -> None:
    core = CloudCore(TENANT)
    bad = Telemetry(DEV, 5, 0.0, Kind.ECG_PATCH, {"na_mmol_l": 1.0}, 0.5)
    deliver(core, bad)
    assert core.tracker.window(DEV) is None
    assert of(deliver(core, tm(5)), StoreTelemetry)


def test_replay_window_off_stores_duplicates() -> None:
    core = CloudCore(TENANT, replay_window=False)
    first, again = deliver(core, tm(0)), deliver(core, tm(0))
    assert of(first, StoreTelemetry) == of(again, StoreTelemetry)
    assert "telemetry.duplicates" not in counts(again)


def test_alerts_are_raised_once_per_excursion() -> None:
    core = CloudCore(TENANT)
    raised = deliver(core, tm(0, hr_bpm=150.0), now=7.0)
    (alert,) = of(raised, RaiseAlert)
    assert isinstance(alert, RaiseAlert)
    assert (alert.alert.rule, alert.alert.state, alert.alert.t) == ("tachycardia", "raised", 7.0)
    assert not of(deliver(core, tm(1, hr_bpm=155.0)), RaiseAlert)


def test_a_duplicate_does_not_raise_an_alert_again() -> None:
    core = CloudCore(TENANT)
    deliver(core, tm(0, hr_bpm=150.0))
    deliver(core, tm(1, hr_bpm=70.0))  # clears
    assert not of(deliver(core, tm(0, hr_bpm=150.0)), RaiseAlert)  # replayed excursion


def test_bad_tenant_is_refused_at_construction() -> None:
    from twin.core.errors import TopicError

    with pytest.raises(TopicError):
        CloudCore("Bad Tenant")


@given(topic=st.text(max_size=80), payload=st.binary(max_size=64))
def test_never_raises_for_a_peers_topic_or_bytes(topic: str, payload: bytes) -> None:
    effects = CloudCore(TENANT).handle(MessageReceived(topic, payload), 0.0)
    assert len(of(list(effects), Reject)) == 1
