"""The SimPy driver: runs the sans-IO cores of a whole fleet, the broker and the cloud.

It interprets the cores' effects in virtual time: timers become SimPy timeouts, publishes
travel the simulated network (:mod:`twin.sim.network`) to the simulated broker
(:mod:`twin.sim.broker`) and on to subscribers, counters and notices go to the run recorder,
and storage effects go to the run store. Nothing here decides anything a core should decide:
the devices, the broker policy and the cloud are the same objects the live driver will run.

Events are scheduled as bare SimPy timeouts with a callback, not as processes, because a
process per message would cost several kernel events each (ARCHITECTURE.md, "Measured").
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import simpy

from broker.policy import AccessDenied, BrokerPolicy, Principal, Role
from cloud.firmware import build_release
from cloud.ingest import CloudCore
from cloud.monitor import QuarantineRequest, SecurityMonitor
from cloud.ota import Campaign, StartCampaign
from cloud.store import DeviceRow, RunStore
from devices.wearable import Provisioned
from twin.core.events import (
    CancelTimer,
    Connect,
    Count,
    Disconnect,
    Event,
    LinkDown,
    LinkUp,
    MessageReceived,
    Notice,
    PowerOn,
    Publish,
    StartTimer,
    Subscribe,
    TimerFired,
)
from twin.core.firmware import SELF_TEST_FAIL
from twin.core.seeds import SeedTree
from twin.scenario.schema import Scenario
from twin.sim.broker import CertificateExpired, Endpoint, SimBroker
from twin.sim.fleet import Fleet, build_fleet, platform_signing_key
from twin.sim.network import InFlight, LatencySampler, Link
from twin.sim.platform import SimPlatform, fleet_kinds
from twin.sim.platform_events import PlatformEvents
from twin.sim.windows import device_memory, load_models, record_episodes, window_events

DRAIN_S = 30.0
"""Simulated seconds after the last window in which messages on the wire may still land."""
CONNECT_TIMEOUT_S = 10.0
"""How long a connect attempt to an unreachable broker takes to fail."""


@dataclass(frozen=True)
class RunResult:
    """What a run measured (the report is built from this and the store)."""

    scenario: Scenario
    devices: int
    sim_seconds: float
    wall_seconds: float
    counters: dict[str, int]
    pending: int
    states: dict[str, int]
    ota: list[dict[str, int | str]]
    platform: dict[str, Any] = field(default_factory=dict)
    """What the platform did (``fleet.identity: qdid``): enrolled, inventory, revocations."""


class SimRun:
    """One simulated run of a scenario.

    Args:
        scenario: the validated scenario (overrides already applied).
        store: where the cloud writes telemetry, events, alerts and notices.
        progress: called with the simulated time after every stepper tick.
    """

    def __init__(self, scenario: Scenario, store: RunStore,
                 progress: Callable[[float], None] | None = None) -> None:
        self.scenario = scenario
        self.store = store
        self.progress = progress
        self.env = simpy.Environment()
        self.counters: Counter[str] = Counter()
        seeds = SeedTree(scenario.seed)
        net = scenario.network
        access = LatencySampler(net.latency.median, net.latency.sigma, net.loss,
                                seeds.rng("network", "access"))
        backhaul = LatencySampler(0.002, 0.3, 0.0, seeds.rng("network", "backhaul"))
        self.broker = SimBroker(BrokerPolicy(topic_acl=scenario.defence_on("topic_acl")))
        self.platform: SimPlatform | None = None
        if scenario.fleet.identity == "qdid":  # enrolled by the platform before the run
            validity = timedelta(seconds=scenario.fleet.certificate_validity)
            self.platform = SimPlatform(seeds, scenario.fleet.tenant, validity)
            self.platform.enrol_fleet(fleet_kinds(scenario))
        identities = self.platform.identities if self.platform else []
        self.fleet: Fleet = build_fleet(scenario, seeds, access, identities)
        self.platform_events = PlatformEvents(self, self.platform) if self.platform else None
        tenant = scenario.fleet.tenant
        cloud_core = CloudCore(tenant, replay_window=scenario.defence_on("replay_window"))
        self.cloud = Endpoint(Principal(Role.CLOUD, tenant, "cloud"), cloud_core, Link(), backhaul)
        self._outage_rng = seeds.rng("network", "outages")
        self.monitor = SecurityMonitor(auto_quarantine=scenario.defence_on("auto_quarantine"))
        self.campaigns: list[Campaign] = []
        self._models = load_models()
        self._memory = device_memory(self.fleet)
        self._dispatch: dict[type, Callable[[Endpoint, Any, float], None]] = {
            Publish: self._publish, Count: self._count, StartTimer: self._start_timer,
            CancelTimer: self._cancel_timer, Connect: self._connect,
            Disconnect: self._disconnect, Subscribe: self._subscribe,
        }

    # ------------------------------------------------------------------ running

    def run(self) -> RunResult:
        """Run the scenario to its end and return what was measured."""
        started = time.perf_counter()
        sc = self.scenario
        self.store.add_devices(
            DeviceRow(ep.principal.name, serial, ep.core.kind.value, sc.fleet.tenant)
            for ep, serial in zip(self.fleet.endpoints, self.fleet.serials, strict=True)
        )
        self._session_up(self.cloud, self.cloud.link.epoch)
        for ep in self.fleet.endpoints:
            self._feed(ep, Provisioned(), 0.0)
            self._feed(ep, PowerOn(), 0.0)
        for number, outage in enumerate(sc.network.outages):
            self._at(outage.at, self._outage_start, number, outage.fraction, outage.duration)
        if sc.ota is not None:
            self._at(sc.ota.at, self._start_campaign)
        if self.platform_events is not None:
            self.platform_events.schedule()  # revocations and renewals
        self.env.process(self._stepper())
        self.env.run(until=sc.duration + DRAIN_S)
        self.store.flush()
        self.counters.update({f"security.expected.{kind}": n
                              for kind, n in self.monitor.expected.items()})
        devices = self.fleet.endpoints
        pending = sum(len(ep.core.buffer) + ep.link.undelivered() for ep in devices)
        states = Counter(ep.core.state.value for ep in devices)
        ota = [{"component": c.release.manifest.component, **c.summary()}
               for c in self.campaigns]
        return RunResult(sc, len(devices), sc.duration, time.perf_counter() - started,
                         dict(self.counters), pending, dict(sorted(states.items())), ota,
                         self.platform.summary() if self.platform else {})

    def _stepper(self) -> Any:
        """Close every device's windows on schedule, one numpy batch per kind and phase group."""
        sc = self.scenario
        groups = self.fleet.groups
        sub = sc.window / len(groups)
        k = len(groups)  # group g's first window closes at g*sub + window
        while k * sub <= sc.duration:
            yield self.env.timeout(k * sub - self.env.now)
            now = self.env.now
            phase = k % len(groups)
            for group, memory in zip(groups[phase], self._memory[phase], strict=True):
                batch = group.source.window(now, group.local)
                if len(batch.episodes):
                    self.counters["clinical.episodes"] += record_episodes(
                        self.store, group, batch, self._name_of,
                        strips=bool(sc.outputs.strip_seconds))
                if memory is not None:  # what a patch keeps in RAM is gone after a reboot
                    boots = [ep.core.boots for ep in group.endpoints]
                    if lost := memory.forget_rebooted(boots):
                        self.counters["ecg.references_lost_in_reboots"] += lost
                events = window_events(group.kind, batch, self._models, memory)
                for ep, ready in zip(group.endpoints, events, strict=True):
                    self._feed(ep, ready, now)
            if self.progress is not None:
                self.progress(now)
            k += 1

    def _at(self, when: float, fn: Callable[..., None], *args: Any) -> None:
        """Call ``fn(*args)`` at simulated time ``when`` (one kernel event, no process)."""
        timeout = self.env.timeout(max(0.0, when - self.env.now))
        timeout.callbacks.append(lambda _ev: fn(*args))

    def _feed(self, ep: Endpoint, event: Event | Provisioned | QuarantineRequest | StartCampaign,
              now: float) -> None:
        """Give ``ep``'s core an event and carry out the effects it returns."""
        store_effects = []
        for effect in ep.core.handle(event, now):
            handler = self._dispatch.get(type(effect))
            if handler is not None:
                handler(ep, effect, now)
            else:  # notices and the cloud's storage effects
                store_effects.append(effect)
        if store_effects:
            self._record(store_effects, now)

    def _name_of(self, index: int) -> str:
        return self.fleet.endpoints[index].principal.name

    def _record(self, effects: list[Any], now: float) -> None:
        """Store effects; broker, cloud and platform notices also go through the monitor."""
        alerts, requests = self.monitor.screen(effects, now)
        if self.platform_events is not None:
            self.platform_events.observe(effects, now)
        for alert in alerts:
            self.counters[f"security.alerts.{alert.rule}"] += 1
        self.store.apply([*effects, *alerts], now)
        for request in requests:
            self._feed(self.cloud, request, now)

    # ------------------------------------------------------------------ effects

    def _count(self, _ep: Endpoint, effect: Count, _now: float) -> None:
        self.counters[effect.name] += effect.n

    def _start_timer(self, ep: Endpoint, effect: StartTimer, now: float) -> None:
        generation = ep.timers.get(effect.name, 0) + 1
        ep.timers[effect.name] = generation
        self._at(now + effect.delay, self._timer_fired, ep, effect.name, generation)

    def _cancel_timer(self, ep: Endpoint, effect: CancelTimer, _now: float) -> None:
        ep.timers[effect.name] = ep.timers.get(effect.name, 0) + 1

    def _timer_fired(self, ep: Endpoint, name: str, generation: int) -> None:
        if ep.timers.get(name) == generation:
            self._feed(ep, TimerFired(name), self.env.now)

    def _subscribe(self, ep: Endpoint, effect: Subscribe, now: float) -> None:
        try:
            self.broker.subscribe(ep, effect.topic_filter)
        except AccessDenied as exc:
            self._notice("broker", "subscribe_denied", ep, str(exc), now)

    def _publish(self, ep: Endpoint, effect: Publish, now: float) -> None:
        link = ep.link
        message = InFlight(effect.topic, effect.payload, effect.qos)
        if effect.qos:
            link.forget_acked(now)
            link.inflight.append(message)  # sent now, or when the session resumes
        if link.connected:
            self._transmit(ep, message, now)
        elif not effect.qos:
            self._lost(message.topic, "offline")

    def _transmit(self, ep: Endpoint, message: InFlight, now: float) -> None:
        arrival = ep.link.uplink_arrival(now, ep.latency())
        self._at(arrival, self._arrive, ep, message, ep.link.epoch)

    def _arrive(self, ep: Endpoint, message: InFlight, epoch: int) -> None:
        """A PUBLISH reaches the broker, unless its connection died on the way."""
        now = self.env.now
        if epoch != ep.link.epoch:
            if not message.qos:
                self._lost(message.topic, "in_flight")
            return  # QoS 1: still in the in-flight table, re-sent when the session resumes
        message.delivered = True
        message.ack_at = now + ep.latency()  # the PUBACK's trip back
        try:
            subscribers = self.broker.publish(ep, message.topic)
        except AccessDenied as exc:
            topic = message.topic
            channel = ("telemetry" if topic.endswith("/telemetry")
                       else "prov" if "/prov/" in topic else "events")
            self.counters[f"{channel}.rejected"] += 1
            self.counters["broker.denied"] += 1
            self._notice("broker", "publish_denied", ep, str(exc), now)
            return
        for subscriber in subscribers:
            self._deliver(subscriber, message.topic, message.payload, now)

    def _deliver(self, to: Endpoint, topic: str, payload: bytes, now: float) -> None:
        if not to.link.connected:
            to.offline.append((topic, payload))  # persistent session: held for the client
            return
        arrival = to.link.downlink_arrival(now, to.latency())
        self._at(arrival, self._receive, to, topic, payload, to.link.epoch)

    def _receive(self, to: Endpoint, topic: str, payload: bytes, epoch: int) -> None:
        if epoch != to.link.epoch:
            to.offline.append((topic, payload))  # QoS 1: the broker re-sends on resume
            return
        if self.platform_events is not None and self.platform_events.takes(
                to, topic, payload, self.env.now):
            return  # an answer to the device's renewal client
        self._feed(to, MessageReceived(topic, payload), self.env.now)

    def _lost(self, topic: str, why: str) -> None:
        channel = "telemetry" if topic.endswith("/telemetry") else "events"
        self.counters[f"{channel}.lost"] += 1
        self.counters[f"{channel}.lost.{why}"] += 1

    # ------------------------------------------------------------------ sessions

    def _connect(self, ep: Endpoint, _effect: Connect, now: float) -> None:
        if ep.link.connected:
            return
        if not ep.link.reachable:
            self._at(now + CONNECT_TIMEOUT_S, self._link_failed, ep, "unreachable")
            return
        handshake = 3.0 * ep.latency()  # TCP + TLS 1.3 + CONNECT/CONNACK round trips
        self._at(now + handshake, self._session_up, ep, ep.link.epoch)

    def _link_failed(self, ep: Endpoint, reason: str) -> None:
        self._feed(ep, LinkDown(reason), self.env.now)

    def _session_up(self, ep: Endpoint, epoch: int) -> None:
        now = self.env.now
        link = ep.link
        if epoch != link.epoch or not link.reachable:
            self._feed(ep, LinkDown("unreachable"), now)
            return
        try:
            self.broker.connect(ep, now)
        except AccessDenied as exc:
            self.counters["broker.connect_denied"] += 1
            if isinstance(exc, CertificateExpired):
                self.counters["broker.connect_denied.expired"] += 1
            self._notice("broker", "connect_denied", ep, str(exc), now)
            self._feed(ep, LinkDown("refused"), now)
            return
        link.connected = True
        if self.platform is not None and ep.index >= 0:
            self.platform.connected(ep.index, now)
        for message in list(link.inflight):  # MQTT-4.4.0-1: re-send unacknowledged PUBLISHes
            self._transmit(ep, message, now)
        held, ep.offline = ep.offline, deque()
        for topic, payload in held:
            self._deliver(ep, topic, payload, now)
        self._feed(ep, LinkUp(), now)

    def _disconnect(self, ep: Endpoint, _effect: Disconnect, now: float) -> None:
        ep.link.drop(now)

    def _outage_start(self, number: int, fraction: float, duration: float) -> None:
        now = self.env.now
        devices = self.fleet.endpoints
        count = max(1, round(fraction * len(devices)))
        chosen = sorted(self._outage_rng.choice(len(devices), size=count, replace=False).tolist())
        self.store.apply([Notice("network", "outage", {"number": number, "devices": count,
                                                       "duration_s": duration})], now)
        for i in chosen:
            ep = devices[i]
            was_connected = ep.link.connected
            ep.link.reachable = False
            ep.link.drop(now)
            if was_connected:
                self._feed(ep, LinkDown("lost"), now)
        self._at(now + duration, self._outage_end, [devices[i] for i in chosen])

    def _outage_end(self, endpoints: list[Endpoint]) -> None:
        for ep in endpoints:
            ep.link.reachable = True

    def _start_campaign(self) -> None:
        """Build the scenario's release and hand the campaign to the cloud core."""
        ota = self.scenario.ota
        assert ota is not None
        seeds = SeedTree(self.scenario.seed)
        filler = seeds.rng("platform", "firmware-image").bytes(ota.image_bytes)
        image = ((SELF_TEST_FAIL if ota.faulty else b"") + filler)[: ota.image_bytes]
        signing = platform_signing_key(seeds)
        secret = seeds.entropy("platform", "firmware-secret", n_bytes=32)
        by_kind = (self.platform_events.ota_targets(ota.sequence) if self.platform_events
                   else self._firmware_keys())
        # One release and campaign per component: each kind runs its own application image.
        for component, targets in by_kind.items():
            release = build_release(image, component, ota.sequence, signing, secret)
            campaign = Campaign(release, targets, canary_fraction=ota.canary)
            self.campaigns.append(campaign)
            self._feed(self.cloud, StartCampaign(campaign), self.env.now)

    def _firmware_keys(self) -> dict[str, dict[str, Any]]:
        """Seeded identities have no platform: each device's update client tells its key."""
        by_kind: dict[str, dict[str, Any]] = {}
        for ep in self.fleet.endpoints:
            updater = ep.core.updater
            by_kind.setdefault(updater.component, {})[ep.principal.name] = \
                updater.decryption_public_key
        return by_kind

    def _notice(self, source: str, name: str, ep: Endpoint, why: str, now: float) -> None:
        detail: dict[str, str | int | float] = {"who": ep.principal.name, "why": why}
        self._record([Notice(source, name, detail)], now)
