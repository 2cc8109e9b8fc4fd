"""Simulated time as calendar time, for certificates, CRLs and tokens.

Cores keep time as float seconds since the start of the run (``now``). X.509 needs calendar
dates, so a run is anchored at :data:`RUN_EPOCH`; the same ``now`` always maps to the same
instant, which keeps certificates (and so whole runs) deterministic for a seed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

RUN_EPOCH = datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
"""Simulated time zero: a Monday, 08:00 UTC (the physiology sources' default start hour)."""


def to_datetime(now: float) -> datetime:
    """The calendar instant of simulated time ``now`` (seconds since the run started)."""
    return RUN_EPOCH + timedelta(seconds=now)


def to_seconds(when: datetime) -> float:
    """Simulated seconds of a calendar instant (inverse of :func:`to_datetime`)."""
    return (when - RUN_EPOCH).total_seconds()
