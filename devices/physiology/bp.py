"""Blood pressure: a continuous (cuffless) estimate, an arterial pulse wave, and cuff readings.

The pressure level of a patient follows (all in mmHg):

* a day-night rhythm: asleep the systolic and diastolic fall by the patient's dip fraction,
  with ~0.4-h transitions and a morning rise at waking; dipping classes extreme (> 20 %),
  normal (10-20 %), non-dipper (0-10 %), riser (< 0 %) (O'Brien, Sheridan & O'Malley, Lancet
  1988; Kario et al., Hypertension 2001);
* activity: walking +6/+3, exercise +18/+5 systolic/diastolic with a 5-min lag (systolic
  rises with dynamic exercise, diastolic barely: Fletcher et al., AHA exercise standards 2013);
* slow variability: AR(1), 10-min correlation, SD 4 / 2.5;
* episodes: hypertensive urgency (>= 180 systolic and/or >= 120 diastolic without organ
  damage: Whelton et al., ACC/AHA 2017 guideline), orthostatic hypotension (a fall of >= 20
  systolic or >= 10 diastolic within 3 min of standing: Freeman et al., Clin Auton Res 2011),
  and the white-coat effect (10-20 systolic on first readings, fading within an hour: Mancia
  et al., Lancet 1983; Pickering et al., JAMA 1988).

Cuff readings follow an ambulatory protocol, every 30 min awake and 60 min asleep (O'Brien et
al., ESH position paper, J Hypertens 2013), with an error of SD 4/3 mmHg (within ISO 81060-2's
5 +- 8 mmHg). The waveform is an arterial pulse between diastolic and systolic at the
patient's heart rate (systolic peak, dicrotic notch), continuous across windows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from devices.physiology.activity import ActivitySchedule
from devices.physiology.batch import READING_DTYPE, SignalBatch
from devices.physiology.cohort import CohortParams, FloatArray, make_patients
from devices.physiology.ecg import _samples
from devices.physiology.episodes import EpisodeScheduler, EpisodeSpec
from twin.core.seeds import SeedTree

BP_EPISODES = (
    EpisodeSpec("hypertensive_urgency", 0.01, 7200.0, 0.5, 1800.0, 6 * 3600.0),
    EpisodeSpec("orthostatic_hypotension", 0.1, 150.0, 0.4, 60.0, 600.0),
    EpisodeSpec("white_coat", 0.0, 3600.0),
)
"""BP episode kinds; white-coat is only ever injected at the start, for white-coat patients."""
_ACT_SYS = np.array([0.0, 0.0, 6.0, 18.0])
_ACT_DIA = np.array([0.0, 0.0, 3.0, 5.0])
_CUFF_AWAKE_S, _CUFF_ASLEEP_S = 1800.0, 3600.0
_PULSE_POINTS = 512


def pulse_shape(points: int = _PULSE_POINTS) -> npt.NDArray[np.float64]:
    """One heart cycle of arterial pressure, 0 (diastolic) .. 1 (systolic), periodic."""
    x = np.arange(points) / points
    raw = (np.exp(-0.5 * ((x - 0.16) / 0.055) ** 2)
           + 0.45 * np.exp(-0.5 * ((x - 0.42) / 0.08) ** 2)
           + 0.35 * np.exp(-np.maximum(x - 0.16, 0.0) / 0.45) * (x > 0.1))
    raw = raw - raw[0] - (raw[-1] - raw[0]) * x  # make both ends equal
    out: npt.NDArray[np.float64] = (raw - raw.min()) / (raw.max() - raw.min())
    return out


class BpSource:
    """Blood-pressure windows for ``n_devices`` cuffs (values: systolic, diastolic).

    Args:
        n_devices, cohort, seeds, fs, window_s, start_hour: as :class:`EcgSource`;
            ``fs`` is the pulse waveform's rate (default 25 Hz).
        noise: add variability and measurement error.
    """

    units = "mmHg"

    def __init__(self, n_devices: int, cohort: CohortParams, seeds: SeedTree, fs: float = 25.0,
                 window_s: float = 10.0, start_hour: float = 8.0, *, noise: bool = True) -> None:
        self.samples = _samples(fs, window_s)
        self.n, self.fs, self.window_s, self._noise = n_devices, fs, window_s, noise
        p = self.patients = make_patients(n_devices, cohort,
                                          seeds.rng("physiology", "bp", "cohort"))
        self.activity = ActivitySchedule(
            p, lambda d: seeds.rng("physiology", "bp", "activity", d), start_hour)
        self.episodes = EpisodeScheduler(BP_EPISODES, n_devices, p.risk, cohort,
                                         seeds.rng("physiology", "bp", "episodes"))
        white = np.flatnonzero(p.white_coat) if cohort.episode_rate > 0 else np.array([], int)
        if len(white):
            self.episodes.inject(white, "white_coat", 0.0, 3600.0)
        self._rng = seeds.rng("physiology", "bp", "noise")
        rng = seeds.rng("physiology", "bp", "state")
        self._ar = np.zeros((n_devices, 2))
        self._act = np.zeros((n_devices, 2))
        self._last = np.full((n_devices, 2), np.nan)
        self._phase = rng.random(n_devices)
        self._next_cuff = rng.uniform(60.0, 600.0, n_devices)
        self._shape = pulse_shape()

    def level(self, t: float, idx: npt.NDArray[np.intp]) -> FloatArray:
        """Noise-free systolic and diastolic ``(len(idx), 2)`` at ``t`` without episodes."""
        p = self.patients
        asleep = 1.0 - self.activity.awake_fraction(t, idx)
        fall = 1.0 - p.dip[idx] * asleep
        return np.column_stack([p.sys_day[idx] * fall, p.dia_day[idx] * fall])

    def _episode_offset(self, t: float, idx: npt.NDArray[np.intp]) -> FloatArray:
        """Systolic/diastolic offsets of the devices' active episodes at ``t``."""
        ep = self.episodes
        sev, start, end = ep.severity[idx], ep.start[idx], ep.end[idx]
        span = np.maximum(end - start, 1.0)
        since = (t - start) / span
        ramp = np.clip(np.minimum(since * span / 900.0, (1.0 - since) * span / 900.0), 0, 1)
        out = np.zeros((len(idx), 2))
        urgent = ep.active("hypertensive_urgency", t, idx)
        base = self.patients.sys_day[idx]
        rise = np.column_stack([np.maximum(185.0 + 30.0 * sev - base, 20.0),
                                np.full(len(idx), 25.0 + 15.0 * sev)])
        out += np.where(urgent[:, None], rise * ramp[:, None], 0.0)
        ortho = ep.active("orthostatic_hypotension", t, idx)
        drop = np.column_stack([20.0 + 20.0 * sev, 10.0 + 10.0 * sev]) * (1.0 - since)[:, None]
        out -= np.where(ortho[:, None], drop, 0.0)
        coat = ep.active("white_coat", t, idx)
        out += np.where(coat[:, None], np.column_stack([10.0 + 10.0 * sev, 5.0 + 5.0 * sev])
                        * (1.0 - since)[:, None], 0.0)
        return out

    def window(self, t_end: float, idx: npt.NDArray[np.intp]) -> SignalBatch:
        """The window ``[t_end - window_s, t_end)`` of devices ``idx``.

        Returns:
            Values ``(len(idx), 2)`` (window systolic and diastolic of the continuous
            estimate), the pulse wave in mmHg, cuff readings taken in the window, and the
            episodes that started in it.
        """
        idx = np.asarray(idx, dtype=np.intp)
        t0 = t_end - self.window_s
        started = self.episodes.step(t0, t_end, idx)
        level = self.activity.level(t_end, idx)
        lag = 1.0 - np.exp(-self.window_s / 300.0)
        target = np.column_stack([_ACT_SYS[level], _ACT_DIA[level]])
        self._act[idx] += (target - self._act[idx]) * lag
        if self._noise:
            phi = np.exp(-self.window_s / 600.0)
            shock = self._rng.standard_normal((len(idx), 2)) * np.array([4.0, 2.5])
            self._ar[idx] = phi * self._ar[idx] + np.sqrt(1 - phi**2) * shock
        true = (self.level(t_end, idx) + self._act[idx] + self._ar[idx]
                + self._episode_offset(t_end, idx))
        true[:, 1] = np.clip(true[:, 1], 30.0, true[:, 0] - 15.0)
        sig = self._waveform(t0, idx, true, level)
        readings = self._cuff(t0, t_end, idx, true)
        err = self._rng.normal(0.0, 1.0, (len(idx), 2)) * [3.0, 2.0] if self._noise else 0.0
        return SignalBatch(t_end, true + err, sig, self.fs, self.units, started,
                           readings=readings)

    def _waveform(self, t0: float, idx: npt.NDArray[np.intp], true: FloatArray,
                  level: npt.NDArray[np.int8]) -> npt.NDArray[np.float32]:
        """The arterial pulse between the previous window's pressures and this one's."""
        prev = np.where(np.isnan(self._last[idx]), true, self._last[idx])
        self._last[idx] = true
        p = self.patients
        hr = p.hr_rest[idx] + np.array([-6.0, 0.0, 20.0, 50.0])[level]
        ramp = (np.arange(1, self.samples + 1) / self.samples)[None, :]
        sys = prev[:, :1] + (true[:, :1] - prev[:, :1]) * ramp
        dia = prev[:, 1:] + (true[:, 1:] - prev[:, 1:]) * ramp
        steps = (hr / 60.0 / self.fs)[:, None] * np.arange(self.samples)
        phase = (self._phase[idx, None] + steps) % 1.0
        self._phase[idx] = (self._phase[idx] + hr / 60.0 * self.window_s) % 1.0
        shape = self._shape[(phase * len(self._shape)).astype(np.intp)]
        out: npt.NDArray[np.float32] = (dia + (sys - dia) * shape).astype(np.float32)
        return out

    def _cuff(self, t0: float, t_end: float, idx: npt.NDArray[np.intp], true: FloatArray
              ) -> npt.NDArray[np.void]:
        """Cuff readings due in the window (every 30 min awake, 60 min asleep)."""
        due = np.flatnonzero(self._next_cuff[idx] < t_end)
        dev = idx[due]
        out = np.empty(len(due), READING_DTYPE)
        out["row"], out["t_s"] = due, np.maximum(self._next_cuff[dev], t0)
        err = self._rng.standard_normal((len(due), 2)) * [4.0, 3.0] if self._noise else 0.0
        reading = true[due] + err
        out["sys_mmhg"], out["dia_mmhg"] = reading[:, 0], reading[:, 1]
        awake = self.activity.awake_fraction(t_end, dev) > 0.5
        period = np.where(awake, _CUFF_AWAKE_S, _CUFF_ASLEEP_S)
        self._next_cuff[dev] = np.maximum(self._next_cuff[dev] + period, t_end)
        return out
