"""The named defence switches a scenario can turn off (all are on by default).

Each entry names the PSA goal(s) it serves and where the check lives, so a teacher can turn one
off and show which attack then gets through. Later issues add their defences here (mutual TLS,
CRL checks, secure boot, signed firmware, anti-rollback, rate limits, ...); only defences
that have a real check behind them are listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Defence:
    """One switchable defence."""

    name: str
    psa_goals: tuple[int, ...]
    where: str
    summary: str


DEFENCES: Mapping[str, Defence] = {
    d.name: d
    for d in (
        Defence("topic_acl", (1, 8), "broker.policy",
                "a device may publish only to its own topics and read only its own commands"),
        Defence("replay_window", (8, 10), "cloud.sequence",
                "the cloud drops duplicated and replayed sequence numbers"),
        Defence("auto_quarantine", (2,), "cloud.monitor",
                "the security monitor quarantines a device that impersonates or abuses topics"),
    )
}
