"""Placeholder vitals: simple, vectorised per-window values for every device of a kind.

This is the spine's stand-in for the physiology models (they replace it): each device gets a
baseline drawn from the cohort, a day-night rhythm, and an AR(1) fluctuation, so a fleet's
telemetry looks plausible and differs device to device. Everything is one numpy operation per
window for all devices of the kind: per-sample or per-device Python work would not scale to
10,000 devices (ARCHITECTURE.md section 2).

Ranges: resting heart rate 60-100 bpm in adults (AHA); office blood pressure around 120/80
mmHg with a 10-20 % nocturnal dip in "dippers" (O'Brien et al., Lancet 1988); sweat sodium
about 10-100 mmol/L with a population mean near 40 and chloride about 0.75 x sodium, potassium
4-8 mmol/L (Baker, Sports Med 2017, "Sweating rate and sweat sodium concentration in
athletes"); sweat rate 0.5-2 L/h in exercise, lower at rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from twin.core.messages import KIND_METRICS, Kind

FloatArray = npt.NDArray[np.float64]
_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class CohortParams:
    """The cohort parameters the placeholder uses (a subset of the scenario's cohort)."""

    hr_mean_bpm: float = 72.0
    hr_sd_bpm: float = 8.0
    sys_mean_mmhg: float = 125.0
    sys_sd_mmhg: float = 12.0
    dia_mean_mmhg: float = 78.0
    dia_sd_mmhg: float = 8.0
    salty_sweater_fraction: float = 0.2
    start_hour: float = 8.0


class PlaceholderVitals:
    """Window values for ``n`` devices of one kind.

    Args:
        kind: the device kind (sets the metrics, in ``KIND_METRICS`` order).
        n: how many devices of this kind.
        cohort: cohort parameters.
        rng: this generator's own stream (from the run's seed tree).
    """

    def __init__(self, kind: Kind, n: int, cohort: CohortParams, rng: np.random.Generator) -> None:
        self.kind = kind
        self.metrics = KIND_METRICS[kind]
        self._rng = rng
        self._start = cohort.start_hour * 3600.0
        self._base, self._sd, self._dip = self._baselines(kind, n, cohort, rng)
        self._ar = np.zeros((n, len(self.metrics)))

    @staticmethod
    def _baselines(
        kind: Kind, n: int, c: CohortParams, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per-device baselines, fluctuation sizes and night-time dip fractions per metric."""
        if kind is Kind.ECG_PATCH:
            base = np.clip(rng.normal(c.hr_mean_bpm, c.hr_sd_bpm, (n, 1)), 45, 110)
            return base, np.full((n, 1), 3.0), np.full((n, 1), 0.08)
        if kind is Kind.BP_CUFF:
            # Systolic and diastolic correlate (r about 0.6 in population surveys); the
            # diastolic spread is the cohort's own, and the pulse pressure stays >= 25 mmHg.
            z_sys, z_other = rng.standard_normal(n), rng.standard_normal(n)
            sys = np.clip(c.sys_mean_mmhg + c.sys_sd_mmhg * z_sys, 100, 175)
            z_dia = 0.6 * z_sys + 0.8 * z_other
            dia = np.clip(c.dia_mean_mmhg + c.dia_sd_mmhg * z_dia, 58, 105)
            dia = np.minimum(dia, sys - 25)
            dip = np.clip(rng.normal(0.12, 0.05, (n, 1)), -0.05, 0.2)  # risers to extreme dippers
            return np.column_stack([sys, dia]), np.tile([5.0, 3.5], (n, 1)), np.tile(dip, 2)
        salty = rng.random(n) < c.salty_sweater_fraction
        na = np.clip(np.where(salty, rng.normal(70, 10, n), rng.normal(35, 10, n)), 10, 100)
        k = np.clip(rng.normal(6.0, 1.0, n), 4, 8)
        cl = 0.75 * na
        rate = np.clip(rng.normal(0.6, 0.2, n), 0.1, 1.5)
        base = np.column_stack([na, k, cl, rate])
        sd = base * np.array([0.05, 0.04, 0.05, 0.08])
        return base, sd, np.tile([0.0, 0.0, 0.0, 0.4], (n, 1))

    def window(self, t: float, idx: npt.NDArray[np.intp]) -> FloatArray:
        """Values for the window closing at ``t`` for the devices ``idx``.

        Args:
            t: simulated seconds since the run started.
            idx: indices (within this kind) of the devices whose window closes now.

        Returns:
            An array ``(len(idx), len(metrics))`` in ``KIND_METRICS[kind]`` order.
        """
        # Night-time trough near 04:00; cos() is +1 there, so the dip subtracts most then.
        phase = 2.0 * np.pi * ((self._start + t) % _DAY - 4 * 3600.0) / _DAY
        night = 0.5 * (1.0 + np.cos(phase))
        shock = self._rng.standard_normal((len(idx), len(self.metrics)))
        self._ar[idx] = 0.9 * self._ar[idx] + np.sqrt(1 - 0.81) * shock
        values: FloatArray = self._base[idx] * (1.0 - self._dip[idx] * night)
        return values + self._sd[idx] * self._ar[idx]
