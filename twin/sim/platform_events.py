"""What the platform does during a simulated run: revocations, renewals, OTA targets.

The driver (:mod:`twin.sim.driver`) owns time, the network and the broker; this module holds
the platform's part of a run with ``fleet.identity: qdid`` so that the driver stays a plain
interpreter of effects. It uses the driver's own primitives (``_at`` for a timer, ``_feed``
to give a core an event, ``_record`` for notices through the monitor, the effect handlers
for publishes and subscriptions), never a copy of them.

Renewal goes over the simulated broker, under ``broker.policy`` like any other traffic: the
platform is a client of its own (role ``platform``: it reads ``+/prov/request`` and answers on
``prov/response``), and a renewing device's enrolment client publishes and subscribes through
the device's own endpoint and session. Answers on the device's ``prov/response`` topic go to
that client (:meth:`PlatformEvents.takes`), not to the wearable core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.policy import Principal, Role
from cloud.errors import CampaignError
from devices.enrolment import EnrolmentClient, Phase
from twin.core import topics
from twin.core.events import LinkDown, LinkUp, MessageReceived, Notice, PowerOn, Publish, Subscribe
from twin.core.messages import Kind
from twin.core.seeds import SeedTree
from twin.scenario.schema import Revocation
from twin.sim.broker import Endpoint
from twin.sim.network import Link
from twin.sim.platform import SimPlatform

if TYPE_CHECKING:
    from twin.sim.driver import SimRun

RETRY_S = 60.0
"""An offline device tries to renew again this much later (until its certificate expires)."""


class PlatformCore:
    """The platform's MQTT client in the sim: it subscribes to its tenant's enrolment
    requests on every session and answers each one (:meth:`SimPlatform.on_prov_message`)."""

    def __init__(self, platform: SimPlatform) -> None:
        self.platform = platform
        self.requests = f"{topics.PREFIX}/{platform.platform.tenant}/+/prov/request"

    def handle(self, event: object, now: float) -> list[Any]:
        """Subscribe on (re)connection; answer a request; ignore anything else."""
        if isinstance(event, (PowerOn, LinkUp)):
            return [Subscribe(self.requests)]
        if isinstance(event, MessageReceived):
            return self.platform.on_prov_message(event.topic, event.payload, now)
        return []


class PlatformEvents:
    """The platform's scheduled acts in one run.

    Args:
        run: the driver.
        platform: the run's platform (the fleet is already enrolled).
    """

    def __init__(self, run: SimRun, platform: SimPlatform) -> None:
        self.run = run
        self.platform = platform
        self._renewing: dict[int, tuple[EnrolmentClient, float]] = {}

    def schedule(self) -> None:
        """Connect the platform's endpoint (on the cloud's network); put the scenario's
        revocations and every device's first renewal on the clock."""
        principal = Principal(Role.PLATFORM, self.platform.platform.tenant, "platform")
        endpoint = Endpoint(principal, PlatformCore(self.platform), Link(),
                            self.run.cloud.latency)
        self.run._session_up(endpoint, endpoint.link.epoch)
        sc = self.run.scenario
        for revocation in sc.revocations:
            self.run._at(revocation.at, self.revoke, revocation)
        if sc.fleet.renew_window > 0:
            spread = SeedTree(sc.seed).rng("platform", "renewal")
            for ep in self.run.fleet.endpoints:
                self._schedule_renewal(ep, float(spread.uniform(0.0, 0.5)))

    # ------------------------------------------------------------------ revocation

    def revoke(self, event: Revocation) -> None:
        """Revoke through the platform, publish the CRL to the broker, update its policy and
        drop the revoked devices' sessions; their reconnects are then refused by the broker's
        own checks (the CRL, then the policy)."""
        run, now = self.run, self.run.env.now
        done = self.platform.revoke(event, now)
        run.broker.load_crl(done.crl)
        revoked = set(done.devices)
        run.monitor.revoked(revoked)  # their refusals from now on are expected: alert once
        for device in revoked:
            run.broker.policy.revoke(device)
        for ep in run.fleet.endpoints:
            if ep.principal.name not in revoked:
                continue
            run.broker.drop(ep)
            if ep.link.connected:
                run.counters["broker.sessions_dropped"] += 1
                ep.link.drop(now)
                run._feed(ep, LinkDown("revoked"), now)
        run.counters["platform.revoked"] += len(done.chips)
        run._record([Notice("platform", "revoked", {
            "devices": len(done.chips), "crl_number": done.crl_number,
            "reason": event.reason})], now)

    # ------------------------------------------------------------------ renewal

    def _schedule_renewal(self, ep: Endpoint, jitter: float) -> None:
        """Renew when the certificate enters its renewal window (plus a share of the window,
        so a fleet enrolled together does not renew in one burst)."""
        window = self.run.scenario.fleet.renew_window
        due = ep.expires - window * (1.0 - jitter)
        if due < self.run.scenario.duration:
            self.run._at(due, self.renew, ep, jitter)

    def renew(self, ep: Endpoint, jitter: float) -> None:
        """The device renews: it boots, asks for a challenge on its session, re-attests over
        the nonce and sends a fresh CSR. An offline device, or an exchange not finished a
        minute later (lost with a dropped session), tries again a minute later."""
        run, now = self.run, self.run.env.now
        if not ep.link.connected:
            if now < ep.expires:
                run._at(now + RETRY_S, self.renew, ep, jitter)
            return
        client = self.platform.renewal_client(ep.index, now)
        self._renewing[ep.index] = (client, jitter)
        self._carry_out(ep, client.start(), now)
        run._at(now + RETRY_S, self._unfinished, ep, client)

    def _unfinished(self, ep: Endpoint, client: EnrolmentClient) -> None:
        entry = self._renewing.get(ep.index)
        if entry is not None and entry[0] is client:  # still waiting: abandon, start again
            del self._renewing[ep.index]
            self.run.counters["platform.renewal_retried"] += 1
            self.renew(ep, entry[1])

    def takes(self, ep: Endpoint, topic: str, payload: bytes, now: float) -> bool:
        """Give a message arriving at a device to its renewal client, if it is one for it.

        Returns:
            Whether the message was the renewal client's (the wearable core never sees it).
        """
        entry = self._renewing.get(ep.index)
        if entry is None or topic != entry[0].response_topic:
            return False
        client, jitter = entry
        self._carry_out(ep, client.on_message(topic, payload, now), now)
        if client.phase is Phase.ENROLLED and client.certificate is not None:
            del self._renewing[ep.index]
            renewed = self.platform.renewed(ep.index, client.certificate)
            ep.serial, ep.expires = renewed.serial, renewed.expires
            self.run.counters["platform.renewed"] += 1
            self._schedule_renewal(ep, jitter)
        elif client.phase is Phase.REFUSED:
            del self._renewing[ep.index]
            self.run.counters["platform.renewal_refused"] += 1
            self.run._notice("platform", "renewal_refused", ep, client.reason, now)
        return True

    def _carry_out(self, ep: Endpoint, effects: list[Any], now: float) -> None:
        """The renewal client's publishes and subscriptions go out on the device's own
        session (the broker's policy judges them as the device's)."""
        for effect in effects:
            if isinstance(effect, Publish):
                self.run._publish(ep, effect, now)
            elif isinstance(effect, Subscribe):
                self.run._subscribe(ep, effect, now)

    # ------------------------------------------------------------------ firmware

    def observe(self, effects: list[Any], now: float) -> None:
        """What the platform learns from the run's notices: the firmware each device reports
        running after an update (the cloud's ``firmware_reported``) goes into the inventory."""
        for effect in effects:
            if (type(effect) is Notice and effect.source == "cloud"
                    and effect.name == "firmware_reported"):
                detail = effect.detail
                if self.platform.firmware_reported(str(detail["device"]),
                                                   int(detail["sequence"]),
                                                   str(detail["outcome"]), now):
                    self.run.counters["platform.firmware_recorded"] += 1

    def ota_targets(self, sequence: int) -> dict[str, dict[str, Any]]:
        """Targets from the inventory: the firmware keys recorded at enrolment, devices in a
        state that takes updates; a component the platform refuses is noted, not sent."""
        run = self.run
        by_kind: dict[str, dict[str, Any]] = {}
        for kind in Kind:
            if not run.scenario.fleet.devices.get(kind.value):
                continue
            try:
                targets = self.platform.ota_targets(kind.value, sequence)
            except CampaignError as exc:
                run._record([Notice("platform", "ota_refused", {
                    "kind": kind.value, "reason": exc.reason})], run.env.now)
                continue
            by_kind[targets.component] = dict(targets.keys)
        return by_kind
