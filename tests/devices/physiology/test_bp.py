"""Blood pressure: 24-h dipping classes, episodes, cuff schedule, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from devices.physiology import BpSource, CohortParams
from twin.core.seeds import SeedTree

N = 12


def one_day(mix: tuple[float, float, float, float], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Systolic every minute over 24 h from 08:00, and the clock hour of each minute."""
    cohort = CohortParams(dipping_mix=mix, episode_rate=0.0)
    src = BpSource(N, cohort, SeedTree(seed), fs=1.0, window_s=60.0)
    t = np.arange(60.0, 86400.0 + 1, 60.0)
    sys = np.stack([src.window(float(x), np.arange(N)).values[:, 0] for x in t])
    return sys, (8.0 + t / 3600.0) % 24.0


def night_fall(sys: np.ndarray, hour: np.ndarray) -> np.ndarray:
    """ABPM convention (ESH 2013): day 09-21 h, night 01-06 h; fall = 1 - night / day."""
    day = sys[(hour >= 9) & (hour < 21)].mean(axis=0)
    night = sys[(hour >= 1) & (hour < 6)].mean(axis=0)
    return 1.0 - night / day


def test_normal_dippers_fall_10_to_20_percent_at_night() -> None:
    fall = night_fall(*one_day((0.0, 1.0, 0.0, 0.0)))
    assert np.all((fall > 0.10) & (fall < 0.20)), fall


def test_non_dippers_fall_less_than_10_percent() -> None:
    fall = night_fall(*one_day((0.0, 0.0, 1.0, 0.0), seed=1))
    assert np.all(fall < 0.10), fall


def test_extreme_dippers_and_risers() -> None:
    assert np.all(night_fall(*one_day((1.0, 0.0, 0.0, 0.0), seed=2)) > 0.20)
    assert np.all(night_fall(*one_day((0.0, 0.0, 0.0, 1.0), seed=3)) < 0.0)


def test_hypertensive_urgency_and_orthostatic_hypotension() -> None:
    src = BpSource(3, CohortParams(episode_rate=0.0), SeedTree(4), noise=False)
    src.episodes.inject(np.array([1]), "hypertensive_urgency", 0.0, 7200.0, severity=0.5)
    src.episodes.inject(np.array([2]), "orthostatic_hypotension", 3000.0, 180.0, severity=0.5)
    values = {t: src.window(t, np.arange(3)).values for t in np.arange(10.0, 3601.0, 10.0)}
    assert values[3600.0][1, 0] >= 180.0 or values[3600.0][1, 1] >= 120.0
    assert values[3010.0][2, 0] <= values[2990.0][2, 0] - 20.0
    assert abs(values[3600.0][2, 0] - values[2990.0][2, 0]) < 8.0


def test_white_coat_raises_first_readings() -> None:
    coat = BpSource(200, CohortParams(white_coat_fraction=1.0), SeedTree(5), noise=False)
    none = BpSource(200, CohortParams(white_coat_fraction=0.0), SeedTree(5), noise=False)
    first = coat.window(10.0, np.arange(200))
    assert (first.episodes["kind"] == "white_coat").sum() == 200
    later = [(coat.window(t, np.arange(200)).values, none.window(t, np.arange(200)).values)
             for t in (20.0, 4000.0)]
    assert np.mean(later[0][0][:, 0] - later[0][1][:, 0]) > 10.0
    assert abs(np.mean(later[1][0][:, 0] - later[1][1][:, 0])) < 2.0


def test_cuff_readings_follow_the_schedule() -> None:
    src = BpSource(5, CohortParams(), SeedTree(6))
    readings = np.concatenate([src.window(t, np.arange(5)).readings
                               for t in np.arange(10.0, 4 * 3600.0 + 1, 10.0)])
    per_device = np.bincount(readings["row"], minlength=5)
    assert np.all((per_device >= 7) & (per_device <= 9))  # every 30 min awake, over 4 h
    assert np.all((readings["sys_mmhg"] > 60) & (readings["sys_mmhg"] < 250))


def test_waveform_is_a_pulse_between_diastolic_and_systolic() -> None:
    src = BpSource(4, CohortParams(episode_rate=0.0), SeedTree(7), noise=False)
    src.window(10.0, np.arange(4))
    b = src.window(20.0, np.arange(4))
    assert b.signal.shape == (4, 250) and b.units == "mmHg"
    assert np.allclose(b.signal.max(axis=1), b.values[:, 0], atol=3.0)
    assert np.allclose(b.signal.min(axis=1), b.values[:, 1], atol=3.0)


def test_same_seed_same_arrays() -> None:
    a, b = (BpSource(30, CohortParams(), SeedTree(8)) for _ in range(2))
    for t in (10.0, 20.0, 30.0):
        x, y = a.window(t, np.arange(30)), b.window(t, np.arange(30))
        assert np.array_equal(x.values, y.values) and np.array_equal(x.signal, y.signal)
        assert np.array_equal(x.readings, y.readings)


@pytest.mark.parametrize("kind", ["cohort", "fs"])
def test_bad_parameters(kind: str) -> None:
    from devices.physiology import PhysiologyError

    with pytest.raises(PhysiologyError):
        if kind == "cohort":
            CohortParams(sys_mean_mmhg=80.0, dia_mean_mmhg=90.0)
        else:
            BpSource(2, CohortParams(), SeedTree(0), fs=0.33, window_s=10.0)
