"""The vitals models on synthetic BP and sweat windows."""

from __future__ import annotations

import numpy as np
import pytest

from devices.physiology import BpSource, CohortParams, SweatSource
from devices.tinyml.errors import InputError, ModelError
from devices.tinyml.vitals import EPISODES, VitalsModel
from twin.core.seeds import SeedTree


def test_saturated_sweat_sensor_is_flagged() -> None:
    n = 64
    src = SweatSource(n, CohortParams(episode_rate=0.0), SeedTree(2))
    idx = np.arange(n)
    src.window(10.0, idx)
    src.episodes.inject(idx[: n // 2], "sensor_saturation", 15.0, 600.0, 0.8)
    batch = src.window(30.0, idx)
    model = VitalsModel.load("sweat")
    result = model.score(model.features(batch))
    assert result.flag[: n // 2].mean() >= 0.9
    assert result.flag[n // 2:].mean() <= 0.2
    assert set(result.kind[: n // 2]) <= set(EPISODES["sweat"])


def test_hypertensive_urgency_is_flagged() -> None:
    n = 64
    src = BpSource(n, CohortParams(episode_rate=0.0), SeedTree(4))
    idx = np.arange(n)
    src.episodes.inject(idx[: n // 2], "hypertensive_urgency", 0.0, 7200.0, 0.8)
    for k in range(1, 200):  # the pressure ramps up over 15 min
        batch = src.window(10.0 * k, idx)
    model = VitalsModel.load("bp")
    result = model.score(model.features(batch))
    assert result.score[: n // 2].mean() > result.score[n // 2:].mean()
    assert result.flag[: n // 2].mean() >= 0.8


def test_unknown_kind_and_bad_features_are_refused() -> None:
    with pytest.raises(ModelError, match="no vitals model"):
        VitalsModel.load("glucose")
    with pytest.raises(InputError):
        VitalsModel.load("bp").score(np.zeros((3, 4), np.float32))
