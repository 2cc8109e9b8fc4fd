"""The security path end to end in the sim: a misbehaving device meets the broker policy, the
cloud's checks and the monitor, and is quarantined by a real command it obeys.

The rogue is a genuine wearable core that additionally republishes each of its windows on a
victim's telemetry topic (the first step of a false-data attack).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cloud.store import SqliteStore
from devices.wearable import WearableCore
from twin.core import topics
from twin.core.events import Publish, WindowReady
from twin.runner import load
from twin.sim.driver import SimRun


class RogueCore(WearableCore):
    """Sends every window twice: on its own topic and on the victim's."""

    __slots__ = ()
    victim = ""

    def handle(self, event, now):  # type: ignore[override]
        effects = super().handle(event, now)
        if isinstance(event, WindowReady):
            stolen = topics.telemetry(self.tenant, self.victim)
            effects += [Publish(stolen, e.payload) for e in effects if isinstance(e, Publish)]
        return effects


def run_with_rogue(tmp_path: Path, **defences: bool):
    sc = load("baseline").with_overrides(devices=20, duration=300)
    sc = sc.model_copy(update={"defences": defences})
    store = SqliteStore.create(tmp_path / "store.sqlite")
    run = SimRun(sc, store)
    rogue_ep, victim_ep = run.fleet.endpoints[0], run.fleet.endpoints[1]
    rogue = rogue_ep.core
    RogueCore.victim = victim_ep.principal.name
    rogue.__class__ = RogueCore  # same state, misbehaving handle()
    result = run.run()
    store.close()
    db = sqlite3.connect(tmp_path / "store.sqlite")
    return result, db, rogue, victim_ep.principal.name


def test_topic_abuse_is_denied_by_the_broker_and_quarantined(tmp_path: Path):
    result, db, rogue, victim = run_with_rogue(tmp_path)
    rules = [r for (r,) in db.execute("SELECT rule FROM security_alerts WHERE subject = ?",
                                      (rogue.device,))]
    assert rules == ["topic_abuse"]
    assert rogue.state.value == "quarantined"
    assert result.counters["broker.denied"] >= 3
    assert result.counters["commands.quarantine"] == 1
    (foreign,) = db.execute("SELECT COUNT(*) FROM telemetry WHERE device = ?",
                            (rogue.device,)).fetchone()
    (victims_rows,) = db.execute("SELECT COUNT(*) FROM telemetry WHERE device = ?",
                                 (victim,)).fetchone()
    assert victims_rows > 0 and foreign > 0  # the rogue's own windows, until quarantine
    assert result.states.get("quarantined") == 1


def test_with_the_acl_off_the_cloud_sees_it_but_cannot_attribute_it(tmp_path: Path):
    result, db, rogue, victim = run_with_rogue(tmp_path, topic_acl=False)
    rules = [r for (r,) in db.execute("SELECT rule FROM security_alerts WHERE subject = ?",
                                      (victim,))]
    # Charged to the topic under attack, once a minute while the attack goes on.
    assert set(rules) == {"impersonation"} and 3 <= len(rules) <= 5
    assert result.counters.get("broker.denied", 0) == 0
    assert result.counters["telemetry.rejected"] >= 1
    # Without the broker's identity check nobody can be quarantined safely: the rogue goes on.
    assert rogue.state.value == "streaming"
    assert "commands.quarantine" not in result.counters


def test_without_auto_quarantine_the_alert_stands_but_the_rogue_keeps_going(tmp_path: Path):
    result, db, rogue, _ = run_with_rogue(tmp_path, auto_quarantine=False)
    assert db.execute("SELECT COUNT(*) FROM security_alerts").fetchone()[0] >= 1
    assert rogue.state.value == "streaming"
    assert "commands.quarantine" not in result.counters
