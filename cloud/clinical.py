"""Clinical scoring: did the devices' on-device models catch the episodes that happened?

The physiology models record every episode's ground truth (device, kind, start, end); the
devices send a flag with each window their model judged abnormal. An episode counts as
*detected on the device* when at least one flagged window of the same device overlaps it
(a window ``[t - w, t)`` overlaps ``[start, end)`` when ``t > start`` and ``t - w < end``);
its detection latency is the end of the first such window minus the episode's start, the
earliest moment the device could have said so. Positive predictivity is over windows: the
share of flagged windows that overlap an episode of their device (AAMI EC57 scores beats and
episodes the same two ways). Only episode kinds some on-device model is trained to see are
scored, and the report names them, so an unscored kind never dilutes the figures.

The cloud's detections are scored the same way, from the strips it confirmed: a confirmed
strip stands for its window, and its latency runs to the moment the cloud received it (the
device's latency plus the network's), when a clinician could first be told.
"""

from __future__ import annotations

import bisect
import statistics
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Episode:
    """One ground-truth episode."""

    device: str
    kind: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Detection:
    """The scores of a run's on-device detection."""

    scored_kinds: tuple[str, ...]
    episodes: int
    detected: int
    flagged_windows: int
    true_windows: int
    latencies: tuple[float, ...]
    by_kind: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """Scored kind -> (episodes, detected)."""

    @property
    def sensitivity(self) -> float | None:
        """Detected episodes / scored episodes (None when there was nothing to detect)."""
        return self.detected / self.episodes if self.episodes else None

    @property
    def ppv(self) -> float | None:
        """Flagged windows overlapping an episode / flagged windows (None when none)."""
        return self.true_windows / self.flagged_windows if self.flagged_windows else None

    @property
    def median_latency_s(self) -> float | None:
        """Median detection latency of the detected episodes, seconds."""
        return statistics.median(self.latencies) if self.latencies else None


def score_detections(episodes: Iterable[Episode],
                     flagged: Iterable[tuple[str, float] | tuple[str, float, float]],
                     window_s: float, kinds: Collection[str]) -> Detection:
    """Score flagged windows against ground truth.

    Args:
        episodes: every ground-truth episode of the run.
        flagged: ``(device, window end)`` of every window a device flagged, or
            ``(device, window end, known at)`` when the detection was known later than the
            window's end (the cloud's confirmations); latency runs to that moment.
        window_s: the window length.
        kinds: the episode kinds the on-device models are meant to detect.

    Returns:
        The scores.
    """
    scored = [e for e in episodes if e.kind in kinds]
    by_device: dict[str, list[tuple[float, float]]] = {}
    for item in flagged:
        by_device.setdefault(item[0], []).append((item[1], item[-1]))
    for pairs in by_device.values():
        pairs.sort()
    latencies = []
    found: Counter[str] = Counter()
    for e in scored:
        pairs = by_device.get(e.device, [])
        i = bisect.bisect_right(pairs, (e.start, float("inf")))  # first window ending after
        if i < len(pairs) and pairs[i][0] - window_s < e.end:
            latencies.append(pairs[i][1] - e.start)
            found[e.kind] += 1
    spans: dict[str, list[tuple[float, float]]] = {}
    for e in scored:
        spans.setdefault(e.device, []).append((e.start, e.end))
    true_windows = sum(
        1 for device, pairs in by_device.items() for t, _ in pairs
        if any(t > s and t - window_s < end for s, end in spans.get(device, ())))
    return Detection(tuple(sorted(kinds)), len(scored), len(latencies),
                     sum(len(t) for t in by_device.values()), true_windows, tuple(latencies),
                     {k: (n, found[k]) for k, n in sorted(Counter(e.kind for e in scored).items())})
