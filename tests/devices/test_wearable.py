"""The sans-IO wearable core (devices/wearable.py): feed events, read effects.

Published payloads are decoded with the real codec, so these tests also hold the core to the
wire contract the cloud ingests.

Length: over 400 lines; one test per lifecycle path and command of the one core it covers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import numpy as np
import pytest

from broker.policy import BrokerPolicy, Principal, Role
from devices.battery import PROFILES, Battery
from devices.lifecycle import State
from devices.wearable import (
    RECONNECT_TIMER,
    STRIP_TX_BYTES,
    Provisioned,
    WearableConfig,
    WearableCore,
)
from twin.core import codec, topics
from twin.core.errors import TransitionError
from twin.core.events import (
    Connect,
    Count,
    Disconnect,
    Effect,
    LinkDown,
    LinkUp,
    MessageReceived,
    Notice,
    PowerOn,
    Publish,
    StartTimer,
    Subscribe,
    TimerFired,
    WindowReady,
)
from twin.core.identity import Ueid
from twin.core.messages import Command, DeviceEvent, Kind, Message, Strip, Telemetry

TENANT = "ward-7"
DEV = Ueid.from_random(bytes(16)).hex
OTHER = Ueid.from_random(bytes(range(16))).hex
TELEMETRY = topics.telemetry(TENANT, DEV)
EVENTS = topics.events(TENANT, DEV)
HR = {"hr_bpm": 72.5}
E = TypeVar("E")


def make_core(*, seed: int = 0, soc: float = 1.0, **config: float) -> WearableCore:
    return WearableCore(DEV, Kind.ECG_PATCH, TENANT, Battery(PROFILES[Kind.ECG_PATCH], soc),
                        np.random.default_rng(seed), WearableConfig(**config))  # type: ignore[arg-type]


def of(effects: Iterable[Effect], cls: type[E]) -> list[E]:
    return [e for e in effects if isinstance(e, cls)]


def counts(effects: Iterable[Effect]) -> list[str]:
    return [e.name for e in effects if isinstance(e, Count)]


def decoded(effects: Iterable[Effect]) -> list[Message]:
    return [codec.decode(e.payload) for e in effects if isinstance(e, Publish)]


def connected(core: WearableCore, now: float = 0.0) -> list[Effect]:
    core.handle(Provisioned(), now)
    core.handle(PowerOn(), now)
    return core.handle(LinkUp(), now)


def streaming(core: WearableCore, now: float = 10.0) -> list[Effect]:
    connected(core)
    return core.handle(WindowReady(HR), now)


def command(name: str, device: str = DEV, seq: int = 0) -> MessageReceived:
    payload = codec.encode(Command(device, seq, 5.0, name))
    return MessageReceived(topics.command(TENANT, device, name), payload)


# ---------------------------------------------------------------- bring-up


def test_power_on_after_provisioning_connects() -> None:
    core = make_core()
    core.handle(Provisioned(), 0.0)
    assert core.state is State.PROVISIONED
    effects = core.handle(PowerOn(), 0.0)
    assert core.state is State.BOOTED
    assert of(effects, Connect) == [Connect()]
    (notice,) = of(effects, Notice)
    assert notice == Notice(DEV, "state", {"from": "provisioned", "to": "booted"})


def test_power_on_before_provisioning_is_a_driver_bug() -> None:
    core = make_core()
    with pytest.raises(TransitionError):
        core.handle(PowerOn(), 0.0)


def test_link_up_subscribes_to_own_commands_and_announces() -> None:
    core = make_core()
    effects = connected(core, now=3.0)
    assert core.state is State.CONNECTED
    assert of(effects, Subscribe) == [Subscribe(topics.command(TENANT, DEV) + "/#")]
    publishes = of(effects, Publish)
    assert [p.topic for p in publishes] == [EVENTS]
    (event,) = decoded(publishes)
    assert isinstance(event, DeviceEvent)
    assert (event.device, event.seq, event.t, event.name) == (DEV, 0, 3.0, "connected")


def test_own_traffic_passes_the_broker_policy() -> None:
    """Pair check: what the core subscribes and publishes is what the broker lets it."""
    policy = BrokerPolicy()
    me = Principal(Role.DEVICE, TENANT, DEV)
    core = make_core()
    effects = streaming(core)
    effects += core.handle(LinkDown(), 20.0) + core.handle(WindowReady(HR), 30.0)
    effects += core.handle(LinkUp(), 40.0)
    policy.authorize_connect(me)
    for sub in of(effects, Subscribe):
        policy.authorize_subscribe(me, sub.topic_filter)
    for pub in of(effects, Publish):
        policy.authorize_publish(me, pub.topic)


# ---------------------------------------------------------------- telemetry


def test_first_window_starts_streaming_and_publishes() -> None:
    core = make_core(qos=0)
    effects = streaming(core, now=10.0)
    assert core.state is State.STREAMING
    assert counts(effects) == ["telemetry.published"]
    (pub,) = of(effects, Publish)
    assert (pub.topic, pub.qos) == (TELEMETRY, 0)
    (tm,) = decoded([pub])
    assert isinstance(tm, Telemetry)
    assert (tm.device, tm.seq, tm.t, tm.kind) == (DEV, 1, 10.0, Kind.ECG_PATCH)
    assert tm.values == HR
    assert 0.99 < tm.battery <= 1.0  # rounded to 4 places on the wire


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_qos_comes_from_config(qos: int) -> None:
    core = make_core(qos=qos)
    effects = streaming(core)
    effects += core.handle(WindowReady(HR), 20.0)
    assert {p.qos for p in of(effects, Publish)} == {qos}


def test_values_score_and_flags_are_carried_as_given() -> None:
    core = make_core()
    streaming(core)
    values = {"hr_bpm": 181.25}
    (tm,) = decoded(core.handle(WindowReady(values, 0.93, ("anomaly", "tachy")), 20.0))
    assert isinstance(tm, Telemetry)
    assert (tm.values, tm.score, tm.flags) == (values, 0.93, ("anomaly", "tachy"))


def test_battery_reported_never_rises_and_matches_the_cell() -> None:
    core = make_core()
    streaming(core)
    levels = []
    for i in range(3):
        (tm,) = decoded(core.handle(WindowReady(HR), 20.0 + 10 * i))
        assert isinstance(tm, Telemetry)
        levels.append(tm.battery)
    assert levels == sorted(levels, reverse=True)
    assert levels[-1] == round(core.battery.soc, 4)


def test_one_sequence_counter_for_telemetry_and_events() -> None:
    core = make_core()
    effects = connected(core)
    for i in range(4):
        effects += core.handle(WindowReady(HR), 10.0 + i)
    effects += core.handle(LinkDown(), 30.0)
    for i in range(2):
        effects += core.handle(WindowReady(HR), 40.0 + i)
    effects += core.handle(LinkUp(), 50.0)
    effects += core.handle(WindowReady(HR), 60.0)
    messages = decoded(effects)
    assert {type(m) for m in messages} == {Telemetry, DeviceEvent}
    assert [m.seq for m in messages] == list(range(len(messages)))  # type: ignore[union-attr]
    assert core.next_seq == len(messages)


def test_windows_are_buffered_while_reconnecting() -> None:
    core = make_core()
    streaming(core)
    core.handle(LinkDown(), 15.0)
    assert core.state is State.RECONNECTING
    for i in range(3):
        effects = core.handle(WindowReady(HR), 20.0 + 10 * i)
        assert counts(effects) == ["telemetry.published"]
        assert not of(effects, Publish)
    assert len(core.buffer) == 3


def test_backlog_is_sent_oldest_first_before_connected_event() -> None:
    core = make_core()
    streaming(core)  # seq 0: connected, seq 1: first window
    core.handle(LinkDown(), 15.0)
    for i in range(3):
        core.handle(WindowReady(HR), 20.0 + 10 * i)  # seq 2, 3, 4
    effects = core.handle(LinkUp(), 55.0)
    assert core.state is State.CONNECTED
    publishes = of(effects, Publish)
    assert [p.topic for p in publishes] == [TELEMETRY] * 3 + [EVENTS]
    messages = decoded(publishes)
    assert [m.seq for m in messages] == [2, 3, 4, 5]  # type: ignore[union-attr]
    assert [m.t for m in messages[:3]] == [20.0, 30.0, 40.0]  # type: ignore[union-attr]
    event = messages[-1]
    assert isinstance(event, DeviceEvent) and event.name == "connected"
    assert event.detail == {"attempts": 1, "buffered": 3}
    assert not core.buffer
    # The subscription is renewed and the next window streams again.
    assert of(effects, Subscribe)
    assert of(core.handle(WindowReady(HR), 60.0), Publish)
    assert core.state is State.STREAMING


def test_buffer_overflow_drops_the_oldest_and_counts_it_lost() -> None:
    core = make_core(buffer_limit=3)
    streaming(core)
    core.handle(LinkDown(), 15.0)
    lost = []
    for i in range(5):  # seq 2..6; 2 and 3 fall out
        lost += [n for n in counts(core.handle(WindowReady(HR), 20.0 + i))
                 if n == "telemetry.lost"]
    assert lost == ["telemetry.lost"] * 2
    assert len(core.buffer) == 3
    messages = decoded(of(core.handle(LinkUp(), 30.0), Publish))
    assert [m.seq for m in messages] == [4, 5, 6, 7]  # type: ignore[union-attr]


def test_buffer_overflow_is_noticed() -> None:
    core = make_core(buffer_limit=1)
    streaming(core)
    core.handle(LinkDown(), 15.0)
    assert not of(core.handle(WindowReady(HR), 20.0), Notice)
    effects = core.handle(WindowReady(HR), 30.0)
    assert "telemetry.lost.buffer_overflow" in counts(effects)
    assert [n.name for n in of(effects, Notice)] == ["buffer_overflow"]


# ---------------------------------------------------------------- reconnection


def reconnect_delays(core: WearableCore, attempts: int) -> list[float]:
    delays = []
    for i in range(attempts):
        (timer,) = of(core.handle(LinkDown("connect failed"), float(i)), StartTimer)
        assert timer.name == RECONNECT_TIMER
        delays.append(timer.delay)
    return delays


def test_link_down_starts_the_reconnect_timer() -> None:
    core = make_core(backoff_base_s=1.0)
    streaming(core)
    effects = core.handle(LinkDown(), 15.0)
    assert core.state is State.RECONNECTING
    (timer,) = of(effects, StartTimer)
    assert timer.name == RECONNECT_TIMER
    assert 0.5 <= timer.delay <= 2.0
    assert not of(effects, Connect)


def test_backoff_grows_until_the_cap_and_never_exceeds_it() -> None:
    core = make_core(backoff_base_s=1.0, backoff_cap_s=60.0)
    streaming(core)
    delays = reconnect_delays(core, 30)
    assert all(0 < d <= 60.0 for d in delays)
    uncapped = delays[:5]  # ceilings 2, 4, 8, 16, 32
    assert uncapped == sorted(uncapped)
    assert delays[4] > 4 * delays[0]
    assert max(delays[6:]) > 30.0  # reaches the cap's neighbourhood


def test_backoff_is_jittered_and_deterministic_per_seed() -> None:
    first = reconnect_delays(streaming_core(seed=7), 12)
    again = reconnect_delays(streaming_core(seed=7), 12)
    other = reconnect_delays(streaming_core(seed=8), 12)
    assert first == again
    assert first != other


def test_backoff_stays_capped_through_a_long_outage() -> None:
    # A ward gateway down for a day or two: thousands of failed attempts in a row.
    core = make_core(backoff_base_s=1.0, backoff_cap_s=120.0)
    streaming(core)
    delays = reconnect_delays(core, 2000)
    assert max(delays) <= 120.0


def test_link_up_resets_the_backoff() -> None:
    core = make_core(backoff_base_s=1.0, backoff_cap_s=1000.0)
    streaming(core)
    reconnect_delays(core, 8)
    core.handle(LinkUp(), 100.0)
    (delay,) = reconnect_delays(core, 1)
    assert delay <= 2.0


def streaming_core(seed: int) -> WearableCore:
    core = make_core(seed=seed)
    streaming(core)
    return core


def test_reconnect_timer_while_reconnecting_connects() -> None:
    core = streaming_core(0)
    core.handle(LinkDown(), 15.0)
    assert core.handle(TimerFired(RECONNECT_TIMER), 17.0) == [Connect()]


@pytest.mark.parametrize("state_setup", ["streaming", "quarantined"])
def test_reconnect_timer_is_ignored_outside_reconnecting(state_setup: str) -> None:
    core = streaming_core(0)
    if state_setup == "quarantined":
        core.handle(LinkDown(), 15.0)
        core.handle(command("quarantine"), 16.0)
    assert core.handle(TimerFired(RECONNECT_TIMER), 17.0) == []


def test_other_timers_are_ignored() -> None:
    core = streaming_core(0)
    core.handle(LinkDown(), 15.0)
    assert core.handle(TimerFired("something-else"), 17.0) == []


def test_duplicate_link_up_is_ignored() -> None:
    core = streaming_core(0)
    seq = core.next_seq
    assert core.handle(LinkUp(), 20.0) == []
    assert core.next_seq == seq and core.state is State.STREAMING


# ---------------------------------------------------------------- commands


def test_quarantine_command_disconnects_and_silences() -> None:
    core = streaming_core(0)
    effects = core.handle(command("quarantine"), 20.0)
    assert core.state is State.QUARANTINED
    assert of(effects, Disconnect) == [Disconnect()]
    assert of(effects, Notice) == [Notice(DEV, "state", {"from": "streaming",
                                                         "to": "quarantined"})]
    soc, seq = core.battery.soc, core.next_seq
    assert core.handle(WindowReady(HR), 30.0) == []
    assert core.handle(LinkDown(), 31.0) == []  # no reconnect attempts either
    assert core.handle(LinkUp(), 32.0) == []
    assert (core.battery.soc, core.next_seq, len(core.buffer)) == (soc, seq, 0)


def test_release_reboots_and_reconnects() -> None:
    core = streaming_core(0)
    core.handle(command("quarantine"), 20.0)
    effects = core.handle(command("release", seq=1), 30.0)
    assert core.state is State.BOOTED
    assert of(effects, Connect) == [Connect()]
    connected_effects = core.handle(LinkUp(), 31.0)
    assert core.state is State.CONNECTED
    assert of(connected_effects, Subscribe)


def test_decommission_command_disconnects_for_good() -> None:
    core = streaming_core(0)
    effects = core.handle(command("decommission"), 20.0)
    assert core.state is State.DECOMMISSIONED
    assert of(effects, Disconnect) == [Disconnect()]
    assert core.handle(WindowReady(HR), 30.0) == []


def test_command_not_allowed_in_this_state_is_refused() -> None:
    core = streaming_core(0)
    effects = core.handle(command("release"), 20.0)
    assert effects == [Notice(DEV, "command_refused", {"name": "release", "state": "streaming"})]
    assert core.state is State.STREAMING


def test_unknown_command_is_refused() -> None:
    core = streaming_core(0)
    (notice,) = core.handle(command("self_destruct"), 20.0)
    assert isinstance(notice, Notice) and notice.name == "command_refused"
    assert core.state is State.STREAMING


def assert_rejected(core: WearableCore, event: MessageReceived) -> None:
    state, seq, soc = core.state, core.next_seq, core.battery.soc
    effects = core.handle(event, 20.0)
    assert len(effects) == 1
    (notice,) = effects
    assert isinstance(notice, Notice)
    assert (notice.source, notice.name) == (DEV, "command_rejected")
    assert (core.state, core.next_seq, core.battery.soc) == (state, seq, soc)


def test_command_for_another_device_is_rejected() -> None:
    core = streaming_core(0)
    payload = codec.encode(Command(OTHER, 0, 5.0, "quarantine"))
    # Even on this device's own command topic: the payload names who it is for.
    assert_rejected(core, MessageReceived(topics.command(TENANT, DEV, "quarantine"), payload))


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xff\xff\xff", b"quarantine", codec.encode(Command(DEV, 0, 5.0, "quarantine")) + b"\0"],
    ids=["empty", "not-cbor", "plain-text", "trailing-byte"],
)
def test_garbage_bytes_are_rejected(payload: bytes) -> None:
    assert_rejected(streaming_core(0), MessageReceived(topics.command(TENANT, DEV), payload))


def test_a_message_that_is_not_a_command_is_rejected() -> None:
    payload = codec.encode(Telemetry(DEV, 0, 1.0, Kind.ECG_PATCH, HR, 0.5))
    assert_rejected(streaming_core(0), MessageReceived(topics.command(TENANT, DEV), payload))


# ---------------------------------------------------------------- battery


def test_empty_battery_depletes_and_disconnects() -> None:
    # 1.5 uAh: one 10-s window at 450 uA (1.25 uAh) plus a publish, not two.
    core = make_core(soc=0.0015 / 225.0)
    effects = streaming(core)
    assert core.state is State.STREAMING and of(effects, Publish)
    effects = core.handle(WindowReady(HR), 20.0)
    assert core.state is State.DEPLETED
    assert core.battery.empty
    assert of(effects, Disconnect) == [Disconnect()]
    assert of(effects, Notice) == [Notice(DEV, "state", {"from": "streaming", "to": "depleted"})]
    assert not of(effects, Publish) and not counts(effects)
    assert core.handle(WindowReady(HR), 30.0) == []
    assert core.handle(LinkDown(), 31.0) == []


def test_flat_battery_while_reconnecting_depletes() -> None:
    core = make_core(soc=0.0)
    core.handle(Provisioned(), 0.0)
    core.handle(PowerOn(), 0.0)
    core.handle(LinkDown(), 1.0)
    effects = core.handle(WindowReady(HR), 10.0)
    assert core.state is State.DEPLETED
    assert of(effects, Disconnect) == [Disconnect()]


def test_windows_drain_the_battery_by_time_and_message() -> None:
    core = streaming_core(0)
    before = core.battery.soc * 225.0
    core.handle(WindowReady(HR), 20.0)
    spent = before - core.battery.soc * 225.0
    assert spent == pytest.approx(0.45 * 10 / 3600 + 0.3 / 3.0 / 3600)


# ---------------------------------------------------------------- strips and inference energy

STRIP = (np.arange(-1250, 1250, dtype="<i2") * 3).tobytes()  # 2,500 int16 samples


def flagged(now: float = 20.0, mj: float = 0.0) -> WindowReady:
    return WindowReady(HR, 0.97, ("pvc",), mj, STRIP, 250.0)


def test_a_flagged_window_sends_its_strip_after_its_telemetry() -> None:
    core = make_core()
    streaming(core)
    effects = core.handle(flagged(), 20.0)
    tm, strip = decoded(effects)
    assert isinstance(tm, Telemetry) and isinstance(strip, Strip)
    assert [p.topic for p in of(effects, Publish)] == [TELEMETRY, topics.strips(TENANT, DEV)]
    assert strip.seq == tm.seq + 1 and strip.t == tm.t == 20.0
    assert (strip.samples, strip.fs, strip.flags, strip.score) == (STRIP, 250.0, ("pvc",), 0.97)
    assert "strips.sent" in counts(effects)
    me = Principal(Role.DEVICE, TENANT, DEV)
    for pub in of(effects, Publish):
        BrokerPolicy().authorize_publish(me, pub.topic)


def test_a_strip_is_not_kept_while_offline() -> None:
    core = make_core()
    streaming(core)
    core.handle(LinkDown(), 15.0)
    effects = core.handle(flagged(), 20.0)
    assert not of(effects, Publish) and counts(effects) == [
        "telemetry.published", "strips.not_sent_offline"]
    assert len(core.buffer) == 1  # the telemetry window itself is buffered as usual


def test_inference_energy_and_a_strips_radio_cost_drain_the_battery() -> None:
    plain, busy = make_core(), make_core()
    streaming(plain), streaming(busy)
    before = busy.battery.soc
    plain.handle(WindowReady(HR), 20.0)
    busy.handle(WindowReady(HR, inference_mj=5.0), 20.0)
    profile = PROFILES[Kind.ECG_PATCH]
    expected = 5.0 / profile.voltage_v / 3600.0 / profile.capacity_mah  # mJ -> mAh -> soc
    assert plain.battery.soc - busy.battery.soc == pytest.approx(expected, rel=1e-9)
    sent = make_core()
    streaming(sent)
    (pub,) = of(sent.handle(flagged(), 20.0), Publish)[1:]
    extra = plain.battery.soc - sent.battery.soc  # what the strip cost beyond the window
    per_message = profile.tx_mj / profile.voltage_v / 3600.0 / profile.capacity_mah
    chunks = -(-len(pub.payload) // STRIP_TX_BYTES)
    assert chunks == 5 and extra == pytest.approx(per_message * chunks, rel=1e-6)
    assert busy.battery.soc < before
