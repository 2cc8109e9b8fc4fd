"""Window events for one phase group: the values and the on-device model's verdict.

Shared by the sim and the live driver's steppers (one batched TinyML inference per kind and
phase group, ARCHITECTURE.md section 2), so a live window carries exactly the sim's values,
score and flags; the parity test (``tests/twin/live``) holds the two drivers to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cloud.store import EpisodeRow, RunStore, StripRow
from devices.tinyml.vitals import VitalsModel
from twin.core.events import WindowReady
from twin.core.messages import KIND_METRICS, Kind
from twin.sim.fleet import Group


def load_models() -> dict[Kind, VitalsModel]:
    """The on-device models of the vitals kinds. The ECG model is not run per window yet: its
    beat features cost 252 us a window (issue 6), too much for a 10,000-device fleet."""
    return {Kind.BP_CUFF: VitalsModel.load("bp"), Kind.SWEAT_PATCH: VitalsModel.load("sweat")}


def window_events(kind: Kind, batch: Any, models: dict[Kind, VitalsModel]
                  ) -> list[WindowReady]:
    """Each device's ``WindowReady`` for one group's batch, in the batch's row order.

    Args:
        kind: the group's device kind.
        batch: the source's ``SignalBatch`` for this window.
        models: the on-device models by kind (kinds without one send values only).

    Returns:
        One event per row of ``batch.values``.
    """
    names = KIND_METRICS[kind]
    rows = batch.values.tolist()
    model = models.get(kind)
    if model is None:
        return [WindowReady(dict(zip(names, row, strict=True))) for row in rows]
    result = model.score(model.features(batch))
    return [WindowReady(dict(zip(names, row, strict=True)), score,
                        (str(label),) if flagged else ())
            for row, score, flagged, label in zip(rows, result.score.tolist(),
                                                  result.flag.tolist(), result.kind,
                                                  strict=True)]


def record_episodes(store: RunStore, group: Group, batch: Any, name_of: Callable[[int], str],
                    *, strips: bool) -> int:
    """Store the ground truth of the episodes that started in this window, and (``strips``)
    the raw window of each device concerned, as the sim driver does.

    Args:
        store: the run store.
        group: the phase group whose batch this is.
        batch: its ``SignalBatch`` (with at least one episode).
        name_of: the device identity at a fleet index.
        strips: whether to store raw strips.

    Returns:
        How many episodes were recorded.
    """
    store.add_episodes(
        EpisodeRow(name_of(group.offset + int(e["device"])), str(e["kind"]),
                   float(e["start_s"]), float(e["end_s"])) for e in batch.episodes)
    if strips:
        rows = sorted({int(r) for r in np.searchsorted(group.local, batch.episodes["device"])})
        beats = batch.beats
        store.add_strips(
            StripRow(name_of(group.endpoints[row].index), float(batch.t_end), float(batch.fs),
                     batch.units, batch.signal[row].astype("<f4").tobytes(),
                     tuple((int(b["sample"]), str(b["label"]))
                           for b in beats[beats["row"] == row]) if len(beats) else ())
            for row in rows)
    return len(batch.episodes)
