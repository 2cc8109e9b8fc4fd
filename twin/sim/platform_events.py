"""What the platform does during a simulated run: revocations, renewals, OTA targets.

The driver (:mod:`twin.sim.driver`) owns time, the network and the broker; this module holds
the platform's part of a run with ``fleet.identity: qdid`` so that the driver stays a plain
interpreter of effects. It uses the driver's own primitives (``_at`` for a timer, ``_feed``
to give a core an event, ``_record`` for notices through the monitor), never a copy of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cloud.enrolment import EnrolmentError
from cloud.errors import CampaignError
from twin.core.events import LinkDown, Notice
from twin.core.messages import Kind
from twin.core.seeds import SeedTree
from twin.scenario.schema import Revocation
from twin.sim.broker import Endpoint
from twin.sim.platform import SimPlatform

if TYPE_CHECKING:
    from twin.sim.driver import SimRun

RETRY_S = 60.0
"""An offline device tries to renew again this much later (until its certificate expires)."""


class PlatformEvents:
    """The platform's scheduled acts in one run.

    Args:
        run: the driver.
        platform: the run's platform (the fleet is already enrolled).
    """

    def __init__(self, run: SimRun, platform: SimPlatform) -> None:
        self.run = run
        self.platform = platform

    def schedule(self) -> None:
        """Put the scenario's revocations and every device's first renewal on the clock."""
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
        """The device renews: it re-attests over a fresh nonce and sends a fresh CSR (the
        exchange belongs on its session, so an offline device tries again a minute later)."""
        run, now = self.run, self.run.env.now
        if not ep.link.connected:
            if now < ep.expires:
                run._at(now + RETRY_S, self.renew, ep, jitter)
            return
        try:
            renewed = self.platform.renew(ep.index, now)
        except EnrolmentError as exc:
            run.counters["platform.renewal_refused"] += 1
            run._notice("platform", "renewal_refused", ep, exc.reason, now)
            return
        ep.serial, ep.expires = renewed.serial, renewed.expires
        run.counters["platform.renewed"] += 1
        self._schedule_renewal(ep, jitter)

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
