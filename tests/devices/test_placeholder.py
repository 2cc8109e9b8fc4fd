"""Placeholder vitals (devices/sensors/placeholder.py): shapes, determinism, plausibility."""

from __future__ import annotations

import numpy as np
import pytest

from devices.sensors.placeholder import CohortParams, PlaceholderVitals
from twin.core.messages import KIND_METRICS, Kind

N = 200


def vitals(kind: Kind, n: int = N, seed: int = 0, cohort: CohortParams | None = None
           ) -> PlaceholderVitals:
    return PlaceholderVitals(kind, n, cohort or CohortParams(), np.random.default_rng(seed))


def a_day(v: PlaceholderVitals, n: int = N, step_s: float = 60.0) -> np.ndarray:
    """Every device's window every ``step_s`` over one simulated day: (windows, n, metrics)."""
    idx = np.arange(n)
    return np.stack([v.window(t, idx) for t in np.arange(step_s, 86400.0 + step_s, step_s)])


@pytest.mark.parametrize("kind", list(Kind))
def test_shape_is_idx_by_metrics(kind: Kind) -> None:
    v = vitals(kind)
    assert v.metrics == KIND_METRICS[kind]
    for idx in (np.arange(N), np.array([3, 7, 11]), np.array([5]), np.array([], dtype=np.intp)):
        out = v.window(10.0, idx)
        assert out.shape == (len(idx), len(KIND_METRICS[kind]))
        assert out.dtype == np.float64
        assert np.isfinite(out).all()


@pytest.mark.parametrize("kind", list(Kind))
def test_same_seed_same_values(kind: Kind) -> None:
    a, b = vitals(kind, seed=42), vitals(kind, seed=42)
    idx = np.arange(0, N, 3)
    for t in (10.0, 20.0, 30.0, 3600.0):
        np.testing.assert_array_equal(a.window(t, idx), b.window(t, idx))


@pytest.mark.parametrize("kind", list(Kind))
def test_other_seed_other_values(kind: Kind) -> None:
    idx = np.arange(N)
    assert not np.array_equal(vitals(kind, seed=1).window(10.0, idx),
                              vitals(kind, seed=2).window(10.0, idx))


@pytest.mark.parametrize("kind", list(Kind))
def test_devices_differ(kind: Kind) -> None:
    out = vitals(kind).window(10.0, np.arange(N))
    for col in range(out.shape[1]):
        assert len(np.unique(out[:, col])) == N


PLAUSIBLE = [
    (Kind.ECG_PATCH, "hr_bpm", 30.0, 200.0),
    (Kind.BP_CUFF, "sys_mmhg", 70.0, 220.0),
    (Kind.BP_CUFF, "dia_mmhg", 40.0, 140.0),
    (Kind.SWEAT_PATCH, "na_mmol_l", 5.0, 120.0),
    (Kind.SWEAT_PATCH, "k_mmol_l", 2.0, 12.0),
    (Kind.SWEAT_PATCH, "cl_mmol_l", 3.0, 100.0),
    (Kind.SWEAT_PATCH, "sweat_rate_l_h", 0.0, 3.0),
]


@pytest.mark.parametrize(("kind", "metric", "lo", "hi"), PLAUSIBLE,
                         ids=[p[1] for p in PLAUSIBLE])
def test_values_stay_plausible_over_a_day(kind: Kind, metric: str, lo: float, hi: float) -> None:
    col = KIND_METRICS[kind].index(metric)
    values = a_day(vitals(kind))[:, :, col]
    assert values.min() >= lo, f"{metric} fell to {values.min():.1f}"
    assert values.max() <= hi, f"{metric} rose to {values.max():.1f}"


def test_diastolic_stays_below_systolic() -> None:
    day = a_day(vitals(Kind.BP_CUFF))
    assert (day[:, :, 0] > day[:, :, 1]).all()


def test_blood_pressure_dips_at_night() -> None:
    v = vitals(Kind.BP_CUFF, n=2000)
    idx = np.arange(2000)
    # start_hour 8: t = 20 h is 04:00 (trough), t = 8 h is 16:00 (day).
    night = v.window(20 * 3600.0, idx)[:, 0].mean()
    day = v.window(8 * 3600.0, idx)[:, 0].mean()
    assert night < day * 0.95


def test_cohort_mean_sets_the_centre() -> None:
    idx = np.arange(5000)
    low = vitals(Kind.ECG_PATCH, 5000, cohort=CohortParams(hr_mean_bpm=60.0)).window(8 * 3600, idx)
    high = vitals(Kind.ECG_PATCH, 5000, cohort=CohortParams(hr_mean_bpm=90.0)).window(8 * 3600, idx)
    assert high.mean() - low.mean() == pytest.approx(30.0, abs=3.0)


def test_cohort_diastolic_spread_is_honoured() -> None:
    # CohortParams documents dia_sd_mmhg as a parameter the placeholder uses.
    idx = np.arange(2000)
    narrow = vitals(Kind.BP_CUFF, 2000, cohort=CohortParams(dia_sd_mmhg=2.0))
    wide = vitals(Kind.BP_CUFF, 2000, cohort=CohortParams(dia_sd_mmhg=16.0))
    assert wide.window(8 * 3600, idx)[:, 1].std() > narrow.window(8 * 3600, idx)[:, 1].std() + 5


def test_salty_sweaters_raise_sodium() -> None:
    idx = np.arange(4000)
    none = vitals(Kind.SWEAT_PATCH, 4000, cohort=CohortParams(salty_sweater_fraction=0.0))
    all_ = vitals(Kind.SWEAT_PATCH, 4000, cohort=CohortParams(salty_sweater_fraction=1.0))
    assert all_.window(10.0, idx)[:, 0].mean() > none.window(10.0, idx)[:, 0].mean() + 20


@pytest.mark.parametrize("kind", list(Kind))
def test_only_requested_devices_advance_their_ar_state(kind: Kind) -> None:
    v = vitals(kind, n=10)
    v.window(10.0, np.arange(10))
    before = v._ar.copy()
    chosen = np.array([2, 5, 7])
    v.window(20.0, chosen)
    changed = np.flatnonzero((v._ar != before).any(axis=1))
    np.testing.assert_array_equal(changed, chosen)


@pytest.mark.parametrize("kind", list(Kind))
def test_untouched_device_is_unaffected_by_others_windows(kind: Kind) -> None:
    """Device 0's values depend only on its own history, not on how often others report."""
    a, b = vitals(kind, n=4, seed=3), vitals(kind, n=4, seed=3)
    out_a = a.window(10.0, np.array([0]))
    out_b = b.window(10.0, np.array([0]))
    np.testing.assert_array_equal(out_a, out_b)
    before = b._ar[0].copy()
    b.window(20.0, np.array([1, 2, 3]))
    np.testing.assert_array_equal(b._ar[0], before)
