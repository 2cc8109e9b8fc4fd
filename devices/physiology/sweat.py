"""Sweat electrolytes: sweat rate and sodium, potassium and chloride concentrations.

Physiology (sources: Baker, Sports Med 2017, "Sweating rate and sweat sodium concentration in
athletes"; Baker, Temperature 2019, "Physiology of sweat gland function"; Buono et al., J Appl
Physiol 2008, sodium rising with sweat rate as ductal reabsorption saturates):

* whole-body sweat rate about 0.05-0.1 L/h asleep or at rest in the cool, 0.3-0.6 walking and
  0.5-2 L/h in exercise, higher in the heat (+6 % per degree above 22 C here) and lower in
  women on average; onset and offset with an 8-min lag;
* sweat sodium 10-100 mmol/L, population mean near 40 during exercise, "salty sweaters" above
  about 60; it scales with sweat rate (x0.64 at rest, x1 at 1 L/h, x1.4 at 2 L/h here);
* chloride 0.7-0.95 x sodium; potassium 4-8 mmol/L, nearly independent of rate.

Episodes: dehydration (sweat rate falling by up to 40 % while sodium and chloride rise by up
to 35 % as plasma osmolality rises: Baker 2017, section 4.4), abnormal chloride (sweat
chloride >= 60 mmol/L and above sodium, the cystic-fibrosis range: Farrell et al., J Pediatr
2017), and two sensor faults: drift (an ion-selective electrode reading creeping by 2-6
mmol/L per hour) and saturation (the reading pinned at the top of its range, 150 mmol/L).
The waveform is the sodium reading in mmol/L (default 1 Hz), continuous across windows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from devices.physiology.activity import ActivitySchedule
from devices.physiology.batch import SignalBatch
from devices.physiology.cohort import CohortParams, FloatArray, make_patients
from devices.physiology.ecg import _samples
from devices.physiology.episodes import EpisodeScheduler, EpisodeSpec
from twin.core.seeds import SeedTree

SWEAT_EPISODES = (
    EpisodeSpec("dehydration", 0.02, 7200.0, 0.5, 1800.0, 8 * 3600.0),
    EpisodeSpec("abnormal_chloride", 0.005, 4 * 3600.0, 0.5, 1800.0, 12 * 3600.0),
    EpisodeSpec("sensor_drift", 0.02, 3600.0, 0.6, 600.0, 6 * 3600.0, risk_scaled=False),
    EpisodeSpec("sensor_saturation", 0.01, 600.0, 0.8, 60.0, 3600.0, risk_scaled=False),
)
"""Sweat episode kinds with demonstration rates (per device-hour) and durations."""
SENSOR_MAX = 150.0
"""Top of the simulated ion-selective electrodes' range (mmol/L)."""
_RATE_L_H = np.array([0.05, 0.1, 0.4, 1.2])  # by activity level, before gain and heat


class SweatSource:
    """Sweat windows for ``n_devices`` patches (values: Na, K, Cl mmol/L, sweat rate L/h).

    Args:
        n_devices, cohort, seeds, fs, window_s, start_hour: as :class:`EcgSource`;
            ``fs`` is the sodium reading's rate (default 1 Hz).
        noise: add sensor noise.
    """

    units = "mmol/L"

    def __init__(self, n_devices: int, cohort: CohortParams, seeds: SeedTree, fs: float = 1.0,
                 window_s: float = 10.0, start_hour: float = 8.0, *, noise: bool = True) -> None:
        self.samples = _samples(fs, window_s)
        self.n, self.fs, self.window_s, self._noise = n_devices, fs, window_s, noise
        p = self.patients = make_patients(n_devices, cohort,
                                          seeds.rng("physiology", "sweat", "cohort"))
        self.activity = ActivitySchedule(
            p, lambda d: seeds.rng("physiology", "sweat", "activity", d), start_hour)
        self.episodes = EpisodeScheduler(SWEAT_EPISODES, n_devices, p.risk, cohort,
                                         seeds.rng("physiology", "sweat", "episodes"))
        self._heat = max(0.3, 1.0 + 0.06 * (cohort.ambient_c - 22.0))
        self._rng = seeds.rng("physiology", "sweat", "noise")
        self._rate = _RATE_L_H[1] * p.sweat_gain * self._heat
        self._last_na = np.full(n_devices, np.nan)

    def physiology(self, t: float, idx: npt.NDArray[np.intp]) -> FloatArray:
        """True Na, K, Cl (mmol/L) and sweat rate (L/h) ``(len(idx), 4)`` at ``t``."""
        p, ep = self.patients, self.episodes
        rate = self._rate[idx]
        na = np.clip(p.na_base[idx] * (0.6 + 0.4 * np.minimum(rate, 2.0)), 10.0, 110.0)
        k = p.k_base[idx] * (1.0 + 0.05 * (1.0 - np.minimum(rate, 2.0)))
        cl = p.cl_ratio[idx] * na
        sev, start, end = ep.severity[idx], ep.start[idx], ep.end[idx]
        prog = np.clip((t - start) / np.maximum(0.5 * (end - start), 1.0), 0.0, 1.0)
        dry = np.where(ep.active("dehydration", t, idx), prog * (0.6 + 0.4 * sev), 0.0)
        rate = rate * (1.0 - 0.4 * dry)
        na, cl, k = na * (1.0 + 0.35 * dry), cl * (1.0 + 0.35 * dry), k * (1.0 + 0.1 * dry)
        cf = ep.active("abnormal_chloride", t, idx)
        cl = np.where(cf, np.maximum(cl, na + 5.0) + (60.0 + 30.0 * sev - cl).clip(0)
                      * np.minimum(prog * 4.0, 1.0), cl)
        return np.column_stack([na, k, cl, rate])

    def _sensor(self, t: float, idx: npt.NDArray[np.intp], true: FloatArray) -> FloatArray:
        """What the electrodes read: drift and saturation applied to Na and Cl."""
        ep = self.episodes
        out = true.copy()
        sev = ep.severity[idx]
        drift = np.where(ep.active("sensor_drift", t, idx),
                         (2.0 + 4.0 * sev) * np.where(sev > 0.5, 1.0, -1.0)
                         * (t - ep.start[idx]) / 3600.0, 0.0)
        out[:, [0, 2]] += drift[:, None]
        sat = ep.active("sensor_saturation", t, idx)
        out[sat, 0], out[sat, 2] = SENSOR_MAX, SENSOR_MAX
        out[:, :3] = np.clip(out[:, :3], 0.0, SENSOR_MAX)
        return out

    def window(self, t_end: float, idx: npt.NDArray[np.intp]) -> SignalBatch:
        """The window ``[t_end - window_s, t_end)`` of devices ``idx``.

        Returns:
            Values ``(len(idx), 4)`` (Na, K, Cl, sweat rate) as the sensor reports them, the
            sodium reading in mmol/L, and the episodes that started in the window.
        """
        idx = np.asarray(idx, dtype=np.intp)
        t0 = t_end - self.window_s
        started = self.episodes.step(t0, t_end, idx)
        level = self.activity.level(t_end, idx)
        target = _RATE_L_H[level] * self.patients.sweat_gain[idx] * self._heat
        self._rate[idx] += (target - self._rate[idx]) * (1.0 - np.exp(-self.window_s / 480.0))
        true = self.physiology(t_end, idx)
        if self._noise:  # electrode noise, 1 %, before the sensor's faults and range
            true[:, :3] *= 1.0 + 0.01 * self._rng.standard_normal((len(idx), 3))
        read = self._sensor(t_end, idx, true)
        prev = np.where(np.isnan(self._last_na[idx]), read[:, 0], self._last_na[idx])
        self._last_na[idx] = read[:, 0]
        ramp = np.arange(1, self.samples + 1) / self.samples
        sig = prev[:, None] + (read[:, :1] - prev[:, None]) * ramp
        if self._noise:
            sig = sig + 0.3 * self._rng.standard_normal(sig.shape)
        sig = np.clip(sig, 0.0, SENSOR_MAX)
        return SignalBatch(t_end, read, sig.astype(np.float32), self.fs, self.units, started)
