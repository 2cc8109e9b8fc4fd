"""Daily activity schedules: sleep, rest, walking and exercise for every patient.

Each patient sleeps from ``bed_h`` to ``wake_h`` (their own times, see
:mod:`devices.physiology.cohort`); during the day they rest, with a few walking bouts of 10-40
minutes and, on about 40 % of days, one exercise session of 30-60 minutes (a sketch of
accelerometer studies of adults: Troiano et al., Med Sci Sports Exerc 2008, most adults
accumulate under 30 min/day of moderate activity). A day's bouts for all patients are drawn
from the day's own stream, so any day can be computed on its own, in any order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from devices.physiology.cohort import FloatArray, Patients

SLEEP, REST, WALK, EXERCISE = 0, 1, 2, 3
"""Activity levels, in increasing order of exertion."""
LEVEL_NAMES = ("sleep", "rest", "walk", "exercise")
_DAY_S = 86400.0
_WALK_BOUTS = 4
_TRANSITION_H = 0.4
"""Width (hours) of the smoothed sleep/wake transition used for slow signals (BP)."""

DayBlocks = tuple[FloatArray, FloatArray, npt.NDArray[np.int8]]


class ActivitySchedule:
    """Activity levels of a patient table over simulated time.

    Args:
        patients: the patients (their bed and wake times are used).
        day_rng: ``day -> generator`` for that day's bouts (e.g. ``lambda d: seeds.rng(
            "physiology", "ecg", "activity", d)``).
        start_hour: clock time of simulated second 0.
    """

    def __init__(self, patients: Patients, day_rng: Callable[[int], np.random.Generator],
                 start_hour: float = 8.0) -> None:
        self.patients = patients
        self._day_rng = day_rng
        self._start_s = start_hour * 3600.0
        self._days: dict[int, DayBlocks] = {}

    def _clock(self, t: float) -> tuple[int, float]:
        """(day number, hour of day) of simulated time ``t``."""
        absolute = self._start_s + t
        day = int(absolute // _DAY_S)
        return day, (absolute - day * _DAY_S) / 3600.0

    def _blocks(self, day: int) -> DayBlocks:
        """The day's bouts for every patient: start hours, end hours, levels ``(n, K)``."""
        if day not in self._days:
            rng, p = self._day_rng(day), self.patients
            n, k = p.n, _WALK_BOUTS + 1
            span = (p.bed_h - 0.5) - (p.wake_h + 0.5)
            start = p.wake_h[:, None] + 0.5 + rng.random((n, k)) * span[:, None]
            minutes = np.concatenate([rng.uniform(10, 40, (n, k - 1)),
                                      rng.uniform(30, 60, (n, 1))], axis=1)
            level = np.full((n, k), WALK, dtype=np.int8)
            level[:, -1] = np.where(rng.random(n) < 0.4, EXERCISE, REST)
            if len(self._days) > 3:
                self._days.pop(min(self._days))
            self._days[day] = (start, start + minutes / 60.0, level)
        return self._days[day]

    def since_wake(self, t: float, idx: npt.NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        """Hours since waking (signed around mid-sleep) and the length of the waking day."""
        _, hour = self._clock(t)
        wake, bed = self.patients.wake_h[idx], self.patients.bed_h[idx]
        day_len = (bed - wake) % 24.0
        s = (hour - wake) % 24.0
        s = np.where(s < day_len + (24.0 - day_len) / 2.0, s, s - 24.0)
        return s, day_len

    def level(self, t: float, idx: npt.NDArray[np.intp]) -> npt.NDArray[np.int8]:
        """Activity level (SLEEP..EXERCISE) of patients ``idx`` at time ``t``."""
        day, hour = self._clock(t)
        s, day_len = self.since_wake(t, idx)
        start, end, lev = self._blocks(day)
        inside = (start[idx] <= hour) & (hour < end[idx])
        busy = np.max(np.where(inside, lev[idx], REST), axis=1).astype(np.int8)
        awake = (s >= 0.0) & (s < day_len)
        return np.where(awake, busy, SLEEP).astype(np.int8)

    def awake_fraction(self, t: float, idx: npt.NDArray[np.intp]) -> FloatArray:
        """A smooth 0 (asleep) .. 1 (awake) weight with ~0.4 h transitions, for slow signals."""
        s, day_len = self.since_wake(t, idx)
        rise = 1.0 / (1.0 + np.exp(-s / _TRANSITION_H * 4.0))
        fall = 1.0 / (1.0 + np.exp(-(day_len - s) / _TRANSITION_H * 4.0))
        out: FloatArray = rise * fall
        return out
