"""Clinical and sensor episodes: when they start, how long they last, and the ground truth.

Each device has at most one episode of its kind's models at a time. At every window a device
that is free draws, as a Poisson process, whether an episode starts inside the window, which
kind (in proportion to the rates) and its duration (log-normal). Every episode that starts is
returned as a ground-truth record ``(device, kind, start_s, end_s)`` (:data:`EPISODE_DTYPE`)
so that detection on the device and in the cloud can be scored against it.

Rates are *demonstration rates* (per device-hour, before the patient's risk and the cohort's
multipliers): high enough that a two-hour run of a thousand devices shows every kind, far above
epidemiology, which the docstrings of the models cite for shape, not frequency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.physiology.cohort import CohortParams, FloatArray
from devices.physiology.errors import PhysiologyError

EPISODE_DTYPE = np.dtype([("device", np.int64), ("kind", "U32"),
                          ("start_s", np.float64), ("end_s", np.float64)])
"""Ground truth of one episode: device index within its kind, kind name, start, end (s)."""
NONE = -1


@dataclass(frozen=True, slots=True)
class EpisodeSpec:
    """One episode kind: its base rate and duration distribution.

    Attributes:
        name: the kind's name as it appears in ground truth (e.g. ``"af"``).
        rate_per_h: demonstration rate per device-hour at risk 1.
        median_s, sigma: log-normal duration (median seconds, shape).
        min_s, max_s: duration limits.
        risk_scaled: whether the patient's risk multiplies the rate (not for sensor faults).
    """

    name: str
    rate_per_h: float
    median_s: float
    sigma: float = 0.0
    min_s: float = 0.0
    max_s: float = float("inf")
    risk_scaled: bool = True


def empty_episodes() -> npt.NDArray[np.void]:
    """An empty ground-truth array."""
    return np.empty(0, dtype=EPISODE_DTYPE)


class EpisodeScheduler:
    """Per-device episode state for ``n`` devices and the kinds ``specs``.

    Args:
        specs: the episode kinds this model can show.
        n: number of devices.
        risk: per-device rate multiplier (the patient's cardiovascular risk), shape ``(n,)``.
        cohort: the cohort (global and per-kind rate multipliers).
        rng: the scheduler's own stream.
        forced: name of a kind every device shows for the whole run (rates then unused).

    Raises:
        PhysiologyError: for an unknown forced kind.
    """

    def __init__(self, specs: Sequence[EpisodeSpec], n: int, risk: FloatArray,
                 cohort: CohortParams, rng: np.random.Generator, forced: str | None = None
                 ) -> None:
        self.specs = tuple(specs)
        self.names = tuple(s.name for s in self.specs)
        self._rng = rng
        base = np.array([s.rate_per_h * cohort.rate_multiplier(s.name) for s in self.specs])
        scaled = np.array([s.risk_scaled for s in self.specs])
        self._rates = np.where(scaled[None, :], base[None, :] * risk[:, None], base[None, :])
        self.kind = np.full(n, NONE, dtype=np.intp)
        self.start = np.zeros(n)
        self.end = np.zeros(n)
        self.severity = np.zeros(n)
        self._pending: list[npt.NDArray[np.void]] = []
        if forced is not None:
            if forced not in self.names:
                raise PhysiologyError(f"unknown episode kind {forced!r} (known: "
                                      f"{', '.join(self.names)})")
            self._rates[:] = 0.0
            self.inject(np.arange(n), forced, 0.0, float("inf"), severity=0.5)

    def code(self, name: str) -> int:
        """The integer code of a kind (its index in ``specs``)."""
        return self.names.index(name)

    def inject(self, devices: npt.NDArray[np.intp], name: str, start: float, duration: float,
               severity: float = 0.5) -> None:
        """Schedule an episode of kind ``name`` on ``devices`` (for scenarios and tests).

        It replaces whatever episode those devices had, and is reported by the ``step`` whose
        window it starts in (or the next ``step`` if that window has passed).
        """
        code = self.code(name)
        self.kind[devices] = code
        self.start[devices] = start
        self.end[devices] = start + duration
        self.severity[devices] = severity
        self._pending.append(self._records(devices, self.kind[devices], self.start[devices],
                                           self.end[devices]))

    def _records(self, devices: npt.NDArray[np.intp], codes: npt.NDArray[np.intp],
                 start: FloatArray, end: FloatArray) -> npt.NDArray[np.void]:
        out = np.empty(len(devices), dtype=EPISODE_DTYPE)
        out["device"], out["start_s"], out["end_s"] = devices, start, end
        out["kind"] = np.asarray(self.names, dtype="U32")[codes] if len(codes) else []
        return out

    def step(self, t0: float, t1: float, idx: npt.NDArray[np.intp]) -> npt.NDArray[np.void]:
        """Start new episodes in the window ``[t0, t1)`` for devices ``idx``.

        Returns:
            Ground truth of the episodes of ``idx`` that start in this window (and of injected
            ones not yet reported), in device order.
        """
        free = idx[(self.kind[idx] == NONE) | (self.end[idx] <= t0)]
        self.kind[free] = NONE
        rates = self._rates[free]
        total = rates.sum(axis=1)
        draw = self._rng.random((len(free), 3))
        starts = draw[:, 0] < -np.expm1(-total * (t1 - t0) / 3600.0)
        who = free[starts]
        cum = np.cumsum(rates[starts], axis=1)
        pick = (cum < (draw[starts, 1] * total[starts])[:, None]).sum(axis=1)
        pick = np.minimum(pick, len(self.specs) - 1)
        begin = t0 + draw[starts, 2] * (t1 - t0)
        duration = self._durations(pick)
        self.kind[who], self.start[who], self.end[who] = pick, begin, begin + duration
        self.severity[who] = self._rng.random(len(who))
        return self._collect(t1, idx, self._records(who, pick, begin, begin + duration))

    def _durations(self, codes: npt.NDArray[np.intp]) -> FloatArray:
        med = np.array([s.median_s for s in self.specs])[codes]
        sig = np.array([s.sigma for s in self.specs])[codes]
        lo = np.array([s.min_s for s in self.specs])[codes]
        hi = np.array([s.max_s for s in self.specs])[codes]
        out: FloatArray = np.clip(med * np.exp(sig * self._rng.standard_normal(len(codes))),
                                  lo, hi)
        return out

    def _collect(self, t1: float, idx: npt.NDArray[np.intp], new: npt.NDArray[np.void]
                 ) -> npt.NDArray[np.void]:
        """New records plus injected ones of ``idx`` that have started, sorted by device."""
        due, keep = [new], []
        for rec in self._pending:
            ready = (rec["start_s"] < t1) & np.isin(rec["device"], idx)
            due.append(rec[ready])
            if (~ready).any():
                keep.append(rec[~ready])
        self._pending = keep
        out = np.concatenate(due)
        return out[np.argsort(out["device"], kind="stable")]

    def active(self, name: str, t: FloatArray | float, rows: npt.NDArray[np.intp]
               ) -> npt.NDArray[np.bool_]:
        """Which devices ``rows`` are in an episode of kind ``name`` at time(s) ``t``."""
        code = self.code(name)
        out: npt.NDArray[np.bool_] = ((self.kind[rows] == code) & (self.start[rows] <= t)
                                      & (t < self.end[rows]))
        return out
