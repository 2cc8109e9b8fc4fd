"""Patients and cohorts: who wears each device, drawn once from the cohort's distributions.

A :class:`CohortParams` says what the population looks like (scenario files choose it: its
first ten fields have the names of ``twin.scenario.schema.Cohort``, so
``CohortParams(**cohort.model_dump())`` works); :func:`make_patients` draws one
:class:`Patients` table (one row per device of a kind) from it with a seeded generator.

Sources of the ranges used here:

* resting heart rate 60-100 bpm in adults, lower in women by about 2-5 bpm (AHA; Quer et al.,
  PLoS ONE 2020, 92,457 adults, mean 65 +- 8 bpm by wearable);
* maximal heart rate ``208 - 0.7 * age`` (Tanaka, Monahan & Seals, JACC 2001);
* nocturnal blood-pressure dipping classes: extreme (> 20 % fall), normal dipper (10-20 %),
  non-dipper (0-10 %), riser (< 0 %) (O'Brien, Sheridan & O'Malley, Lancet 1988; Kario et al.,
  Hypertension 2001, with roughly 15/50/27/8 % of hypertensives in each class);
* white-coat effect in about 15-30 % of patients, 10-20 mmHg systolic on first office
  readings (Pickering et al., JAMA 1988; Mancia et al., Lancet 1983);
* sweat sodium 10-100 mmol/L, population mean near 40, "salty sweaters" above about
  60 mmol/L; chloride about 0.75-0.9 x sodium; potassium 4-8 mmol/L (Baker, Sports Med 2017,
  "Sweating rate and sweat sodium concentration in athletes"; Baker, Temperature 2019).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.physiology.errors import PhysiologyError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

DIPPING_CLASSES = ("extreme", "normal", "non_dipper", "riser")
"""Nocturnal systolic-dip classes, in the order of :attr:`CohortParams.dipping_mix`."""
DIP_RANGES = ((0.21, 0.27), (0.115, 0.175), (0.01, 0.075), (-0.08, -0.015))
"""Night-time fall of systolic pressure drawn for each class (fractions of the day level).

Kept inside the class limits with a margin, because activity and noise move a measured
24-h fall by about a percentage point (O'Brien 1988 class limits: > 20, 10-20, 0-10, < 0 %).
"""


@dataclass(frozen=True, slots=True)
class CohortParams:
    """The population a fleet's patients are drawn from.

    The first ten fields match ``twin.scenario.schema.Cohort``; the rest extend it.

    Attributes:
        age_min, age_max: age range in years (uniform).
        female_fraction: share of women.
        hr_mean_bpm, hr_sd_bpm: resting heart rate distribution.
        sys_mean_mmhg, sys_sd_mmhg, dia_mean_mmhg, dia_sd_mmhg: daytime resting pressure.
        salty_sweater_fraction: share of patients with high sweat sodium.
        dipping_mix: shares of (extreme, normal, non-dipper, riser) nocturnal dipping.
        white_coat_fraction: share with a white-coat effect on their first readings.
        ambient_c: ambient temperature (drives sweating).
        episode_rate: multiplier on every clinical episode rate (0 switches episodes off).
        episode_rates: per-episode-kind multipliers, e.g. ``(("af", 5.0),)``.
    """

    age_min: int = 18
    age_max: int = 90
    female_fraction: float = 0.5
    hr_mean_bpm: float = 72.0
    hr_sd_bpm: float = 8.0
    sys_mean_mmhg: float = 125.0
    sys_sd_mmhg: float = 12.0
    dia_mean_mmhg: float = 78.0
    dia_sd_mmhg: float = 8.0
    salty_sweater_fraction: float = 0.2
    dipping_mix: tuple[float, float, float, float] = (0.15, 0.50, 0.27, 0.08)
    white_coat_fraction: float = 0.2
    ambient_c: float = 22.0
    episode_rate: float = 1.0
    episode_rates: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        checks = (
            (0 <= self.age_min <= self.age_max <= 120, "need 0 <= age_min <= age_max <= 120"),
            (0.0 <= self.female_fraction <= 1.0, "female_fraction must be in 0..1"),
            (0.0 <= self.salty_sweater_fraction <= 1.0, "salty_sweater_fraction must be in 0..1"),
            (0.0 <= self.white_coat_fraction <= 1.0, "white_coat_fraction must be in 0..1"),
            (25.0 <= self.hr_mean_bpm <= 220.0, "hr_mean_bpm must be in 25..220"),
            (self.dia_mean_mmhg < self.sys_mean_mmhg, "dia_mean_mmhg must be below systolic"),
            (min(self.hr_sd_bpm, self.sys_sd_mmhg, self.dia_sd_mmhg) >= 0, "SDs must be >= 0"),
            (len(self.dipping_mix) == 4 and min(self.dipping_mix) >= 0
             and sum(self.dipping_mix) > 0, "dipping_mix needs four shares >= 0, not all 0"),
            (self.episode_rate >= 0 and all(r >= 0 for _, r in self.episode_rates),
             "episode rates must be >= 0"),
            (-10.0 <= self.ambient_c <= 50.0, "ambient_c must be in -10..50"),
        )
        for ok, why in checks:
            if not ok:
                raise PhysiologyError(f"cohort: {why}")

    def rate_multiplier(self, kind: str) -> float:
        """The cohort's multiplier for one episode kind (global x per-kind)."""
        return self.episode_rate * dict(self.episode_rates).get(kind, 1.0)


@dataclass(frozen=True, slots=True, eq=False)
class Patients:
    """One row per device: the person wearing it (arrays of length ``n``)."""

    age: FloatArray
    female: BoolArray
    hr_rest: FloatArray
    hr_max: FloatArray
    sys_day: FloatArray
    dia_day: FloatArray
    dip_class: IntArray
    dip: FloatArray
    white_coat: BoolArray
    salty: BoolArray
    na_base: FloatArray
    k_base: FloatArray
    cl_ratio: FloatArray
    sweat_gain: FloatArray
    risk: FloatArray
    bed_h: FloatArray
    wake_h: FloatArray

    @property
    def n(self) -> int:
        """How many patients."""
        return len(self.age)


def make_patients(n: int, c: CohortParams, rng: np.random.Generator) -> Patients:
    """Draw ``n`` patients from a cohort.

    Args:
        n: number of patients (devices of one kind), >= 0.
        c: the cohort parameters.
        rng: the cohort's own stream, e.g. ``seeds.rng("physiology", "ecg", "cohort")``.

    Returns:
        The patient table.

    Raises:
        PhysiologyError: for a negative ``n``.
    """
    if n < 0:
        raise PhysiologyError(f"cohort size must be >= 0, got {n}")
    age = rng.uniform(c.age_min, c.age_max + 1e-9, n)
    female = rng.random(n) < c.female_fraction
    # Women's resting HR is a few bpm higher on average (Quer 2020): +3 bpm, cohort mean kept.
    hr_rest = c.hr_mean_bpm + c.hr_sd_bpm * rng.standard_normal(n) + 3.0 * (female - 0.5)
    hr_rest = np.clip(hr_rest, 38.0, 115.0)
    hr_max = np.maximum(208.0 - 0.7 * age, hr_rest + 40.0)  # Tanaka 2001
    sys_day, dia_day = _pressures(n, c, rng)
    mix = np.asarray(c.dipping_mix, dtype=float)
    dip_class = rng.choice(4, size=n, p=mix / mix.sum()).astype(np.intp)
    lo, hi = np.asarray(DIP_RANGES).T
    dip = rng.uniform(lo[dip_class], hi[dip_class])
    salty = rng.random(n) < c.salty_sweater_fraction
    na_base = np.where(salty, rng.normal(72.0, 10.0, n), rng.normal(34.0, 9.0, n))
    na_base = np.clip(na_base, 12.0, 95.0)
    risk = np.exp(rng.normal(0.0, 0.4, n)) * (1.0 + np.maximum(age - 50.0, 0.0) / 25.0)
    return Patients(
        age=age, female=female, hr_rest=hr_rest, hr_max=hr_max, sys_day=sys_day,
        dia_day=dia_day, dip_class=dip_class, dip=dip,
        white_coat=rng.random(n) < c.white_coat_fraction, salty=salty, na_base=na_base,
        k_base=np.clip(rng.normal(5.5, 0.9, n), 4.0, 8.0),
        cl_ratio=np.clip(rng.normal(0.82, 0.05, n), 0.7, 0.95),
        sweat_gain=np.exp(rng.normal(0.0, 0.3, n)) * np.where(female, 0.8, 1.0),
        risk=risk,
        bed_h=rng.uniform(21.5, 24.0, n), wake_h=rng.uniform(6.0, 8.5, n),
    )


def _pressures(n: int, c: CohortParams, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Correlated daytime systolic/diastolic (r about 0.6), pulse pressure >= 25 mmHg."""
    z_sys, z_other = rng.standard_normal(n), rng.standard_normal(n)
    sys = np.clip(c.sys_mean_mmhg + c.sys_sd_mmhg * z_sys, 90.0, 190.0)
    dia = c.dia_mean_mmhg + c.dia_sd_mmhg * (0.6 * z_sys + 0.8 * z_other)
    return sys, np.clip(np.minimum(dia, sys - 25.0), 45.0, 115.0)
