"""Scoring on-device detection against ground truth, on cases worked out by hand."""

from __future__ import annotations

from cloud.clinical import Episode, score_detections

W = 10.0


def test_an_episode_is_detected_by_the_first_overlapping_flagged_window():
    episodes = [Episode("a", "dehydration", 95.0, 200.0)]
    # windows end at 90 (covers 80-90: before), 110 (100-110: overlaps), 120
    result = score_detections(episodes, [("a", 90.0), ("a", 110.0), ("a", 120.0)], W,
                              {"dehydration"})
    assert (result.episodes, result.detected) == (1, 1)
    assert result.latencies == (15.0,)  # the window ending at 110, minus the start at 95
    assert result.flagged_windows == 3 and result.true_windows == 2
    assert result.ppv == 2 / 3 and result.sensitivity == 1.0


def test_a_window_ending_exactly_at_the_start_does_not_overlap():
    result = score_detections([Episode("a", "white_coat", 100.0, 150.0)], [("a", 100.0)], W,
                              {"white_coat"})
    assert result.detected == 0 and result.true_windows == 0 and result.sensitivity == 0.0


def test_another_devices_flag_does_not_detect():
    result = score_detections([Episode("a", "white_coat", 0.0, 50.0)], [("b", 20.0)], W,
                              {"white_coat"})
    assert result.detected == 0 and result.ppv == 0.0


def test_unscored_kinds_are_left_out_and_empty_runs_give_none():
    result = score_detections([Episode("a", "af", 0.0, 50.0)], [], W, {"white_coat"})
    assert result.episodes == 0
    assert result.sensitivity is None and result.ppv is None and result.median_latency_s is None


def test_detections_are_counted_per_scored_kind():
    episodes = [Episode("a", "af", 0.0, 50.0), Episode("a", "bigeminy", 100.0, 130.0),
                Episode("b", "af", 0.0, 30.0), Episode("b", "brady", 0.0, 30.0)]
    result = score_detections(episodes, [("a", 10.0), ("b", 200.0)], W, {"af", "bigeminy"})
    assert dict(result.by_kind) == {"af": (2, 1), "bigeminy": (1, 0)}
