"""Window events for one phase group: the values, the on-device model's verdict, what the
inference cost the MCU and, when an ECG window is flagged, its strip for the cloud.

Shared by the sim and the live driver's steppers (one batched TinyML inference per kind and
phase group, ARCHITECTURE.md section 2), so a live window carries exactly the sim's values,
score, flags and strips; the parity test (``tests/twin/live``) holds the two drivers to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cloud.store import EpisodeRow, RunStore, StripRow
from devices.tinyml.ecg import ECG_MODEL, EcgModel
from devices.tinyml.energy import count_macs, window_cost
from devices.tinyml.features import SEG_LEN
from devices.tinyml.runtime import TinyModel, model_path
from devices.tinyml.templates import REFERENCE_BEATS
from devices.tinyml.vitals import VitalsModel
from twin.core.events import WindowReady
from twin.core.messages import KIND_METRICS, STRIP_LSB_MV, Kind
from twin.sim.fleet import Fleet, Group

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class OnDeviceModel:
    """A kind's on-device model and what one inference costs the MCU.

    Attributes:
        model: the int8 model (shared by every device of the kind in the process).
        macs, ops: multiply-accumulates and operators of one inference
            (:func:`devices.tinyml.energy.count_macs`).
    """

    model: EcgModel | VitalsModel
    macs: int
    ops: int


def load_models() -> dict[Kind, OnDeviceModel]:
    """The on-device model of every kind: the ECG beat/AF model and the two vitals models
    (each loaded once per process and shared by every device of its kind)."""
    out = {}
    for kind, model, name in ((Kind.ECG_PATCH, EcgModel.load(), ECG_MODEL),
                              (Kind.BP_CUFF, VitalsModel.load("bp"), "vitals_bp"),
                              (Kind.SWEAT_PATCH, VitalsModel.load("sweat"), "vitals_sweat")):
        cost = count_macs(TinyModel.load(model_path(name)))
        out[kind] = OnDeviceModel(model, cost["macs"], cost["ops"])
    return out


def strip_counts(signal: npt.NDArray[np.float32]) -> bytes:
    """One window's samples as the strip's int16 counts of :data:`STRIP_LSB_MV` (clipped)."""
    counts = np.clip(np.rint(signal / STRIP_LSB_MV), -32768, 32767)
    return bytes(counts.astype("<i2").tobytes())


@dataclass(eq=False)
class PatchMemory:
    """What one ECG group's patches keep in RAM from one window to the next: their last
    conducted templates (ADR 0017), NaN until a patch has seen them.

    Attributes:
        reference: ``(devices, REFERENCE_BEATS, SEG_LEN)``, in the group's row order.
        boots: each patch's boot count when its entry was last written.
    """

    reference: FloatArray
    boots: npt.NDArray[np.int64]

    @classmethod
    def empty(cls, devices: int) -> PatchMemory:
        return cls(np.full((devices, REFERENCE_BEATS, SEG_LEN), np.nan, np.float32),
                   np.zeros(devices, np.int64))

    def forget_rebooted(self, boots: Sequence[int]) -> int:
        """Clear the entries of patches that booted since they were written (RAM does not
        survive a reboot: a patch relearns its patient after an update).

        Returns:
            How many patches lost a reference they had.
        """
        now = np.asarray(boots, np.int64)
        gone = now != self.boots
        lost = int(np.isfinite(self.reference[gone, -1, 0]).sum())
        self.reference[gone] = np.nan
        self.boots = now
        return lost


def device_memory(fleet: Fleet) -> tuple[tuple[PatchMemory | None, ...], ...]:
    """A :class:`PatchMemory` per ECG group, laid out like ``fleet.groups`` (``None`` for
    other kinds): the drivers keep it, :func:`window_events` reads and updates it."""
    return tuple(tuple(PatchMemory.empty(len(g.local)) if g.kind is Kind.ECG_PATCH else None
                       for g in phase)
                 for phase in fleet.groups)


def window_events(kind: Kind, batch: Any, models: dict[Kind, OnDeviceModel],
                  memory: PatchMemory | None = None) -> list[WindowReady]:
    """Each device's ``WindowReady`` for one group's batch, in the batch's row order.

    One batched inference gives every row its anomaly score, flag labels and the energy its
    pre-processing and inferences cost on the device's MCU; an ECG row whose flag fired also
    carries its raw window as a strip for the cloud to confirm.

    Args:
        kind: the group's device kind.
        batch: the source's ``SignalBatch`` for this window.
        models: the on-device models by kind (kinds without one send values only).
        memory: the group's entry of :func:`device_memory` (ECG): the patches' reference
            beats before this window, updated in place to what they carry to the next one
            (the driver first clears those of patches that rebooted). Without it every
            window starts afresh, as after a reboot.

    Returns:
        One event per row of ``batch.values``.
    """
    names = KIND_METRICS[kind]
    rows = batch.values.tolist()
    on_device = models.get(kind)
    if on_device is None:
        return [WindowReady(dict(zip(names, row, strict=True))) for row in rows]
    model = on_device.model
    if isinstance(model, EcgModel):
        ecg = model.score(batch.signal, batch.fs,
                          previous=None if memory is None else memory.reference)
        if memory is not None:
            memory.reference[:] = ecg.beats.carried
        # The cost is linear in the beats (one inference each) plus the filters per sample.
        per_beat = window_cost(on_device.macs, on_device.ops, 1, 0).energy_mj
        filters = window_cost(on_device.macs, on_device.ops, 0, batch.signal.shape[1]).energy_mj
        energy = filters + per_beat * np.bincount(ecg.beats.row, minlength=len(rows))
        flagged = set(np.flatnonzero(ecg.flag).tolist())
        return [WindowReady(dict(zip(names, row, strict=True)), score,
                            ecg.labels(r) if r in flagged else (), mj,
                            strip_counts(batch.signal[r]) if r in flagged else b"",
                            float(batch.fs) if r in flagged else 0.0)
                for r, (row, score, mj) in enumerate(zip(rows, ecg.score.tolist(),
                                                         energy.tolist(), strict=True))]
    result = model.score(model.features(batch))
    mj = window_cost(on_device.macs, on_device.ops, 1, 0).energy_mj  # features: ~100 cycles
    return [WindowReady(dict(zip(names, row, strict=True)), score,
                        (str(label),) if flag else (), mj)
            for row, score, flag, label in zip(rows, result.score.tolist(),
                                               result.flag.tolist(), result.kind, strict=True)]


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
