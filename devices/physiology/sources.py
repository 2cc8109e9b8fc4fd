"""One fleet-facing source per device kind, behind one constructor."""

from __future__ import annotations

from typing import Any

from devices.physiology.bp import BP_EPISODES, BpSource
from devices.physiology.cohort import CohortParams
from devices.physiology.ecg import ECG_EPISODES, EcgSource
from devices.physiology.replay import WfdbReplay
from devices.physiology.sweat import SWEAT_EPISODES, SweatSource
from twin.core.messages import Kind
from twin.core.seeds import SeedTree

Source = EcgSource | BpSource | SweatSource | WfdbReplay
"""Anything with ``window(t_end, idx) -> SignalBatch`` for one kind."""
SOURCES: dict[Kind, type[EcgSource] | type[BpSource] | type[SweatSource]] = {
    Kind.ECG_PATCH: EcgSource, Kind.BP_CUFF: BpSource, Kind.SWEAT_PATCH: SweatSource,
}
DEFAULT_FS = {Kind.ECG_PATCH: 250.0, Kind.BP_CUFF: 25.0, Kind.SWEAT_PATCH: 1.0}
"""Default waveform rate of each kind (Hz)."""


def make_source(kind: Kind, n_devices: int, cohort: CohortParams, seeds: SeedTree,
                window_s: float = 10.0, start_hour: float = 8.0, **options: Any) -> Source:
    """Build the source of a kind (``options`` go to its constructor, e.g. ``fs``, ``rhythm``).

    Args:
        kind: the device kind.
        n_devices: devices of that kind.
        cohort: the patients' population.
        seeds: the run's seed tree.
        window_s: window length (s).
        start_hour: clock time of simulated second 0.
        **options: kind-specific keyword options.

    Returns:
        The source; ``source.window(t_end, idx)`` gives a ``SignalBatch``.
    """
    cls = SOURCES[kind]
    options.setdefault("fs", DEFAULT_FS[kind])
    return cls(n_devices, cohort, seeds, window_s=window_s, start_hour=start_hour, **options)


def episode_names() -> tuple[str, ...]:
    """Every clinical episode kind the sources can inject, sorted (for scenario validation)."""
    return tuple(sorted(s.name for s in (*ECG_EPISODES, *BP_EPISODES, *SWEAT_EPISODES)))
