"""Window events of one phase group: scores, flags, strips, the MCU energy per window and
what the patches carry from one window to the next."""

from __future__ import annotations

import numpy as np
import pytest

from devices.physiology import CohortParams, EcgSource, SweatSource
from devices.tinyml.features import extract
from twin.core.messages import STRIP_LSB_MV, Kind
from twin.core.seeds import SeedTree
from twin.sim.windows import PatchMemory, load_models, window_events

M4_J_PER_CYCLE = 3.0 * 3.3e-3 / 64e6  # nRF52840 datasheet figure, devices.tinyml.energy


@pytest.fixture(scope="module")
def models():
    return load_models()


def _ecg_batch(rhythm: str, n: int = 12):
    src = EcgSource(n, CohortParams(), SeedTree(9), rhythm=rhythm)
    src.window(10.0, np.arange(n))
    return src.window(20.0, np.arange(n))


def test_ecg_energy_is_macs_times_energy_per_cycle_per_beat_plus_the_filters(models) -> None:
    batch = _ecg_batch("bigeminy")
    events = window_events(Kind.ECG_PATCH, batch, models)
    m = models[Kind.ECG_PATCH]
    beats = np.bincount(m.model.score(batch.signal, batch.fs).beats.row, minlength=len(events))
    cycles = beats * (m.macs * 1.5 + m.ops * 500.0) + batch.signal.shape[1] * 40.0
    expected_mj = cycles * M4_J_PER_CYCLE * 1e3
    assert [e.inference_mj for e in events] == pytest.approx(expected_mj.tolist(), rel=1e-9)
    assert m.macs > 1_000 and (beats >= 4).all()


def test_vitals_energy_is_one_inference(models) -> None:
    batch = SweatSource(5, CohortParams(), SeedTree(1)).window(10.0, np.arange(5))
    m = models[Kind.SWEAT_PATCH]
    expected = (m.macs * 1.5 + m.ops * 500.0) * M4_J_PER_CYCLE * 1e3
    events = window_events(Kind.SWEAT_PATCH, batch, models)
    assert [e.inference_mj for e in events] == pytest.approx([expected] * 5, rel=1e-9)
    assert all(not e.strip for e in events)


def test_only_flagged_ecg_windows_carry_a_strip_of_their_samples(models) -> None:
    sinus, bigem = _ecg_batch("sinus"), _ecg_batch("bigeminy")
    quiet = window_events(Kind.ECG_PATCH, sinus, models)
    loud = window_events(Kind.ECG_PATCH, bigem, models)
    assert all(bool(e.strip) == bool(e.flags) for e in quiet + loud)
    assert sum(bool(e.flags) for e in loud) >= 10 and sum(bool(e.flags) for e in quiet) <= 1
    row = next(i for i, e in enumerate(loud) if e.strip)
    back = np.frombuffer(loud[row].strip, "<i2") * STRIP_LSB_MV
    assert loud[row].strip_fs == bigem.fs
    assert np.abs(back - bigem.signal[row]).max() <= STRIP_LSB_MV / 2 + 1e-6
    assert "pvc" in loud[row].flags


def test_ecg_patches_carry_their_reference_beat_from_window_to_window(models) -> None:
    src = EcgSource(6, CohortParams(), SeedTree(2), rhythm="sinus")
    idx = np.arange(6)
    memory = PatchMemory.empty(6)
    first = src.window(10.0, idx)
    window_events(Kind.ECG_PATCH, first, models, memory)
    kept = memory.reference
    assert np.array_equal(kept, extract(first.signal, first.fs).carried, equal_nan=True)
    assert np.isfinite(kept[:, -1, 0]).sum() >= 3  # sinus beats show a P wave
    second, before = src.window(20.0, idx), kept.copy()
    events = window_events(Kind.ECG_PATCH, second, models, memory)
    model = models[Kind.ECG_PATCH].model
    want = model.score(second.signal, second.fs, previous=before).score
    assert [e.score for e in events] == pytest.approx(want.tolist())
    kept_one_more = [np.array_equal(kept[r, :-1], before[r, 1:], equal_nan=True)
                     and np.isfinite(kept[r, -1]).all() for r in idx]
    unchanged = [np.array_equal(kept[r], before[r], equal_nan=True) for r in idx]
    assert all(a or b for a, b in zip(kept_one_more, unchanged, strict=True))
    assert sum(kept_one_more) >= 3


def test_a_patch_that_rebooted_has_forgotten_its_reference_beat() -> None:
    memory = PatchMemory.empty(5)
    memory.reference[:4] = 1.0  # the fifth has kept nothing yet
    assert memory.forget_rebooted([0, 1, 0, 2, 1]) == 2
    assert np.isnan(memory.reference[[1, 3, 4]]).all()
    assert (memory.reference[[0, 2]] == 1.0).all()
    assert memory.forget_rebooted([0, 1, 0, 2, 1]) == 0  # no boot since
