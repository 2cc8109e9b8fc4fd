"""The cloud's confirmation of flagged ECG strips: the analyser alone, and strips through ingest.

Synthetic strips come from the twin's physiology (the analyser's thresholds were set from the
literature and checked on these rhythms and on MIT-BIH training patients, see cloud.confirm).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from cloud.confirm import _filters, analyse
from cloud.effects import Reject, StoreStrip
from cloud.errors import StripError
from cloud.ingest import CloudCore
from cloud.store import MemoryStore
from devices.physiology import CohortParams, EcgSource
from twin.core import topics
from twin.core.codec import encode
from twin.core.events import Count, MessageReceived
from twin.core.messages import STRIP_LSB_MV, Kind, Strip, Telemetry
from twin.core.seeds import SeedTree

TENANT = "ward-7"
DEV = "01" + "a1" * 16
OTHER = "01" + "b2" * 16


def _strips(rhythm: str, n: int = 40, seed: int = 5) -> tuple[np.ndarray, float]:
    src = EcgSource(n, CohortParams(), SeedTree(seed), rhythm=rhythm)
    idx = np.arange(n)
    src.window(10.0, idx)
    batch = src.window(20.0, idx)
    return batch.signal, batch.fs


def _confirmed_share(rhythm: str) -> float:
    signal, fs = _strips(rhythm)
    return float(np.mean([analyse(row, fs).confirmed for row in signal]))


def test_normal_sinus_strips_are_refused() -> None:
    assert _confirmed_share("sinus") <= 0.1


@pytest.mark.parametrize("rhythm", ["bigeminy", "af", "vt"])
def test_ventricular_and_af_strips_are_confirmed(rhythm: str) -> None:
    assert _confirmed_share(rhythm) >= 0.9


def test_findings_name_what_was_seen() -> None:
    signal, fs = _strips("bigeminy", n=10)
    assert sum("pvc" in analyse(row, fs).findings for row in signal) >= 8
    signal, fs = _strips("af", n=10)
    assert sum("af" in analyse(row, fs).findings for row in signal) >= 8


@pytest.mark.parametrize("bad", [np.zeros(100), np.full(2500, np.nan), np.zeros((2, 2500))])
def test_unreadable_strips_raise_strip_error(bad: np.ndarray) -> None:
    with pytest.raises(StripError):
        analyse(bad, 250.0)


def test_a_flat_strip_has_no_beats_and_is_refused() -> None:
    verdict = analyse(np.zeros(2500), 250.0)
    assert not verdict.confirmed and verdict.beats == 0


# ---------------------------------------------------------------- through ingest


def _strip(signal: np.ndarray, seq: int = 1, device: str = DEV) -> Strip:
    counts = np.rint(signal / STRIP_LSB_MV).astype("<i2").tobytes()
    return Strip(device, seq, 20.0, 250.0, STRIP_LSB_MV, counts, ("pvc",), 0.9)


def _deliver(core: CloudCore, message: Strip | Telemetry, topic: str) -> list[object]:
    return list(core.handle(MessageReceived(topic, encode(message)), 21.0))


def test_a_verified_strip_is_analysed_and_stored_with_the_verdict() -> None:
    bigeminy, _ = _strips("bigeminy", n=1)
    sinus, _ = _strips("sinus", n=1)
    core, store = CloudCore(TENANT), MemoryStore()
    effects = _deliver(core, _strip(bigeminy[0], 1), topics.strips(TENANT, DEV))
    effects += _deliver(core, _strip(sinus[0], 2), topics.strips(TENANT, DEV))
    verdicts = [e.confirmation for e in effects if isinstance(e, StoreStrip)]
    assert [v.confirmed for v in verdicts if v is not None] == [True, False]
    names = [e.name for e in effects if isinstance(e, Count)]
    assert names.count("strips.stored") == 2
    assert "strips.confirmed" in names and "strips.refuted" in names
    store.apply(effects, 21.0)
    assert store.confirmed_strips() == [(DEV, 20.0, 21.0)]
    (row,) = [r for r in store.tables["device_strips"] if r[9] == 1]
    assert row[6] == _strip(bigeminy[0]).samples and row[7] == "pvc" and "pvc" in row[10]


def test_a_strip_too_short_to_read_is_stored_as_unreadable() -> None:
    short = Strip(DEV, 1, 20.0, 250.0, STRIP_LSB_MV, b"\x00\x00" * 250)
    effects = _deliver(CloudCore(TENANT), short, topics.strips(TENANT, DEV))
    (stored,) = [e for e in effects if isinstance(e, StoreStrip)]
    assert stored.confirmation is None
    assert "strips.unreadable" in [e.name for e in effects if isinstance(e, Count)]


@pytest.mark.parametrize(("message_device", "topic", "reason"), [
    (OTHER, topics.strips(TENANT, DEV), "identity_mismatch"),  # speaking for another device
    (DEV, topics.telemetry(TENANT, DEV), "channel_mismatch"),
])
def test_misplaced_strips_are_rejected(message_device: str, topic: str, reason: str) -> None:
    sinus, _ = _strips("sinus", n=1)
    effects = _deliver(CloudCore(TENANT), _strip(sinus[0], device=message_device), topic)
    assert not [e for e in effects if isinstance(e, StoreStrip)]
    (reject,) = [e for e in effects if isinstance(e, Reject)]
    assert reject.reason == reason


def test_telemetry_on_the_strips_channel_is_rejected() -> None:
    tm = Telemetry(DEV, 1, 10.0, Kind.ECG_PATCH, {"hr_bpm": 70.0}, 0.9)
    effects = _deliver(CloudCore(TENANT), tm, topics.strips(TENANT, DEV))
    (reject,) = [e for e in effects if isinstance(e, Reject)]
    assert reject.reason == "channel_mismatch"
    assert "strips.rejected" in [e.name for e in effects if isinstance(e, Count)]


def test_a_replayed_strip_is_dropped_by_the_sequence_window() -> None:
    sinus, _ = _strips("sinus", n=1)
    core = CloudCore(TENANT)
    _deliver(core, _strip(sinus[0], 7), topics.strips(TENANT, DEV))
    again = _deliver(core, _strip(sinus[0], 7), topics.strips(TENANT, DEV))
    assert not [e for e in again if isinstance(e, StoreStrip)]
    assert "strips.duplicates" in [e.name for e in again if isinstance(e, Count)]


@pytest.mark.parametrize("fs", [100.0, 250.0, 360.0])
def test_the_strip_filters_are_scipys_zero_phase_filters(fs: float) -> None:
    x = np.random.default_rng(7).normal(size=round(10 * fs)).cumsum()
    for zero_phase in _filters(fs):
        ref = sps.sosfiltfilt(zero_phase.sos, x)
        assert np.allclose(zero_phase(x), ref, rtol=0, atol=1e-9 * np.abs(ref).max())
