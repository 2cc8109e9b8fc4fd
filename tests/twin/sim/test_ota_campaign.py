"""A staged OTA campaign in the sim: signed, encrypted, per-device wrapped, canary first."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.store import SqliteStore
from twin.core.messages import Kind
from twin.scenario.schema import Ota
from twin.sim.driver import SimRun


def with_ota(small, devices: int, **ota):
    sc = small(devices=devices, duration=900)
    return sc.model_copy(update={"ota": Ota(at=120.0, **ota)})


@pytest.mark.slow
def test_a_campaign_over_1000_devices_reaches_everyone_and_bricks_none(run_small, small):
    out = run_small(with_ota(small, 1000))
    campaigns = out.report["platform"]["ota"]
    assert sum(c["targets"] for c in campaigns) == 1000
    assert all(c["state"] == "completed" for c in campaigns)
    assert sum(c["installed"] for c in campaigns) == 1000
    assert out.report["devices_by_state"] == {"streaming": 1000}  # nobody stuck or bricked
    t = out.report["telemetry"]
    assert t["lost"] == 0 and t["pending"] == 0  # devices buffered while they rebooted
    assert t["stored"] == t["published"]


def test_an_update_reboot_clears_what_the_ecg_patches_kept_in_ram(small, tmp_path):
    """The installed image boots afresh: each ECG patch loses its kept reference beats
    (ADR 0017) and relearns them from its next conducted windows."""
    sc = with_ota(small, 60)
    store = SqliteStore.create(tmp_path / "store.sqlite")
    run = SimRun(sc, store)
    result = run.run()
    store.close()
    ecg = [ep for ep in run.fleet.endpoints if ep.core.kind is Kind.ECG_PATCH]
    assert ecg and all(ep.core.boots == 2 for ep in ecg)  # power-on, then the update
    lost = result.counters["ecg.references_lost_in_reboots"]
    assert 0.5 * len(ecg) <= lost <= len(ecg)  # those that had kept one by then
    kept = [m for phase in run._memory for m in phase if m is not None]
    assert all((m.boots == 2).all() for m in kept)
    assert sum(int(np.isfinite(m.reference[:, -1, 0]).sum()) for m in kept) >= lost // 2


def test_a_broken_release_stops_at_the_canary(run_small, small):
    out = run_small(with_ota(small, 200, faulty=True))
    campaigns = out.report["platform"]["ota"]
    assert all(c["state"] == "paused" for c in campaigns)
    offered = sum(c["offered"] for c in campaigns)
    assert offered == sum(c["reverted"] for c in campaigns) <= 0.1 * 200
    assert out.report["devices_by_state"] == {"streaming": 200}  # reverted, still running
