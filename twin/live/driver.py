"""The live driver: the same cores as the sim, over real mutual-TLS MQTT, on the wall clock.

:class:`LiveRun` provisions the scenario's fleet (:func:`twin.platform.provision`: each
device's identity and key come from its QDID PUF), starts the embedded broker
(:mod:`broker.embedded`) on a free loopback port with those files, connects one paho client
per device with that device's certificate (client id = its UEID) and one for the cloud, and
drives the cores with the events the sim driver gives them:

* ``Provisioned`` and ``PowerOn`` at time 0; ``LinkUp`` on an accepted CONNACK, ``LinkDown``
  when a connection fails or drops; ``MessageReceived`` for each PUBLISH a client receives;
* ``TimerFired`` from ``loop.call_later``; ``WindowReady`` from the fleet's signal sources
  (the sim's :func:`~twin.sim.fleet.build_fleet` groups, so the values are the sim's),
  one numpy batch per kind and phase group, on the wall clock scaled by ``time_scale``.

Concurrency: the cores, the store, the broker and every paho client's socket live on one
asyncio event loop (one thread, epoll; :mod:`twin.live.mqtt`), so the cores need no locks and
the fleet size is bounded by memory and descriptors, not by ``select()``. The fleet powers on
in batches of :data:`STORM_BATCH` so that the blocking TCP connects never overflow the
broker's accept queue.
Brokers: the embedded broker (started here) or an external one (:mod:`twin.live.brokers`);
:meth:`LiveRun.restart_broker` restarts the embedded one in order mid-run. Nothing is
silently lost: telemetry acknowledged by a broker and never stored is counted as lost.

Length: over 400 lines. One class interprets every effect of the cores and every event of
the links on one loop; splitting it would spread that loop's state over modules.

Time: the fleet powers on at simulated time 0 and the clock starts once every device has
connected (the connection storm is measured, :attr:`LiveRun.fleet_connect_s`, not
simulated); then ``now = (loop.time() - t0) * time_scale``. Windows are stamped with their
scheduled time, as in the sim, so a window's values, timestamp and sequence number do not
depend on scheduling jitter.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.embedded import EmbeddedBroker
from cloud.ingest import CloudCore
from cloud.monitor import SecurityMonitor
from cloud.store import DeviceRow, RunStore
from devices.wearable import Provisioned, WearableCore
from twin.core.events import (
    CancelTimer,
    Connect,
    Count,
    Disconnect,
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
from twin.core.seeds import SeedTree
from twin.live.brokers import BrokerAddress, BrokerTraffic, serve
from twin.live.identities import LiveError, assign, read_identities, read_tenant
from twin.live.mqtt import LinkPool, MqttLink, client_context
from twin.platform import provision
from twin.scenario.schema import Scenario
from twin.sim.driver import RunResult
from twin.sim.fleet import build_fleet
from twin.sim.network import LatencySampler
from twin.sim.windows import device_memory, load_models, record_episodes, window_events

CLOUD = -1
"""The cloud's tag among the peers (devices are tagged with their fleet index)."""
CLOUD_RETRY_S = 0.5
"""Wall seconds before the cloud's link is reconnected after it dropped."""
CLOUD_READY_S = 10.0
"""Wall seconds to wait for the cloud's subscriptions before giving up."""
FLEET_UP_S = 30.0
"""Wall seconds to wait for every device's first CONNACK before starting the clock anyway
(devices still connecting then buffer their windows and send them on connecting)."""
DRAIN_S = 10.0
"""Wall seconds after the last window for in-flight messages to be acknowledged and stored."""
STORM_BATCH = 50
"""Devices powered on together; the next batch waits while :data:`STORM_CONNECTING` are
still connecting (a storm paced like this connects fastest on a loaded machine)."""
STORM_CONNECTING = 100


def check_supported(scenario: Scenario, time_scale: float) -> None:
    """Refuse, before anything starts, what this first live driver cannot run.

    Raises:
        LiveError: naming what is unsupported.
    """
    if time_scale <= 0:
        raise LiveError("time_scale must be positive")
    unsupported = [name for name, used in (("an OTA campaign", scenario.ota),
                                           ("attacks", scenario.attacks)) if used]
    if unsupported:
        raise LiveError(f"live mode cannot run {', '.join(unsupported)} yet")


@dataclass
class Peer:
    """One core with its MQTT link and its running timers."""

    name: str
    core: Any  # WearableCore or CloudCore: both take ``handle(event, now)``
    link: MqttLink | None = None
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)


class LiveRun:
    """One live run of a scenario.

    Args:
        scenario: the validated scenario (no OTA campaign or attacks yet).
        store: where the cloud writes telemetry, events, alerts and notices.
        run_dir: an empty folder to provision the fleet into (PKI, device credentials), or
            with ``provisioned``, a fleet ``twin provision`` wrote (at least as many devices).
        time_scale: simulated seconds per wall second (10: a minute of patient time in 6 s).
        progress: called with the simulated time after every stepper tick.
        broker: an external broker to use instead of starting the embedded one (it must
            trust ``run_dir``'s CA: pass ``provisioned=True``).
        provisioned: ``run_dir`` already holds the fleet; do not provision.

    Raises:
        LiveError: the scenario asks for something live mode cannot do yet, or is too big.
    """

    def __init__(self, scenario: Scenario, store: RunStore, run_dir: Path, *,
                 time_scale: float = 1.0,
                 progress: Callable[[float], None] | None = None,
                 broker: BrokerAddress | None = None, provisioned: bool = False) -> None:
        check_supported(scenario, time_scale)
        self.external = broker
        self.provisioned = provisioned
        self.traffic: BrokerTraffic | None = None
        """Messages through the run's broker (set once the broker is up)."""
        self._broker: EmbeddedBroker | None = None
        self.scenario = scenario
        self.store = store
        self.run_dir = run_dir
        self.time_scale = time_scale
        self.progress = progress
        self.counters: Counter[str] = Counter()
        self.broker_stats: dict[str, Any] = {}
        self.monitor = SecurityMonitor(auto_quarantine=scenario.defence_on("auto_quarantine"))
        seeds = SeedTree(scenario.seed)
        net = scenario.network
        access = LatencySampler(net.latency.median, net.latency.sigma, net.loss,
                                seeds.rng("network", "access"))
        self.fleet = build_fleet(scenario, seeds, access)  # signal sources and phase groups
        self._models = load_models()
        self._memory = device_memory(self.fleet)
        self.peers: dict[int, Peer] = {}
        self._seeds = seeds
        self._outage_rng = seeds.rng("network", "outages")  # the sim's stream for outages
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: LinkPool | None = None
        self._t0: float | None = None
        self._closing = False
        self._sent = self._acked = self._telemetry_sent = 0
        self._cloud_ready = asyncio.Event()
        self._subacks = 0
        self._up: set[int] = set()
        self.fleet_connect_s: float | None = None
        """Wall seconds from power-on until every device had its first CONNACK (or until
        :data:`FLEET_UP_S` ran out)."""
        self._dispatch: dict[type, Callable[[Peer, Any], None]] = {
            Publish: self._publish, Count: self._count, StartTimer: self._start_timer,
            CancelTimer: self._cancel_timer, Connect: self._connect,
            Disconnect: self._disconnect, Subscribe: self._subscribe,
        }

    # ------------------------------------------------------------------ running

    def run(self) -> RunResult:
        """Provision, serve, run the scenario on the wall clock and return what was measured.

        Runs its own event loop (``asyncio.run``): call it from synchronous code, not from a
        coroutine. Broker statistics are left in :attr:`broker_stats` and summed into the
        ``broker.*`` counters; :attr:`fleet_connect_s` is how long the fleet took to connect.

        Returns:
            The run result (``ota`` is empty: live mode runs no campaign yet).

        Raises:
            InventoryError: ``run_dir`` already holds a provisioned fleet.
            LiveError: the cloud could not subscribe in time.
            BrokerSetupError: the broker could not start.
        """
        started = time.perf_counter()
        sc = self.scenario
        if not self.provisioned:
            provision(self.run_dir, sc.device_count(), seed=sc.seed, tenant=sc.fleet.tenant)
        elif (tenant := read_tenant(self.run_dir)) != sc.fleet.tenant:
            raise LiveError(f"{self.run_dir} holds a fleet of tenant {tenant!r}; the scenario's "
                            f"is {sc.fleet.tenant!r}")
        self._build_devices()
        try:
            asyncio.run(self._main())
        finally:
            gc.unfreeze()  # frozen in _run_fleet: let the run's objects be collected
        self.store.flush()
        devices = [p for tag, p in self.peers.items() if tag != CLOUD]
        pending = sum(len(p.core.buffer) for p in devices) + max(0, self._sent - self._acked)
        self._count_in_transit(pending)
        states = Counter(p.core.state.value for p in devices)
        return RunResult(sc, len(devices), sc.duration, time.perf_counter() - started,
                         dict(self.counters), pending, dict(sorted(states.items())), [])

    def _build_devices(self) -> None:
        """Cores with the provisioned identities; battery, jitter stream and tunables as the
        sim's device at the same fleet index."""
        sc = self.scenario
        sim = self.fleet.endpoints
        slots = [ep.core.kind.value for ep in sim]
        self._files: dict[int, tuple[Path, Path]] = {
            CLOUD: (self.run_dir / "cloud" / "cert.pem", self.run_dir / "cloud" / "key.pem")}
        for ep, ident in zip(sim, assign(slots, read_identities(self.run_dir)), strict=True):
            old: WearableCore = ep.core
            core = WearableCore(ident.device, old.kind, sc.fleet.tenant, old.battery,
                                self._seeds.rng("device", ep.index), old.config, old.updater)
            self.peers[ep.index] = Peer(ident.device, core)
            self._files[ep.index] = (ident.cert, ident.key)
        self.store.add_devices(
            DeviceRow(p.name, serial, p.core.kind.value, sc.fleet.tenant)
            for p, serial in zip(self.peers.values(), self.fleet.serials, strict=True))
        self.peers[CLOUD] = Peer("cloud", CloudCore(
            sc.fleet.tenant, replay_window=sc.defence_on("replay_window")))

    async def _main(self) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._cloud_ready = asyncio.Event()
        async with serve(self.run_dir, self.external) as (traffic, broker):
            self.traffic, self._broker = traffic, broker
            host = self.external.host if self.external else "127.0.0.1"
            port = self.external.port if self.external else broker.port if broker else 0
            ca = self.run_dir / "pki" / "root.pem"
            self._pool = pool = LinkPool(loop)
            for tag, peer in self.peers.items():
                peer.link = MqttLink(peer.name, client_context(ca, *self._files[tag]),
                                     host, port, pool, self, tag)
            try:
                await self._run_fleet()
            finally:
                if broker is not None:
                    self.broker_stats = broker.stats()
                    traffic.restarts = broker.restarts
                await self._close()
        self._count_broker()

    async def restart_broker(self) -> None:
        """Restart the embedded broker in order (tests, demos): devices reconnect with their
        back-off and re-send what was not acknowledged; nothing may be lost.

        Raises:
            LiveError: the run uses an external broker.
        """
        if self._broker is None:
            raise LiveError("only the embedded broker can be restarted by the run")
        await self._broker.restart()

    async def _run_fleet(self) -> None:
        loop = asyncio.get_running_loop()
        cloud = self.peers[CLOUD]
        assert cloud.link is not None
        cloud.link.connect()  # LinkUp -> the cloud core's Subscribe effects
        try:
            await asyncio.wait_for(self._cloud_ready.wait(), CLOUD_READY_S)
        except TimeoutError:
            raise LiveError("the cloud could not connect and subscribe to the broker") from None
        powered = loop.time()
        await self._power_on([p for tag, p in self.peers.items() if tag != CLOUD])
        while len(self._up) < len(self.peers) - 1 and loop.time() < powered + FLEET_UP_S:
            await asyncio.sleep(0.01)
        self.fleet_connect_s = loop.time() - powered if self._up else None
        # The fleet's connections, sessions and cores live for the whole run: keep them out
        # of the cyclic GC's scans (py-spy: collections triggered by per-message allocations
        # were ~12 % of a 1,000-device run and showed as latency spikes).
        gc.collect()
        gc.freeze()
        self._t0 = loop.time()  # the patients' clock starts once the fleet is online
        outages = [asyncio.ensure_future(self._outage(n, o.at, o.fraction, o.duration))
                   for n, o in enumerate(self.scenario.network.outages)]
        try:
            await self._stepper()
        finally:
            for task in outages:
                task.cancel()
        deadline = loop.time() + DRAIN_S
        while not self._drained() and loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def _power_on(self, devices: list[Peer]) -> None:
        """Provision and power on the fleet at simulated time 0 (the clock is not running),
        :data:`STORM_BATCH` devices at a time."""
        for start in range(0, len(devices), STORM_BATCH):
            while self._connecting() > STORM_CONNECTING:
                await asyncio.sleep(0.005)
            for peer in devices[start:start + STORM_BATCH]:
                self._feed(peer, Provisioned())
                self._feed(peer, PowerOn())
            await asyncio.sleep(0)

    def _connecting(self) -> int:
        """Devices with a socket open that have not had their first CONNACK."""
        return sum(1 for tag, p in self.peers.items()
                   if tag != CLOUD and tag not in self._up and p.link is not None and p.link.open)

    def _drained(self) -> bool:
        """Every PUBLISH acknowledged, every buffer sent, every window seen by the cloud."""
        buffered = any(len(p.core.buffer) for t, p in self.peers.items() if t != CLOUD)
        return (not buffered and self._acked >= self._sent
                and self.counters["telemetry.delivered"] >= self._telemetry_sent)

    async def _outage(self, number: int, at: float, fraction: float, duration: float) -> None:
        """A network outage: the chosen devices' sockets are cut at ``at`` and their
        reconnection attempts fail as unreachable until ``at + duration`` (simulated
        seconds). The devices are chosen as the sim chooses them (same seed stream)."""
        await asyncio.sleep(max(0.0, at - self._now()) / self.time_scale)
        devices = [p for tag, p in sorted(self.peers.items()) if tag != CLOUD]
        count = max(1, round(fraction * len(devices)))
        chosen = sorted(self._outage_rng.choice(len(devices), size=count, replace=False).tolist())
        self.store.apply([Notice("network", "outage", {"number": number, "devices": count,
                                                       "duration_s": duration})], self._now())
        links = [link for i in chosen if (link := devices[i].link) is not None]
        try:
            for link in links:
                link.unreachable = True
                link.abort()
            self.counters["live.outage_cut"] += len(links)
            await asyncio.sleep(duration / self.time_scale)
        finally:  # also when the run ends first: the drain may still reconnect them
            for link in links:
                link.unreachable = False

    async def _stepper(self) -> None:
        """Close every device's windows on schedule, one numpy batch per kind and phase group
        (the sim's schedule: group g closes at g*window/G + m*window)."""
        sc, groups = self.scenario, self.fleet.groups
        sub = sc.window / len(groups)
        k = len(groups)
        while k * sub <= sc.duration:
            at = k * sub
            await asyncio.sleep(max(0.0, at - self._now()) / self.time_scale)
            phase = k % len(groups)
            for group, memory in zip(groups[phase], self._memory[phase], strict=True):
                batch = group.source.window(at, group.local)
                if len(batch.episodes):
                    self.counters["clinical.episodes"] += record_episodes(
                        self.store, group, batch, self._name_of,
                        strips=bool(self.scenario.outputs.strip_seconds))
                if memory is not None:  # what a patch keeps in RAM is gone after a reboot
                    boots = [self.peers[ep.index].core.boots for ep in group.endpoints]
                    if lost := memory.forget_rebooted(boots):
                        self.counters["ecg.references_lost_in_reboots"] += lost
                events = window_events(group.kind, batch, self._models, memory)
                for ep, ready in zip(group.endpoints, events, strict=True):
                    self._feed(self.peers[ep.index], ready, at)
            if self.progress is not None:
                self.progress(at)
            k += 1

    def _name_of(self, index: int) -> str:
        """The provisioned identity of the device at fleet index ``index``."""
        return self.peers[index].name

    async def _close(self) -> None:
        """Cancel timers and close every connection (their disconnects are not LinkDowns)."""
        self._closing = True
        for peer in self.peers.values():
            for handle in peer.timers.values():
                handle.cancel()
        if self._pool is not None:
            await self._pool.close()

    def _count_in_transit(self, pending: int) -> None:
        """Count as lost the telemetry that was published, is not buffered or awaiting a
        PUBACK, and never reached the store: a broker acknowledged it and did not deliver
        it. Never silently dropped (issue 7: "what overflowed is counted as lost")."""
        c = self.counters
        missing = (c["telemetry.published"] - self.store.count("telemetry")
                   - c["telemetry.rejected"] - c["telemetry.lost"] - pending)
        if missing > 0:
            c["telemetry.lost"] += missing
            c["telemetry.lost.in_transit"] += missing

    def _count_broker(self) -> None:
        s = self.broker_stats
        for name in ("handshakes_failed", "rate_dropped", "rate_cut"):
            self.counters[f"broker.{name}"] += int(s.get(name, 0))
        self.counters["broker.refused"] += sum(s.get("refusals", {}).values())

    def _now(self) -> float:
        """Simulated seconds since the fleet powered on."""
        if self._loop is None or self._t0 is None:
            return 0.0
        return (self._loop.time() - self._t0) * self.time_scale

    # ------------------------------------------------------------------ cores

    def _feed(self, peer: Peer, event: Any, now: float | None = None) -> None:
        """Give ``peer``'s core an event and carry out the effects it returns."""
        at = self._now() if now is None else now
        stored = []
        for effect in peer.core.handle(event, at):
            handler = self._dispatch.get(type(effect))
            if handler is not None:
                handler(peer, effect)
            else:  # notices and the cloud's storage effects
                stored.append(effect)
        if stored:
            self._record(stored, at)

    def _record(self, effects: list[Any], now: float) -> None:
        """Store effects; broker, cloud and platform notices also go through the monitor."""
        alerts, requests = self.monitor.screen(effects, now)
        for alert in alerts:
            self.counters[f"security.alerts.{alert.rule}"] += 1
        self.store.apply([*effects, *alerts], now)
        for request in requests:
            self._feed(self.peers[CLOUD], request, now)

    def _publish(self, peer: Peer, effect: Publish) -> None:
        assert peer.link is not None
        self._sent += 1
        if effect.topic.endswith("/telemetry"):
            self._telemetry_sent += 1
        peer.link.publish(effect.topic, effect.payload, effect.qos)
        if self.traffic is not None:
            self.traffic.published += 1

    def _subscribe(self, peer: Peer, effect: Subscribe) -> None:
        assert peer.link is not None
        peer.link.subscribe(effect.topic_filter, effect.qos)

    def _count(self, _peer: Peer, effect: Count) -> None:
        self.counters[effect.name] += effect.n

    def _start_timer(self, peer: Peer, effect: StartTimer) -> None:
        self._cancel_timer(peer, CancelTimer(effect.name))
        assert self._loop is not None
        peer.timers[effect.name] = self._loop.call_later(
            effect.delay / self.time_scale, self._timer_fired, peer, effect.name)

    def _cancel_timer(self, peer: Peer, effect: CancelTimer) -> None:
        if (handle := peer.timers.pop(effect.name, None)) is not None:
            handle.cancel()

    def _timer_fired(self, peer: Peer, name: str) -> None:
        peer.timers.pop(name, None)
        if not self._closing:
            self._feed(peer, TimerFired(name))

    def _connect(self, peer: Peer, _effect: Connect) -> None:
        assert peer.link is not None
        peer.link.connect()

    def _disconnect(self, peer: Peer, _effect: Disconnect) -> None:
        assert peer.link is not None
        peer.link.disconnect()

    # ------------------------------------------------------------------ links (LinkListener)

    def on_up(self, link: MqttLink) -> None:
        """CONNACK accepted: ``LinkUp`` (devices send their backlog, the cloud subscribes)."""
        if self._closing:
            return
        self.counters["live.connected"] += 1
        if self.traffic is not None:
            self.traffic.connections += 1
        if link.tag != CLOUD:
            self._up.add(link.tag)
        self._feed(self.peers[link.tag], LinkUp())

    def on_down(self, link: MqttLink, reason: str) -> None:
        """A connection failed or dropped: ``LinkDown``; a device's core decides when to
        reconnect (its back-off), the cloud (a service, not a core with a lifecycle) is
        reconnected by the driver after :data:`CLOUD_RETRY_S` wall seconds."""
        if self._closing:
            return
        self.counters["live.link_down"] += 1
        if reason.startswith("refused"):
            self.counters["live.connect_refused"] += 1
        self._feed(self.peers[link.tag], LinkDown(reason.split(":")[0]))
        if link.tag == CLOUD:
            assert self._loop is not None
            self._loop.call_later(CLOUD_RETRY_S, link.connect)

    def on_message(self, link: MqttLink, topic: str, payload: bytes) -> None:
        """A PUBLISH for this client: ``MessageReceived``."""
        if self.traffic is not None:
            self.traffic.delivered += 1
        if not self._closing:
            self._feed(self.peers[link.tag], MessageReceived(topic, payload))

    def on_acked(self, link: MqttLink) -> None:
        """A PUBLISH was acknowledged."""
        self._acked += 1
        if self.traffic is not None:
            self.traffic.acknowledged += 1

    def on_subscribed(self, link: MqttLink, refused: int) -> None:
        """A SUBACK: count refusals; the cloud is ready once all its filters are granted."""
        self.counters["broker.subscribe_refused"] += refused
        if link.tag == CLOUD:
            self._subacks += 1
            core = self.peers[CLOUD].core
            if self._subacks >= len(core.subscriptions) and not refused:
                self._cloud_ready.set()
