"""The security monitor: rules fire on real refusals, once per window, and not on benign noise."""

from __future__ import annotations

from cloud.monitor import (
    QuarantineRequest,
    SecurityAlert,
    SecurityMonitor,
    Signal,
    signal_from_notice,
)
from twin.core.events import Notice
from twin.core.identity import Ueid
from twin.core.topics import telemetry

DEVICE = Ueid.from_random(bytes(range(16))).hex


def alerts(out):
    return [o for o in out if isinstance(o, SecurityAlert)]


def test_one_impersonation_is_critical_but_never_quarantines_the_topic_owner():
    monitor = SecurityMonitor()
    out = monitor.observe(Signal(10.0, DEVICE, "identity_mismatch"))
    assert [a.rule for a in alerts(out)] == ["impersonation"]
    assert alerts(out)[0].severity == "critical"
    # The topic's owner is the victim: quarantining it would hand attackers a DoS.
    assert not any(isinstance(o, QuarantineRequest) for o in out)


def test_topic_abuse_quarantines_the_authenticated_publisher():
    monitor = SecurityMonitor()
    out = [o for t in (0.0, 1.0, 2.0) for o in monitor.observe(Signal(t, DEVICE, "acl_denied"))]
    assert [q.device for q in out if isinstance(q, QuarantineRequest)] == [DEVICE]


def test_topic_abuse_needs_three_denials_within_a_minute():
    monitor = SecurityMonitor()
    assert monitor.observe(Signal(0.0, DEVICE, "acl_denied")) == []
    assert monitor.observe(Signal(70.0, DEVICE, "acl_denied")) == []  # the first has expired
    assert monitor.observe(Signal(80.0, DEVICE, "acl_denied")) == []
    out = monitor.observe(Signal(90.0, DEVICE, "acl_denied"))
    assert [a.rule for a in alerts(out)] == ["topic_abuse"]
    assert alerts(out)[0].count == 3


def test_an_alert_is_raised_once_per_window_not_per_signal():
    monitor = SecurityMonitor()
    raised = [a for t in range(20) for a in alerts(monitor.observe(Signal(float(t), DEVICE,
                                                                          "duplicate")))]
    assert len(raised) == 1
    later = alerts(monitor.observe(Signal(100.0, DEVICE, "duplicate")))
    assert later == []  # the window emptied: one duplicate is QoS 1 noise again


def test_a_single_qos1_duplicate_is_not_an_alert():
    assert SecurityMonitor().observe(Signal(5.0, DEVICE, "duplicate")) == []


def test_quarantine_is_requested_once_and_only_when_enabled():
    def abuse(monitor: SecurityMonitor, start: float) -> list[object]:
        return [o for t in range(3) for o in monitor.observe(Signal(start + t, DEVICE,
                                                                    "acl_denied"))]

    monitor = SecurityMonitor()
    both = abuse(monitor, 0.0) + abuse(monitor, 200.0)
    assert sum(isinstance(o, QuarantineRequest) for o in both) == 1
    assert not any(isinstance(o, QuarantineRequest)
                   for o in abuse(SecurityMonitor(auto_quarantine=False), 0.0))


def test_notices_map_to_signals():
    t = 3.0
    assert signal_from_notice(Notice("broker", "publish_denied", {"who": DEVICE}), t) == \
        Signal(t, DEVICE, "acl_denied")
    rejected = Notice("cloud", "ingest_rejected",
                      {"topic": telemetry("ward-7", DEVICE), "reason": "identity_mismatch"})
    assert signal_from_notice(rejected, t) == Signal(t, DEVICE, "identity_mismatch")
    assert signal_from_notice(Notice("cloud", "sequence_refused",
                                     {"device": DEVICE, "reason": "too_old"}), t) == \
        Signal(t, DEVICE, "too_old")
    assert signal_from_notice(Notice(DEVICE, "state", {"from": "a", "to": "b"}), t) is None
    garbage = Notice("cloud", "ingest_rejected", {"topic": "x/y", "reason": "decode"})
    assert signal_from_notice(garbage, t) == Signal(t, "unknown", "malformed")


def test_repeated_refused_enrolments_raise_an_alert():
    monitor = SecurityMonitor()
    notice = Notice("platform", "enrol_refused", {"chip": DEVICE, "reason": "attestation"})
    out = [o for t in (0.0, 10.0, 20.0)
           for o in monitor.observe(signal_from_notice(notice, t))]  # type: ignore[arg-type]
    assert [a.rule for a in alerts(out)] == ["refused_enrolments"]


def test_screen_reads_only_security_notices_among_a_cores_effects():
    from twin.core.events import Count

    monitor = SecurityMonitor()
    effects = [Count("telemetry.rejected"), Notice(DEVICE, "state", {"from": "a", "to": "b"}),
               Notice("cloud", "ingest_rejected",
                      {"topic": telemetry("ward-7", DEVICE), "reason": "identity_mismatch"})]
    alerts_, requests = monitor.screen(effects, 5.0)
    assert [a.rule for a in alerts_] == ["impersonation"] and requests == []
    abuse = [Notice("broker", "publish_denied", {"who": DEVICE})] * 3
    alerts_, requests = monitor.screen(abuse, 6.0)
    assert [a.rule for a in alerts_] == ["topic_abuse"]
    assert [r.device for r in requests] == [DEVICE]


def test_a_device_the_platform_revoked_raises_one_alert_then_its_refusals_are_counted():
    other = Ueid.from_random(bytes(range(1, 17))).hex
    monitor = SecurityMonitor()
    monitor.revoked([DEVICE])
    raised: dict[str, int] = {DEVICE: 0, other: 0}
    for t in range(0, 3600, 60):  # both keep reconnecting every minute for an hour
        for subject in (DEVICE, other):
            out = monitor.observe(Signal(float(t), subject, "connect_denied"))
            raised[subject] += len(alerts(out))
    # The revoked device: one alert, then only counted; the stranger is no expected
    # refusal, and alerts again every window (the rule as it was).
    assert raised == {DEVICE: 1, other: 3600 // 300}
    assert monitor.expected == {"connect_denied": 60}
