"""The OTA campaign core: canary first, rollout only on a clean canary, pause on failure."""

from __future__ import annotations

import pytest

from cloud.firmware import build_release
from cloud.ota import Campaign, CampaignState
from twin.core.errors import TransitionError
from twin.core.keys import p256_private_key

SIGNING = p256_private_key(b"ota-test", b"signing")
RELEASE = build_release(b"image" * 50, "ecg_patch/app", 2, SIGNING, b"secret")
TARGETS = {f"dev{i:02d}": p256_private_key(b"ota-test", bytes([i])).public_key()
           for i in range(20)}


def test_canary_then_rollout_then_completed():
    campaign = Campaign(RELEASE, TARGETS, canary_fraction=0.1)
    canary = campaign.start()
    assert [o.device for o in canary] == ["dev00", "dev01"]
    assert campaign.state is CampaignState.CANARY
    assert campaign.report("dev00", "installed") == []
    rest = campaign.report("dev01", "installed")
    assert len(rest) == 18 and campaign.state is CampaignState.ROLLOUT
    for offer in rest:
        campaign.report(offer.device, "installed")
    assert campaign.state is CampaignState.COMPLETED
    assert campaign.summary()["installed"] == 20


def test_a_failed_canary_pauses_before_the_fleet_is_touched():
    campaign = Campaign(RELEASE, TARGETS, canary_fraction=0.1)
    campaign.start()
    assert campaign.report("dev00", "reverted") == []
    assert campaign.state is CampaignState.PAUSED
    assert campaign.report("dev01", "installed") == []
    assert len(campaign.offered) == 2


def test_each_offer_wraps_the_key_for_its_own_device():
    campaign = Campaign(RELEASE, TARGETS, canary_fraction=0.1)
    a, b = campaign.start()
    assert a.wrapped_key != b.wrapped_key and a.ciphertext == b.ciphertext


def test_reports_from_devices_not_offered_or_repeated_are_ignored():
    campaign = Campaign(RELEASE, TARGETS, canary_fraction=0.1)
    campaign.start()
    assert campaign.report("dev10", "installed") == []  # not in the canary: a forged report
    assert campaign.report("stranger", "installed") == []
    campaign.report("dev00", "installed")
    campaign.report("dev00", "installed")  # a replayed report counts once
    assert campaign.state is CampaignState.CANARY
    assert campaign.outcomes == {"dev00": "installed"}


def test_a_campaign_starts_once_and_needs_targets():
    campaign = Campaign(RELEASE, TARGETS)
    campaign.start()
    with pytest.raises(TransitionError):
        campaign.start()
    with pytest.raises(ValueError):
        Campaign(RELEASE, {})
