"""Platform identities, revocation and renewal in the sim: a QDID fleet enrolled by the
platform, a revocation through the platform core, the simulated broker refusing the revoked
devices, and certificates renewed before they expire (or refused once expired).

The refusal must come from a real check: the simulated broker's CRL lookup of the presented
certificate's serial (and, behind it, ``broker.policy``), the same way the real broker refuses
a revoked certificate in the TLS handshake. The monitor sees the refusals and the report counts
them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from broker.policy import AccessDenied, BrokerPolicy, Principal, Role
from cloud.store import SqliteStore
from devices.rot.testing import qdid_device
from twin.core.identity import Ueid
from twin.report import build_report
from twin.runner import RunError, load, run_scenario
from twin.scenario import Scenario, ScenarioError
from twin.sim.broker import Endpoint, SimBroker
from twin.sim.driver import SimRun
from twin.sim.network import LatencySampler, Link

SEED = 11
REVOKE_AT = 240.0


def scenario(**update: object) -> Scenario:
    base = load("baseline").with_overrides(devices=9, duration=600, seed=SEED)
    data = base.model_dump()
    data["fleet"]["identity"] = "qdid"
    data["revocations"] = [{"at": REVOKE_AT, "devices": [0, 4]}]
    data.update(update)
    return Scenario.model_validate(data)


def run(tmp_path: Path, sc: Scenario) -> tuple[SimRun, dict, sqlite3.Connection]:
    store = SqliteStore.create(tmp_path / "store.sqlite")
    sim = SimRun(sc, store)
    result = sim.run()
    report = build_report(result, store)
    store.close()
    return sim, report, sqlite3.connect(tmp_path / "store.sqlite")


@pytest.fixture(scope="module")
def revoked_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimRun, dict,
                                                                   sqlite3.Connection]:
    return run(tmp_path_factory.mktemp("revocation"), scenario())


def test_the_sim_fleet_is_enrolled_by_the_platform_with_puf_identities(revoked_run) -> None:
    sim, report, _ = revoked_run
    assert sim.platform is not None and report["security"]["identities"] == "qdid"
    names = [ep.principal.name for ep in sim.fleet.endpoints]
    # The UEID is the hash of the key the chip's PUF derives: the same chip in twin provision.
    assert names[0] == qdid_device(seed=SEED, chip=0).ueid.hex
    records = {r.device: r for r in sim.platform.platform.inventory.records()}
    assert set(records) == set(names)
    for ep in sim.fleet.endpoints:
        record = records[ep.principal.name]
        assert ep.serial == record.certificate_serial and record.firmware_key
        assert record.kind == ep.core.kind.value


def test_revocation_goes_through_the_platform_and_the_broker_refuses_reconnects(
        revoked_run) -> None:
    sim, report, db = revoked_run
    revoked = {sim.fleet.endpoints[i].principal.name for i in (0, 4)}
    r = report["security"]["revocations"]
    assert (r["events"], r["devices"], r["crl_number"]) == (1, 2, 1)
    assert r["inventory"] == {"active": 7, "revoked": 2}
    assert r["sessions_dropped"] == 2 and r["connects_refused"] >= 2
    denied = [json.loads(d) for (d,) in db.execute(
        "SELECT detail FROM notices WHERE name = 'connect_denied'")]
    assert {d["who"] for d in denied} == revoked
    assert {d["why"] for d in denied} == {"certificate revoked (on the CRL)"}
    for device in revoked:  # nothing of theirs is stored after the revocation
        (late,) = db.execute("SELECT COUNT(*) FROM telemetry WHERE device = ? AND received > ?",
                             (device, REVOKE_AT + 1.0)).fetchone()
        assert late == 0
    others = [ep for ep in sim.fleet.endpoints if ep.principal.name not in revoked]
    assert all(ep.core.state.value == "streaming" for ep in others)
    t = report["telemetry"]
    assert t["stored"] + t["rejected"] + t["lost"] + t["pending"] == t["published"]


def test_the_monitor_raises_an_alert_for_each_revoked_device(revoked_run) -> None:
    sim, report, db = revoked_run
    revoked = {sim.fleet.endpoints[i].principal.name for i in (0, 4)}
    subjects = {s for (s,) in db.execute(
        "SELECT subject FROM security_alerts WHERE rule = 'refused_connections'")}
    assert subjects == revoked
    # Once each: the platform revoked them, so their later refusals are expected and counted.
    assert report["security"]["alerts"]["refused_connections"] == 2
    c = report["counters"]
    assert c["security.expected.connect_denied"] == c["broker.connect_denied"] >= 6


def test_a_batch_revocation_revokes_every_device_of_the_kind(tmp_path: Path) -> None:
    sc = scenario(revocations=[{"at": 120.0, "batch": "bp_cuff", "reason": "superseded"}])
    sim, report, _ = run(tmp_path, sc)
    cuffs = sc.fleet.devices["bp_cuff"]
    assert report["security"]["revocations"]["devices"] == cuffs
    assert report["devices_by_state"].get("reconnecting") == cuffs
    audit = [a for a in sim.platform.platform.inventory.audit() if a.event == "revoke"]
    assert len(audit) == cuffs and {a.detail["reason"] for a in audit} == {"superseded"}


def test_an_ota_campaign_wraps_keys_from_the_inventory_and_skips_revoked_devices(
        tmp_path: Path) -> None:
    sc = scenario(ota={"at": 300.0, "sequence": 2, "image_bytes": 512, "canary": 0.5,
                       "faulty": False})
    sim, report, _ = run(tmp_path, sc)
    campaigns = {c["component"]: c for c in report["platform"]["ota"]}
    assert sum(c["targets"] for c in campaigns.values()) == 7  # two were revoked at 4 min
    assert all(c["state"] == "completed" and c["installed"] == c["targets"]
               for c in campaigns.values())
    # The inventory now says what the fleet runs, from the devices' own reports, audited.
    assert sim.platform is not None
    inventory = sim.platform.platform.inventory
    versions = {r.state.value: set() for r in inventory.records()}
    for record in inventory.records():
        versions[record.state.value].add(record.firmware)
    assert versions == {"active": {2}, "revoked": {0}}
    assert report["counters"]["platform.firmware_recorded"] == 7
    for record in inventory.records():
        firmware = [a.detail for a in inventory.audit(record.chip) if a.event == "firmware"]
        assert firmware == ([{"previous": 0, "sequence": 2, "outcome": "installed"}]
                            if record.state.value == "active" else [])


def test_a_reverted_update_leaves_the_inventory_at_the_version_the_device_runs(
        tmp_path: Path) -> None:
    sc = scenario(revocations=[], ota={"at": 300.0, "sequence": 2, "image_bytes": 512,
                                       "canary": 0.5, "faulty": True})
    sim, report, _ = run(tmp_path, sc)
    reverted = sum(c["reverted"] for c in report["platform"]["ota"])
    assert reverted >= 1
    assert sim.platform is not None
    # The canaries reverted to the image they shipped with (sequence 1) and said so; the
    # others were never offered the update: their version stays unknown (0) on record.
    versions = [r.firmware for r in sim.platform.platform.inventory.records()]
    assert 2 not in versions and versions.count(1) == reverted
    assert report["counters"]["platform.firmware_recorded"] == reverted


def test_the_same_seed_gives_the_same_identities_and_report(tmp_path: Path, revoked_run
                                                            ) -> None:
    sim, report, _ = revoked_run
    again, report2, _ = run(tmp_path, scenario())
    assert [e.principal.name for e in again.fleet.endpoints] == [
        e.principal.name for e in sim.fleet.endpoints]
    for key in ("wall_seconds", "realtime_factor"):
        report.pop(key, None), report2.pop(key, None)
    assert report == report2


# ---------------------------------------------------------------- the simulated broker


def _endpoint(name: str, serial: int) -> Endpoint:
    return Endpoint(Principal(Role.DEVICE, "ward-7", name), None, Link(),
                    LatencySampler(0.01, 0.1, 0.0, None), serial=serial)  # type: ignore[arg-type]


def test_the_sim_broker_refuses_a_serial_on_the_crl_and_an_older_crl(revoked_run) -> None:
    sim, _, _ = revoked_run
    crl = sim.platform.revocations[0].crl
    listed = next(iter(crl)).serial_number
    broker = SimBroker(BrokerPolicy())
    victim, bystander = _endpoint("a" * 34, listed), _endpoint("b" * 34, listed + 1)
    broker.connect(victim)  # no CRL yet: the certificate is good
    broker.load_crl(crl)
    with pytest.raises(AccessDenied, match="CRL"):
        broker.connect(victim)
    broker.connect(bystander)
    with pytest.raises(AccessDenied, match="not newer"):
        broker.load_crl(crl)  # a replayed CRL would un-revoke devices once newer ones exist


def test_a_dropped_client_receives_nothing_more() -> None:
    broker = SimBroker(BrokerPolicy())
    name = Ueid.from_random(bytes(range(16))).hex
    client = _endpoint(name, 7)
    broker.subscribe(client, f"medtwin/v1/ward-7/{name}/cmd/#")
    topic = f"medtwin/v1/ward-7/{name}/cmd/x"
    cloud = Endpoint(Principal(Role.CLOUD, "ward-7", "cloud"), None, Link(),
                     LatencySampler(0.01, 0.1, 0.0, None))  # type: ignore[arg-type]
    assert broker.publish(cloud, topic) == (client,)
    broker.drop(client)
    assert broker.publish(cloud, topic) == ()


# ---------------------------------------------------------------- the scenario file


@pytest.mark.parametrize("text, where, message", [
    ("fleet: {devices: {ecg_patch: 3}}\nrevocations: [{at: 1m, devices: [0]}]\n",
     ":5: revocations.0:", "set fleet.identity: qdid"),
    ("fleet: {identity: qdid, devices: {ecg_patch: 3}}\nrevocations:\n"
     "  - at: 1m\n    devices: [0, 3]\n", ":7: revocations.0.devices.1:",
     "device 3 does not exist (the fleet has 3: 0..2)"),
    ("fleet: {identity: qdid, devices: {ecg_patch: 3}}\nrevocations:\n"
     "  - at: 20m\n    devices: [0]\n", ":6: revocations.0.at:", "not before the end"),
    ("fleet: {identity: qdid, devices: {ecg_patch: 3}}\nrevocations:\n"
     "  - at: 1m\n    batch: bp_cuff\n", ":7: revocations.0.batch:", "no bp_cuff devices"),
    ("fleet: {identity: qdid, devices: {ecg_patch: 3}}\nrevocations:\n"
     "  - {at: 1m, batch: ecg_patch, devices: [1]}\n", ":6: revocations.0:",
     "either devices"),
])
def test_a_bad_revocation_names_file_line_and_key(tmp_path: Path, text: str, where: str,
                                                  message: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: rev\nduration: 10m\n" + "mode: sim\n" + text)
    with pytest.raises(ScenarioError) as caught:
        load(path)
    (line,) = caught.value.problems
    assert line.startswith(f"{path}{where}") and message in line, line


def test_live_mode_refuses_scenario_revocations_before_writing(tmp_path: Path) -> None:
    """The live driver does not schedule revocations yet: say so rather than ignore them."""
    sc = load("revocation").with_overrides(mode="live")
    with pytest.raises(RunError, match="sim mode only"):
        run_scenario(sc, tmp_path / "live")
    assert not (tmp_path / "live").exists()


# ---------------------------------------------------------------- renewal before expiry


def renewal_scenario(window: float) -> Scenario:
    """20-minute certificates, an hour's run, half the fleet offline at minute 40."""
    data = load("baseline").with_overrides(devices=8, duration=3600, seed=SEED).model_dump()
    data["fleet"].update(identity="qdid", certificate_validity=1200.0, renew_window=window)
    data["network"]["outages"] = [{"at": 2400.0, "duration": 60.0, "fraction": 0.5}]
    return Scenario.model_validate(data)


def test_certificates_renewed_before_expiry_keep_the_fleet_connected(tmp_path: Path) -> None:
    sim, report, _ = run(tmp_path, renewal_scenario(300.0))
    renewals = report["security"]["renewals"]
    assert renewals == {"renewed": 8 * 3, "refused": 0, "expired_connects_refused": 0}
    assert report["devices_by_state"] == {"streaming": 8}
    inventory = sim.platform.platform.inventory
    for identity, ep in zip(sim.platform.identities, sim.fleet.endpoints, strict=True):
        assert [a.event for a in inventory.audit(identity.chip)].count("renew") == 3
        assert ep.serial == inventory.get(identity.chip).certificate_serial
        assert ep.expires > 3600.0


def test_renewal_over_the_broker_is_deterministic(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    _, first, _ = run(tmp_path / "a", renewal_scenario(300.0))
    _, second, _ = run(tmp_path / "b", renewal_scenario(300.0))
    for report in (first, second):
        report.pop("wall_seconds", None), report.pop("realtime_factor", None)
    assert first == second and first["security"]["renewals"]["renewed"] == 8 * 3


class _NoRenewalTraffic(BrokerPolicy):
    """A broker policy that refuses every enrolment publish (to show renewal needs the broker)."""

    def authorize_publish(self, who: Principal, topic: str) -> None:
        if "/prov/" in topic:
            raise AccessDenied("no enrolment traffic on this broker")
        super().authorize_publish(who, topic)


def test_renewal_goes_over_the_broker_and_its_policy(tmp_path: Path) -> None:
    """The same scenario with a broker that refuses enrolment publishes: no device renews,
    each keeps asking, and every certificate runs out: the exchange has no other path."""
    store = SqliteStore.create(tmp_path / "store.sqlite")
    sim = SimRun(renewal_scenario(300.0), store)
    sim.broker.policy = _NoRenewalTraffic()
    report = build_report(sim.run(), store)
    store.close()
    renewals = report["security"]["renewals"]
    assert renewals["renewed"] == 0 and renewals["expired_connects_refused"] > 0
    c = report["counters"]
    assert c["platform.renewal_retried"] > 0 and c["broker.denied"] == c["prov.rejected"] > 0
    assert "events.rejected" not in c  # enrolment traffic is not counted as device events
    assert sim.platform is not None and not any(
        a.event == "renew" for a in sim.platform.platform.inventory.audit())


def test_without_renewal_an_expired_certificate_is_refused_on_reconnect(tmp_path: Path
                                                                       ) -> None:
    _, report, db = run(tmp_path, renewal_scenario(0.0))
    renewals = report["security"]["renewals"]
    assert renewals["renewed"] == 0 and renewals["expired_connects_refused"] > 0
    assert report["devices_by_state"] == {"reconnecting": 4, "streaming": 4}  # the outage half
    reasons = {json.loads(d)["why"] for (d,) in db.execute(
        "SELECT detail FROM notices WHERE name = 'connect_denied'")}
    assert reasons == {"certificate expired"}


def test_the_sim_broker_refuses_an_expired_certificate() -> None:
    broker = SimBroker(BrokerPolicy())
    client = _endpoint(Ueid.from_random(bytes(16)).hex, 5)
    client.expires = 100.0
    broker.connect(client, 100.0)
    with pytest.raises(AccessDenied, match="expired"):
        broker.connect(client, 100.5)


def test_a_renewal_window_not_shorter_than_the_validity_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("name: rev\nduration: 10m\nfleet:\n  identity: qdid\n"
                    "  certificate_validity: 1h\n  renew_window: 2h\n"
                    "  devices: {ecg_patch: 3}\n")
    with pytest.raises(ScenarioError) as caught:
        load(path)
    (line,) = caught.value.problems
    assert line.startswith(f"{path}:6: fleet.renew_window: must be >= 0 and shorter"), line
