"""A staged OTA campaign in the sim: signed, encrypted, per-device wrapped, canary first."""

from __future__ import annotations

import pytest

from twin.scenario.schema import Ota


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


def test_a_broken_release_stops_at_the_canary(run_small, small):
    out = run_small(with_ota(small, 200, faulty=True))
    campaigns = out.report["platform"]["ota"]
    assert all(c["state"] == "paused" for c in campaigns)
    offered = sum(c["offered"] for c in campaigns)
    assert offered == sum(c["reverted"] for c in campaigns) <= 0.1 * 200
    assert out.report["devices_by_state"] == {"streaming": 200}  # reverted, still running
