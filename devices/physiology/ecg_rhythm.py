"""The beat-level rhythm process: when each beat falls and what kind of beat it is.

Work is per *beat*, vectorised across devices: one step computes the next beat of every device
in the batch, and a window takes as many steps as its fastest device has beats (about 13 at
75 bpm, 35 in ventricular tachycardia) - never a loop over samples or devices.

The sinus node fires every ``60 / HR`` seconds, modulated by respiratory sinus arrhythmia
(0.15-0.4 Hz, a few % of RR, falling with age) and Mayer waves (about 0.1 Hz) (Task Force of
the ESC and NASPE, Circulation 1996, HRV standards), plus 1 % beat-to-beat jitter. Ectopy:

* PVC: coupling interval 0.45-0.6 x RR, no P wave; the sinus node is not reset, so the next
  sinus beat is blocked and the pause is fully compensatory (two RR intervals);
* PAC: coupling about 0.7 x RR; it resets the sinus node (non-compensatory pause);
* couplet: two PVCs in a row; bigeminy: every other beat a PVC; "pvc": frequent isolated PVCs
  (15 % of sinus beats followed by one);
* AF: ventricular response 85-125 bpm, RR irregularly irregular (log-normal, CV about 0.2;
  Tateno & Glass, Med Biol Eng Comput 2001 report RR CV 0.15-0.3 in AF);
* VT: a run of V beats at 140-220 bpm (three or more consecutive; Zipes et al. 2006 guideline);
* sinus bradycardia (< 50 bpm here 38-48) and tachycardia (> 100 bpm, here 105-145).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from devices.physiology.cohort import FloatArray, IntArray
from devices.physiology.ecg_templates import A_CLS, E_CLS, N_CLS, S_CLS, V_CLS
from devices.physiology.episodes import EpisodeScheduler

REFRACTORY_S = 0.25
"""A sinus impulse this soon after a ventricular beat finds the ventricles refractory."""


@dataclass(eq=False)
class RhythmState:
    """Per-device rhythm state, carried from window to window (arrays of the kind's size)."""

    r_prev: FloatArray
    c_prev: IntArray
    rr_prev: FloatArray
    r_next: FloatArray
    c_next: IntArray
    rr_next: FloatArray
    sinus_next: FloatArray
    ectopic_left: IntArray
    hr: FloatArray
    rsa: FloatArray
    f_resp: FloatArray
    phi_resp: FloatArray
    phi_lf: FloatArray
    coupling: FloatArray


def initial_state(hr: FloatArray, age: FloatArray, rng: np.random.Generator) -> RhythmState:
    """A sinus rhythm already running at time 0 (the first beat falls before 0)."""
    n = len(hr)
    rr = 60.0 / hr
    r_prev = -rng.random(n) * rr
    rsa = np.clip(0.09 - 0.0008 * age, 0.015, 0.08) * np.exp(0.3 * rng.standard_normal(n))
    return RhythmState(
        r_prev=r_prev, c_prev=np.zeros(n, np.intp), rr_prev=rr.copy(), r_next=r_prev + rr,
        c_next=np.zeros(n, np.intp), rr_next=rr.copy(), sinus_next=r_prev + 2 * rr,
        ectopic_left=np.zeros(n, np.intp), hr=hr.copy(), rsa=rsa,
        f_resp=rng.uniform(0.2, 0.3, n), phi_resp=rng.uniform(0, 2 * np.pi, n),
        phi_lf=rng.uniform(0, 2 * np.pi, n), coupling=rng.uniform(0.45, 0.6, n))


@dataclass(eq=False)
class Beats:
    """A window's beats per device row: R times (s, NaN past the end), classes, RR before."""

    r: FloatArray
    cls: IntArray
    rr_in: FloatArray


class RhythmStepper:
    """Draws the beats of one window for a batch of devices.

    Args:
        state: the kind's rhythm state (updated in place for the rows stepped).
        episodes: the kind's episode scheduler (read only).
        rng: the rhythm's random stream.
    """

    def __init__(self, state: RhythmState, episodes: EpisodeScheduler,
                 rng: np.random.Generator) -> None:
        self.s = state
        self.ep = episodes
        self._rng = rng

    def window(self, t_end: float, idx: npt.NDArray[np.intp], hr: FloatArray) -> Beats:
        """Beats from the last beat before the window until the first beat after ``t_end``.

        Column 0 is the last beat at or before the previous window's end, column 1 the beat
        after it; the last valid column of each row is the first beat after ``t_end``.
        """
        s = self.s
        last_r, last_c, sinus = s.r_next[idx], s.c_next[idx], s.sinus_next[idx]
        left = s.ectopic_left[idx]
        cols_r, cols_c = [s.r_prev[idx], last_r.copy()], [s.c_prev[idx], last_c.copy()]
        cols_rr = [s.rr_prev[idx], s.rr_next[idx]]
        need = last_r <= t_end
        while need.any():
            r, c, sinus_new, left_new = self._step(idx, last_r, last_c, sinus, left, hr)
            rr = r - last_r
            cols_r.append(np.where(need, r, np.nan))
            cols_c.append(np.where(need, c, 0))
            cols_rr.append(np.where(need, rr, np.nan))
            last_r, last_c = np.where(need, r, last_r), np.where(need, c, last_c)
            sinus, left = np.where(need, sinus_new, sinus), np.where(need, left_new, left)
            need = last_r <= t_end
        beats = Beats(np.stack(cols_r, 1), np.stack(cols_c, 1).astype(np.intp),
                      np.stack(cols_rr, 1))
        self._carry(idx, beats, t_end, sinus, left)
        return beats

    def _carry(self, idx: npt.NDArray[np.intp], b: Beats, t_end: float, sinus: FloatArray,
               left: IntArray) -> None:
        """Keep the last beat at or before ``t_end`` and the one after it for the next window."""
        rows = np.arange(len(idx))
        after = np.sum(~np.isnan(b.r), axis=1) - 1  # the last valid column: R > t_end
        s = self.s
        s.r_next[idx], s.c_next[idx], s.rr_next[idx] = (b.r[rows, after], b.cls[rows, after],
                                                        b.rr_in[rows, after])
        s.r_prev[idx], s.c_prev[idx], s.rr_prev[idx] = (b.r[rows, after - 1],
                                                        b.cls[rows, after - 1],
                                                        b.rr_in[rows, after - 1])
        s.sinus_next[idx], s.ectopic_left[idx] = sinus, left

    def _sinus_rr(self, idx: npt.NDArray[np.intp], t: FloatArray, hr: FloatArray,
                  z: FloatArray) -> FloatArray:
        """Sinus RR interval (s) at time ``t``: 60/HR with RSA, Mayer waves and jitter."""
        s = self.s
        resp = np.sin(2 * np.pi * s.f_resp[idx] * t + s.phi_resp[idx])
        mayer = np.sin(2 * np.pi * 0.1 * t + s.phi_lf[idx])
        out: FloatArray = (60.0 / hr) * (1.0 + s.rsa[idx] * resp + 0.025 * mayer + 0.01 * z)
        return out

    def _step(self, idx: npt.NDArray[np.intp], t: FloatArray, last_c: IntArray,
              sinus: FloatArray, left: IntArray, hr_row: FloatArray
              ) -> tuple[FloatArray, IntArray, FloatArray, IntArray]:
        """The next beat after the beats at ``t``: its time, class, and the new node state."""
        ep, sev = self.ep, self.ep.severity[idx]
        z = self._rng.standard_normal((len(idx), 3))
        act = {name: ep.active(name, t, idx) for name in
               ("brady", "tachy", "af", "vt", "pac", "pvc_single", "pvc_couplet", "bigeminy",
                "pvc", "st_elevation")}
        hr = np.where(act["brady"], 38.0 + 10.0 * sev,
                      np.where(act["tachy"], 105.0 + 40.0 * sev, hr_row))
        rr = self._sinus_rr(idx, t, hr, z[:, 0])
        sinus = np.where(sinus <= t + REFRACTORY_S, sinus + rr, sinus)
        start = ep.start[idx]
        couple = self.s.coupling[idx] * rr
        one_shot = (act["pvc_single"] | act["pvc_couplet"]) & (left > 0) & (t + couple >= start)
        v = one_shot | ((act["bigeminy"] | (act["pvc"] & (z[:, 1] < -1.04)))
                        & (last_c != V_CLS))  # P(z < -1.04) = 15 %
        s_go = act["pac"] & (left > 0) & (t + 0.7 * rr >= start) & ~v
        r = np.where(v, t + couple, np.where(s_go, t + 0.7 * rr, sinus))
        c = np.where(v, V_CLS, np.where(s_go, S_CLS, np.where(act["st_elevation"], E_CLS, N_CLS)))
        left = left - (one_shot | s_go)
        # The sinus node: reset by an atrial beat; its next impulse after a ventricular beat
        # finds the AV node refractory (concealed retrograde conduction) and is blocked, so
        # the pause is compensatory.
        sinus = np.where(s_go | (~v & (r >= sinus)), r + rr, sinus)
        sinus = np.where(v & (sinus - r < rr), sinus + rr, sinus)
        af_rr = 60.0 / (85.0 + 40.0 * sev) * np.exp(0.2 * z[:, 2] - 0.02)
        vt_rr = 60.0 / (140.0 + 80.0 * sev) * (1.0 + 0.02 * z[:, 2])
        for name, rr_x, cls in (("af", af_rr, A_CLS), ("vt", vt_rr, V_CLS)):
            on = act[name]
            r = np.where(on, t + np.maximum(rr_x, 0.27), r)
            c = np.where(on, cls, c)
            sinus = np.where(on, r + rr, sinus)
        return r, c.astype(np.intp), sinus, left
