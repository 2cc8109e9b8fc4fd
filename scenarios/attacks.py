"""The registry of attack plug-ins a scenario's ``attacks[].name`` may name.

Empty for now: each attack issue adds its plug-in here. Every entry states which PSA
Certified security goals the attack tests, the defence (a key of ``defences:`` in a scenario)
that stops it, and a one-line summary for ``twin scenarios`` and the dashboard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ["ATTACKS", "AttackInfo", "known_attacks"]


@dataclass(frozen=True)
class AttackInfo:
    """What an attack plug-in is about.

    Attributes:
        name: the name a scenario uses in ``attacks[].name``.
        psa_goals: PSA Certified security goal numbers (1..10) the attack tests.
        defence: the defence name that stops it (switchable in ``defences:``).
        summary: one line saying what the attacker does.
    """

    name: str
    psa_goals: tuple[int, ...]
    defence: str
    summary: str


_REGISTRY: dict[str, AttackInfo] = {}

ATTACKS: Mapping[str, AttackInfo] = MappingProxyType(_REGISTRY)
"""Read-only view of the registered attacks, by name."""


def known_attacks() -> tuple[str, ...]:
    """Return the registered attack names, sorted (for ``load_scenario(known_attacks=...)``)."""
    return tuple(sorted(ATTACKS))
