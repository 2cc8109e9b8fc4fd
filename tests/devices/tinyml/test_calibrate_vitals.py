"""Threshold selection for the vitals models: the scoring helpers on hand-worked cases."""

from __future__ import annotations

import numpy as np

from devices.physiology import CohortParams, SweatSource
from devices.tinyml.calibrate_vitals import Operating, choose, evaluate, persistent
from devices.tinyml.vitals import THRESHOLDS, VitalsModel
from twin.core.seeds import SeedTree


def test_persistence_needs_consecutive_windows_of_the_same_device() -> None:
    raw = np.array([[1, 1], [1, 0], [0, 1], [1, 1], [1, 1]], bool)  # rows: time
    assert persistent(raw, 1).tolist() == raw.tolist()
    assert persistent(raw, 2).tolist() == [[0, 0], [1, 0], [0, 0], [0, 1], [1, 1]]


def test_episode_sensitivity_allows_one_window_after_and_ppv_is_over_windows() -> None:
    label = np.array([[0], [2], [2], [0], [0], [1], [0]])  # two episodes on one device
    flag = np.array([[1], [0], [0], [1], [0], [0], [0]], bool)  # row 3: just after episode 1
    se, ppv = evaluate(flag, label)
    assert (se, ppv) == (0.5, 0.0)  # it catches episode 1 but is not a true window itself
    se, ppv = evaluate(np.array([[0], [0], [1], [0], [0], [1], [0]], bool), label)
    assert (se, ppv) == (1.0, 1.0)


def test_choose_prefers_the_better_f1_then_less_delay() -> None:
    label = np.array([[0], [1], [1], [0]])
    score = np.array([[0.6], [0.9], [0.9], [0.55]], np.float32)
    best = choose(score, label)[0]
    assert (best.persistence, best.sensitivity, best.ppv) == (1, 1.0, 1.0)
    assert best.threshold > 0.6
    assert Operating(0.5, 1, 0.0, 0.0).f1 == 0.0


def test_the_shipped_models_flag_at_their_own_threshold() -> None:
    batch = SweatSource(32, CohortParams(episode_rate=20.0), SeedTree(6)).window(
        10.0, np.arange(32))
    model = VitalsModel.load("sweat")
    result = model.score(model.features(batch))
    assert (result.flag == (result.score >= THRESHOLDS["sweat"])).all()
