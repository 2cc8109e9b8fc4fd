"""Sweat electrolytes: published cohort ranges, dehydration, chloride, sensor faults."""

from __future__ import annotations

import numpy as np

from devices.physiology import CohortParams, SweatSource
from devices.physiology.sweat import SENSOR_MAX
from twin.core.seeds import SeedTree


def run(src: SweatSource, seconds: float, n: int) -> list:
    return [src.window(t, np.arange(n)) for t in np.arange(10.0, seconds + 1, 10.0)]


def test_cohort_sodium_in_the_published_range() -> None:
    """Baker 2017: sweat Na 10-100 mmol/L, mean near 40; Cl below Na; K 4-8 (at ~1 L/h)."""
    src = SweatSource(3000, CohortParams(episode_rate=0.0), SeedTree(1), noise=False)
    at_1l = src.patients.na_base  # the model's sodium at a sweat rate of 1 L/h
    assert 33.0 < at_1l.mean() < 47.0
    assert np.all((at_1l >= 10.0) & (at_1l <= 100.0))
    salty = src.patients.salty
    assert at_1l[salty].mean() > 60.0 > at_1l[~salty].mean()
    v = run(src, 600.0, 3000)[-1].values
    na, k, cl, rate = v.T
    assert np.all((na >= 10.0) & (na <= 100.0))
    assert np.all((k >= 4.0) & (k <= 8.5))
    assert np.all((cl < na) & (cl > 0.65 * na))
    assert np.all((rate > 0.0) & (rate < 2.5))


def test_exercise_raises_rate_and_sodium() -> None:
    src = SweatSource(2000, CohortParams(episode_rate=0.0), SeedTree(2), noise=False)
    runs = run(src, 6 * 3600.0, 2000)
    levels = np.stack([src.activity.level(b.t_end, np.arange(2000)) for b in runs[::60]])
    vals = np.stack([b.values for b in runs[::60]])
    exercising = vals[levels == 3]
    resting = vals[levels == 1]
    assert exercising[:, 3].mean() > 2 * resting[:, 3].mean()
    assert exercising[:, 0].mean() > resting[:, 0].mean()
    assert 0.4 < exercising[:, 3].mean() < 2.0


def test_dehydration_raises_concentration_and_lowers_rate() -> None:
    cohort = CohortParams(episode_rate=0.0)
    dry = SweatSource(50, cohort, SeedTree(3), noise=False)
    wet = SweatSource(50, cohort, SeedTree(3), noise=False)
    dry.episodes.inject(np.arange(50), "dehydration", 600.0, 4 * 3600.0, severity=1.0)
    a, b = run(dry, 3 * 3600.0, 50)[-1].values, run(wet, 3 * 3600.0, 50)[-1].values
    assert np.all(a[:, 0] > 1.25 * b[:, 0])
    assert np.all(a[:, 2] > 1.25 * b[:, 2])
    assert np.all(a[:, 3] < 0.7 * b[:, 3])


def test_abnormal_chloride_and_sensor_faults() -> None:
    src = SweatSource(3, CohortParams(episode_rate=0.0), SeedTree(4), noise=False)
    src.episodes.inject(np.array([0]), "abnormal_chloride", 0.0, 7200.0)
    src.episodes.inject(np.array([1]), "sensor_drift", 0.0, 7200.0, severity=0.9)
    src.episodes.inject(np.array([2]), "sensor_saturation", 3000.0, 600.0)
    twin = SweatSource(3, CohortParams(episode_rate=0.0), SeedTree(4), noise=False)
    out, ref = run(src, 3600.0, 3), run(twin, 3600.0, 3)
    assert out[0].episodes["kind"].tolist() == ["abnormal_chloride", "sensor_drift"]
    cl = out[-1].values[0, 2]
    assert cl >= 60.0 and cl > out[-1].values[0, 0]
    assert out[-1].values[1, 0] - ref[-1].values[1, 0] > 2.0  # drifted up after an hour
    sat = out[305]  # window ending at 3060 s
    assert sat.values[2, 0] == SENSOR_MAX and np.all(sat.signal[2, -3:] == SENSOR_MAX)


def test_same_seed_same_arrays() -> None:
    a, b = (SweatSource(40, CohortParams(episode_rate=30.0), SeedTree(5)) for _ in range(2))
    for x, y in zip(run(a, 300.0, 40), run(b, 300.0, 40), strict=True):
        assert np.array_equal(x.values, y.values) and np.array_equal(x.signal, y.signal)
        assert np.array_equal(x.episodes, y.episodes)
