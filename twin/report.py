"""The run report: ``report.json`` (schema version 1, ARCHITECTURE.md section 4) and
``report.md`` (a human summary), built from a :class:`~twin.sim.driver.RunResult` and the
run store. Fields later issues fill (clinical detection, attacks, the PSA scorecard's
evidence) are present with null or "not assessed" values, so readers can rely on the keys.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from cloud.clinical import Detection, Episode, score_detections
from cloud.store import RunStore
from devices.tinyml.ecg import DETECTED_EPISODES as ECG_DETECTED_EPISODES
from devices.tinyml.vitals import EPISODES as VITALS_EPISODES
from twin.core.defences import DEFENCES
from twin.core.messages import Kind
from twin.core.psa import PSA_GOALS
from twin.sim.driver import RunResult

REPORT_SCHEMA = 1
DEVICE_DETECTED_EPISODES = (*ECG_DETECTED_EPISODES, *(
    name for kind in ("bp", "sweat") for name in VITALS_EPISODES[kind][1:]))
"""The episode kinds an on-device model is trained to flag (ECG beats and AF, and the vitals
models' episodes)."""
WALL_CLOCK_FIELDS = ("wall_seconds", "realtime_factor")
"""Fields that differ between two runs of the same scenario and seed."""


def build_report(result: RunResult, store: RunStore) -> dict[str, Any]:
    """Assemble the report dictionary.

    Args:
        result: what the driver measured.
        store: the run's store (flushed), read for stored rows and alerts.

    Returns:
        The report, ready for ``json.dumps``.
    """
    sc = result.scenario
    c = result.counters
    alerts = Counter(a.rule for a in store.alerts() if a.state == "raised")
    episodes = store.episodes()
    detection = score_detections(episodes, store.flagged_windows(), sc.window,
                                 DEVICE_DETECTED_EPISODES)
    cloud = score_detections(episodes, store.confirmed_strips(), sc.window,
                             ECG_DETECTED_EPISODES)
    security_alerts = {k.removeprefix("security.alerts."): v for k, v in sorted(c.items())
                       if k.startswith("security.alerts.")}
    return {
        "schema": REPORT_SCHEMA,
        "scenario": sc.name,
        "seed": sc.seed,
        "mode": sc.mode,
        "devices": result.devices,
        "devices_by_kind": {k: v for k, v in sc.fleet.devices.items() if v},
        "sim_seconds": result.sim_seconds,
        "wall_seconds": round(result.wall_seconds, 3),
        "realtime_factor": round(result.sim_seconds / max(result.wall_seconds, 1e-9), 1),
        "telemetry": {
            "published": c.get("telemetry.published", 0),
            "delivered": c.get("telemetry.delivered", 0),
            "stored": store.count("telemetry"),
            "rejected": c.get("telemetry.rejected", 0),
            "lost": c.get("telemetry.lost", 0),
            "pending": result.pending,
            "duplicates": c.get("telemetry.duplicates", 0) + c.get("telemetry.too_old", 0),
            "gaps": c.get("telemetry.gaps", 0),
        },
        "clinical": {
            "episodes": c.get("clinical.episodes", 0),
            "episodes_by_kind": store.episodes_by_kind(),
            "detected_on_device": detection.detected,
            "detected_in_cloud": cloud.detected,
            "sensitivity": _round(detection.sensitivity),
            "ppv": _round(detection.ppv),
            "median_detection_latency_s": _round(detection.median_latency_s),
            "scored_episodes": detection.episodes,
            "scored_episode_kinds": list(detection.scored_kinds),
            "flagged_windows": detection.flagged_windows,
            "detected_by_kind": {
                k: {"episodes": n, "detected_on_device": d,
                    **({"detected_in_cloud": cloud.by_kind[k][1]} if k in cloud.by_kind else {})}
                for k, (n, d) in detection.by_kind.items()},
            "ecg": _ecg_section(episodes, store, sc.window, cloud, c),
            "alerts": dict(sorted(alerts.items())),
        },
        "security": {
            "attacks": [],
            "alerts": security_alerts,
            "defences": {name: sc.defence_on(name) for name in DEFENCES},
            "identities": "qdid" if sc.mode == "live" else sc.fleet.identity,
            "revocations": _revocations(result),
            "renewals": _renewals(c),
            "psa_scorecard": {
                str(n): {"name": name, "status": "not assessed",
                         "evidence": "no attack in this run exercises this goal"}
                for n, name in PSA_GOALS.items()
            },
        },
        "platform": {"ota": result.ota},
        "devices_by_state": result.states,
        "counters": dict(sorted(c.items())),
    }


def _revocations(result: RunResult) -> dict[str, Any]:
    """Revocations through the platform and what the broker did about them."""
    c, platform = result.counters, result.platform
    return {"events": platform.get("revocations", 0), "devices": platform.get("revoked", 0),
            "crl_number": platform.get("crl_number"),
            "sessions_dropped": c.get("broker.sessions_dropped", 0),
            "connects_refused": c.get("broker.connect_denied", 0),
            "inventory": platform.get("inventory", {})}


def _renewals(counters: dict[str, int]) -> dict[str, int]:
    """Certificate renewals before expiry, and what expiry cost devices that did not renew."""
    return {"renewed": counters.get("platform.renewed", 0),
            "refused": counters.get("platform.renewal_refused", 0),
            "expired_connects_refused": counters.get("broker.connect_denied.expired", 0)}


def _scores(d: Detection) -> dict[str, Any]:
    return {"detected": d.detected, "sensitivity": _round(d.sensitivity), "ppv": _round(d.ppv),
            "median_detection_latency_s": _round(d.median_latency_s)}


def _ecg_section(episodes: list[Episode], store: RunStore, window_s: float, cloud: Detection,
                 counters: dict[str, int]) -> dict[str, Any]:
    """ECG episodes scored on the device (flagged windows of ECG patches) and in the cloud
    (strips it confirmed), side by side over the same episodes. The cloud's PPV is over the
    strips it confirmed, its latency runs to when it received them."""
    device = score_detections(episodes, store.flagged_windows(Kind.ECG_PATCH.value), window_s,
                              ECG_DETECTED_EPISODES)
    return {"scored_episodes": cloud.episodes,
            "scored_episode_kinds": list(cloud.scored_kinds),
            "on_device": {**_scores(device), "flagged_windows": device.flagged_windows},
            "in_cloud": {**_scores(cloud),
                         "strips_sent": counters.get("strips.sent", 0),
                         "strips_received": counters.get("strips.stored", 0),
                         "strips_confirmed": counters.get("strips.confirmed", 0),
                         "strips_refuted": counters.get("strips.refuted", 0),
                         "strips_unreadable": counters.get("strips.unreadable", 0)}}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out``; returns both paths."""
    json_path = out / "report.json"
    md_path = out / "report.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(render_markdown(report))
    return json_path, md_path


def _table(header: tuple[str, str], rows: list[tuple[str, Any]]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "| --- | ---: |"]
    lines += [f"| {k} | {v:,} |" if isinstance(v, int) else f"| {k} | {v} |" for k, v in rows]
    return lines


def _brokers(brokers: list[dict[str, Any]]) -> list[str]:
    """Live mode: the messages that went through each broker."""
    if not brokers:
        return []
    lines = ["## Brokers", "", "| broker | url | published | acknowledged | delivered | "
             "connections | restarts |", "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {b['kind']} | {b['url']} | {b['published']:,} | {b['acknowledged']:,} | "
              f"{b['delivered']:,} | {b['connections']:,} | {b['restarts']} |" for b in brokers]
    return [*lines, ""]


def render_markdown(report: dict[str, Any]) -> str:
    """The human summary of a report."""
    t = report["telemetry"]
    lines = [
        f"# Run report: {report['scenario']}",
        "",
        f"{report['devices']:,} devices, {report['sim_seconds']:,.0f} s simulated in "
        f"{report['wall_seconds']:,.1f} s ({report['realtime_factor']:,}x real time), "
        f"mode `{report['mode']}`, seed {report['seed']}.",
        "",
        "## Telemetry",
        "",
        *_table(("count", "messages"), list(t.items())),
        "",
        "`stored + rejected + lost + pending` accounts for every published window"
        f" ({t['stored'] + t['rejected'] + t['lost'] + t['pending']:,} of {t['published']:,}).",
        "",
        *_brokers(report.get("brokers", [])),
        "## Clinical episodes (ground truth)",
        "",
    ]
    clinical = report["clinical"]
    episodes = clinical.get("episodes_by_kind") or {}
    lines += _table(("episode", "count"), list(episodes.items())) if episodes else ["None."]
    lines += _detection_lines(clinical)
    lines += ["", "## Threshold alerts raised in the cloud", ""]
    alerts = clinical["alerts"]
    lines += _table(("rule", "alerts"), list(alerts.items())) if alerts else ["None."]
    lines += ["", "## Devices at the end of the run", ""]
    lines += _table(("state", "devices"), list(report["devices_by_state"].items()))
    lines += _security_lines(report)
    return "\n".join(lines)


def _detection_lines(clinical: dict[str, Any]) -> list[str]:
    """Who caught the episodes: the devices' models, and for ECG the cloud's confirmation."""
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f} %"

    lines = ["", "## Detection", "",
             "| scored by | episodes | detected | sensitivity | PPV | median latency (s) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |",
             f"| devices, all kinds | {clinical['scored_episodes']:,} | "
             f"{clinical['detected_on_device']:,} | {pct(clinical['sensitivity'])} | "
             f"{pct(clinical['ppv'])} | {clinical['median_detection_latency_s']} |"]
    ecg = clinical.get("ecg")
    if ecg:
        for who, d in (("ECG patches", ecg["on_device"]), ("cloud, ECG strips", ecg["in_cloud"])):
            lines.append(f"| {who} | {ecg['scored_episodes']:,} | {d['detected']:,} | "
                         f"{pct(d['sensitivity'])} | {pct(d['ppv'])} | "
                         f"{d['median_detection_latency_s']} |")
        cloud = ecg["in_cloud"]
        lines += ["", f"Strips: {cloud['strips_sent']:,} sent, {cloud['strips_received']:,} "
                  f"received, {cloud['strips_confirmed']:,} confirmed, "
                  f"{cloud['strips_refuted']:,} refuted by the cloud."]
    return lines


def _security_lines(report: dict[str, Any]) -> list[str]:
    """The security and platform sections of the summary."""
    security = report["security"]
    attacks = security["attacks"]
    lines = ["", "## Security", "",
             f"{len(attacks)} attack(s) in this run." if attacks else "No attacks in this run.",
             "", "Defences: " + ", ".join(
                 f"{k} {'on' if v else 'OFF'}" for k, v in security["defences"].items()), ""]
    revoked = security.get("revocations") or {}
    if revoked.get("devices"):
        lines += [f"Revoked {revoked['devices']:,} device(s) in {revoked['events']:,} "
                  f"revocation(s) (CRL {revoked['crl_number']}); the broker dropped "
                  f"{revoked['sessions_dropped']:,} session(s) and refused "
                  f"{revoked['connects_refused']:,} reconnect(s).", ""]
    renewals = security.get("renewals") or {}
    if any(renewals.values()):
        lines += [f"Certificates renewed before expiry: {renewals['renewed']:,} "
                  f"({renewals['refused']:,} refused); reconnects refused for an expired "
                  f"certificate: {renewals['expired_connects_refused']:,}.", ""]
    if security.get("alerts"):
        lines += ["Security-monitor alerts:", ""]
        lines += [*_table(("rule", "alerts"), list(security["alerts"].items())), ""]
    for campaign in report.get("platform", {}).get("ota", []):
        lines.append(
            f"OTA {campaign['component']} sequence {campaign['sequence']}: {campaign['state']}, "
            f"{campaign['installed']:,} of {campaign['targets']:,} installed, "
            f"{campaign['reverted']:,} reverted, {campaign['rejected']:,} rejected.")
    return [*lines, ""]
