"""Synthetic single-lead ECG for a fleet of patches: beats, noise and episodes, in mV.

A window is rendered for all devices of the batch at once: the rhythm process
(:mod:`devices.physiology.ecg_rhythm`) gives each device's beats; every sample is then mapped
to "its" beat (the beat whose extent holds it) with one ``np.repeat`` over per-beat segments,
and read from the template table (:mod:`devices.physiology.ecg_templates`) with one gather.
On top come a per-patient gain (R amplitude 0.5-2.5 mV), baseline wander (respiration and
slower drift, 0.03-0.3 mV by activity), muscle and motion noise (EMG 20+ Hz and motion
0.5-8 Hz, from a pre-filtered noise bank read at random offsets), f-waves in atrial
fibrillation (4-9 Hz, 0.05-0.12 mV: Bollmann et al., Europace 2006) and electrode-off
dropouts (flat line). Everything carries over between windows, so a device's signal is
continuous: its beats, their templates, the wander phase and amplitude.

Heart rate follows the activity schedule: asleep 0.88 x rest, walking rest + 25 % of the heart
rate reserve, exercise rest + 60 % (Karvonen), with a 45-s lag; the reserve uses Tanaka's
maximum. ``hr_bpm`` in the telemetry is measured from the synthetic beats of the window.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from devices.physiology import ecg_rhythm as rh
from devices.physiology.activity import ActivitySchedule
from devices.physiology.batch import BEAT_DTYPE, SignalBatch
from devices.physiology.cohort import CohortParams, FloatArray, make_patients
from devices.physiology.ecg_templates import (
    A_CLS,
    AAMI_OF_CLASS,
    PHASES,
    POST_S,
    PRE_S,
    V_CLS,
    TemplateBank,
)
from devices.physiology.episodes import EpisodeScheduler, EpisodeSpec
from devices.physiology.errors import PhysiologyError
from twin.core.seeds import SeedTree

ECG_EPISODES = (
    EpisodeSpec("pvc_single", 0.6, 3.0),
    EpisodeSpec("pvc_couplet", 0.15, 4.0),
    EpisodeSpec("bigeminy", 0.05, 120.0, 0.7, 20.0, 1800.0),
    EpisodeSpec("pvc", 0.05, 300.0, 0.7, 30.0, 3600.0),
    EpisodeSpec("pac", 0.6, 3.0),
    EpisodeSpec("af", 0.02, 1800.0, 1.0, 60.0, 6 * 3600.0),
    EpisodeSpec("vt", 0.01, 6.0, 0.8, 1.5, 60.0),
    EpisodeSpec("brady", 0.03, 600.0, 0.6, 60.0, 3600.0),
    EpisodeSpec("tachy", 0.03, 600.0, 0.6, 60.0, 3600.0),
    EpisodeSpec("st_elevation", 0.005, 1200.0, 0.5, 120.0, 7200.0),
    EpisodeSpec("electrode_off", 0.05, 20.0, 1.0, 2.0, 300.0, risk_scaled=False),
)
"""ECG episode kinds with demonstration rates (per device-hour) and durations."""
RHYTHMS = ("sinus", *(s.name for s in ECG_EPISODES if s.name != "electrode_off"))
"""Rhythms a source can be forced to show for the whole run (``--rhythm``)."""
ONE_SHOT = {"pvc_single": 1, "pvc_couplet": 2, "pac": 1}
_NOISE_SD = np.array([0.008, 0.012, 0.04, 0.08], np.float32)   # by activity level, mV
_WANDER = np.array([0.03, 0.05, 0.15, 0.25], np.float32)        # by activity level, mV
_EDGE_S = 0.02  # keep a beat's extent this far inside its template's span
_BANK = 1 << 17


class EcgSource:
    """ECG windows for ``n_devices`` patches.

    Args:
        n_devices: devices of the kind.
        cohort: the patients' population.
        seeds: the run's seed tree (streams under ``("physiology", "ecg", ...)``).
        fs: sampling rate (Hz); ``fs * window_s`` must be a whole number.
        window_s: window length (s).
        start_hour: clock time of simulated second 0 (sets sleep and activity).
        rhythm: force one rhythm on every device for the whole run (see :data:`RHYTHMS`).
        hr_bpm: force every device's sinus rate (no activity or sleep modulation).
        noise: add wander, muscle and motion noise.

    Raises:
        PhysiologyError: for a bad rate, window, rhythm or heart rate.
    """

    units = "mV"

    def __init__(self, n_devices: int, cohort: CohortParams, seeds: SeedTree, fs: float = 250.0,
                 window_s: float = 10.0, start_hour: float = 8.0, *, rhythm: str | None = None,
                 hr_bpm: float | None = None, noise: bool = True) -> None:
        self.samples = _samples(fs, window_s)
        if fs < 100.0:
            raise PhysiologyError(f"ECG needs fs >= 100 Hz, got {fs}")
        if rhythm is not None and rhythm not in RHYTHMS:
            raise PhysiologyError(f"unknown rhythm {rhythm!r} (known: {', '.join(RHYTHMS)})")
        if hr_bpm is not None and not 25.0 <= hr_bpm <= 250.0:
            raise PhysiologyError(f"hr_bpm must be in 25..250, got {hr_bpm}")
        self.n, self.fs, self.window_s, self._noise = n_devices, fs, window_s, noise
        self._hr_forced = hr_bpm
        rng = seeds.rng("physiology", "ecg", "patients")
        self.patients = make_patients(n_devices, cohort, seeds.rng("physiology", "ecg", "cohort"))
        self.activity = ActivitySchedule(
            self.patients, lambda d: seeds.rng("physiology", "ecg", "activity", d), start_hour)
        forced = None if rhythm in (None, "sinus") else rhythm
        cohort_eff = cohort if rhythm is None else _no_episodes(cohort)
        self.episodes = EpisodeScheduler(ECG_EPISODES, n_devices, self.patients.risk,
                                         cohort_eff, seeds.rng("physiology", "ecg", "episodes"),
                                         forced)
        self.bank = TemplateBank(fs, seeds.rng("physiology", "ecg", "morphology"),
                                 max_window_samples=self.samples)
        hr0 = self.patients.hr_rest if hr_bpm is None else np.full(n_devices, float(hr_bpm))
        self.state = rh.initial_state(hr0, self.patients.age, rng)
        self._stepper = rh.RhythmStepper(self.state, self.episodes,
                                             seeds.rng("physiology", "ecg", "rhythm"))
        self._variant = rng.integers(0, self.bank.n_variants, n_devices)
        self._gain = np.clip(1.1 * np.exp(0.25 * rng.standard_normal(n_devices)), 0.5, 2.5)
        self._f_wave = np.stack([rng.uniform(4.5, 8.5, n_devices), rng.uniform(0.05, 0.12,
                                 n_devices), rng.uniform(0, 2 * np.pi, n_devices)])
        self._wander = np.stack([rng.uniform(0.03, 0.07, n_devices), rng.uniform(0, 2 * np.pi,
                                 n_devices), rng.uniform(0, 2 * np.pi, n_devices)])
        self._amp = _WANDER[1] * np.ones(n_devices, np.float32)
        self._noise_rng = seeds.rng("physiology", "ecg", "noise")
        self._noise_bank = _noise_bank(fs, self.samples, seeds.rng("physiology", "ecg", "bank"))
        self._step_k = _coarse_step(self.samples, fs)

    # ------------------------------------------------------------------ the window

    def window(self, t_end: float, idx: npt.NDArray[np.intp]) -> SignalBatch:
        """The window ``[t_end - window_s, t_end)`` of devices ``idx``.

        Args:
            t_end: the window's end, simulated seconds since the run started.
            idx: device indices within the kind (any subset, any order, no repeats).

        Returns:
            Values ``(len(idx), 1)`` (``hr_bpm``), the ECG ``(len(idx), samples)`` in mV
            (float32), annotated beats and the episodes that started in the window.
        """
        idx = np.asarray(idx, dtype=np.intp)
        t0 = t_end - self.window_s
        if not len(idx):
            return SignalBatch(t_end, np.empty((0, 1)), np.empty((0, self.samples), np.float32),
                               self.fs, self.units, self.episodes.step(t0, t_end, idx))
        self._catch_up(t0, idx)
        started = self.episodes.step(t0, t_end, idx)
        for name, count in ONE_SHOT.items():
            who = started["device"][started["kind"] == name]
            self.state.ectopic_left[who] = count
        level = self.activity.level(t_end - self.window_s / 2, idx)
        hr = self._heart_rate(idx, level)
        beats = self._stepper.window(t_end, idx, hr)
        a0 = round(t0 * self.fs)
        sig = self._render(beats, idx, a0)
        if self._noise:
            self._add_noise(sig, idx, level, t0)
        self._add_f_waves(sig, idx, t0)
        off = self._electrode_off(sig, idx, t0)
        table, values = self._annotate(beats, a0, t0, off)
        return SignalBatch(t_end, values, sig, self.fs, self.units, started, table)

    def _catch_up(self, t0: float, idx: npt.NDArray[np.intp]) -> None:
        """After a long gap between calls, restart the rhythm near ``t0`` (no beats skipped)."""
        s = self.state
        late = idx[s.r_next[idx] < t0 - 2 * self.window_s]
        if len(late):
            shift = np.floor((t0 - s.r_next[late]) / s.rr_next[late]) * s.rr_next[late]
            for arr in (s.r_prev, s.r_next, s.sinus_next):
                arr[late] += shift

    def _heart_rate(self, idx: npt.NDArray[np.intp], level: npt.NDArray[np.int8]) -> FloatArray:
        """This window's sinus rate: lagged towards the activity's target (Karvonen)."""
        if self._hr_forced is not None:
            return np.full(len(idx), self._hr_forced)
        p = self.patients
        reserve = p.hr_max[idx] - p.hr_rest[idx]
        frac = np.array([0.0, 0.0, 0.25, 0.6])[level]
        target = np.where(level == 0, 0.88 * p.hr_rest[idx], p.hr_rest[idx] + frac * reserve)
        hr: FloatArray = self.state.hr[idx]
        hr = hr + (target - hr) * (1.0 - np.exp(-self.window_s / 45.0))
        self.state.hr[idx] = hr
        return hr

    def _render(self, b: rh.Beats, idx: npt.NDArray[np.intp], a0: int
                ) -> npt.NDArray[np.float32]:
        """Every sample from its beat's template row (one repeat, one gather)."""
        fs, size = self.fs, self.samples
        valid = ~np.isnan(b.r)
        r = np.where(valid, b.r, np.inf)
        rs = np.where(valid, b.r * fs, 0.0)
        ri = np.floor(rs).astype(np.int64)
        phase = np.minimum(((rs - ri) * PHASES).astype(np.intp), PHASES - 1)
        row = self.bank.row_start(self._variant[idx, None], b.cls, self.bank.rr_bin(
            np.where(valid, b.rr_in, 1.0)), phase)
        with np.errstate(invalid="ignore"):
            gap_next = np.nan_to_num(np.diff(r, axis=1, append=np.inf), nan=np.inf)
        # The next beat's extent starts 0.25 s before its R (P wave) or 0.1 s (A, V: no P).
        no_p = np.isin(np.roll(b.cls, -1, axis=1), (A_CLS, V_CLS))
        ahead = np.where(no_p, np.maximum(gap_next - 0.1, 0.6 * gap_next), 0.6 * gap_next)
        bound = r + np.minimum(ahead, POST_S - _EDGE_S)
        prev_bound = np.concatenate([np.full((len(r), 1), -np.inf), bound[:, :-1]], axis=1)
        begin = np.maximum(prev_bound, r - (PRE_S - _EDGE_S))

        def local(x: FloatArray) -> npt.NDArray[np.int64]:
            return np.clip(np.ceil(np.where(np.isfinite(x), x * fs - a0, size)), 0,
                           size).astype(np.int64)

        begin_i, end_i = local(begin), local(bound)
        begin_i[:, 0] = 0
        points = np.stack([begin_i, end_i], axis=2).reshape(len(r), -1)
        lengths = np.diff(points, axis=1, append=size)
        bases = np.stack([row - (ri - a0), -end_i], axis=2).reshape(len(r), -1)
        flat = np.repeat(bases.ravel().astype(np.int32), lengths.ravel()).reshape(len(r), size)
        flat += np.arange(size, dtype=np.int32)
        sig = self.bank.table[flat]
        sig *= self._gain[idx, None].astype(np.float32)
        return sig

    def _add_noise(self, sig: npt.NDArray[np.float32], idx: npt.NDArray[np.intp],
                   level: npt.NDArray[np.int8], t0: float) -> None:
        """Muscle/motion noise from the bank and baseline wander, continuous in phase."""
        m, size = sig.shape
        start = self._noise_rng.integers(0, _BANK, m)
        view = np.lib.stride_tricks.sliding_window_view(self._noise_bank, size)
        noise = view[start]
        noise *= _NOISE_SD[level][:, None]
        sig += noise
        k = self._step_k
        coarse_t = t0 + np.arange(size // k + 1) * (k / self.fs)
        f, phi1, phi2 = self._wander[:, idx]
        w = (0.7 * np.sin(2 * np.pi * self.state.f_resp[idx, None] * coarse_t + phi1[:, None])
             + 0.5 * np.sin(2 * np.pi * f[:, None] * coarse_t + phi2[:, None]))
        new_amp = _WANDER[level]
        ramp = np.linspace(0.0, 1.0, size // k + 1)
        amp = self._amp[idx, None] + (new_amp - self._amp[idx])[:, None] * ramp
        self._amp[idx] = new_amp
        w = (w * amp).astype(np.float32)
        frac = (np.arange(k, dtype=np.float32) / k)
        view3 = sig.reshape(m, size // k, k)
        view3 += w[:, :-1, None] + (w[:, 1:] - w[:, :-1])[:, :, None] * frac

    def _add_f_waves(self, sig: npt.NDArray[np.float32], idx: npt.NDArray[np.intp],
                     t0: float) -> None:
        """Fibrillatory waves on the devices in AF during (part of) the window."""
        ep = self.episodes
        t1 = t0 + self.window_s
        rows = np.flatnonzero((ep.kind[idx] == ep.code("af")) & (ep.start[idx] < t1)
                              & (ep.end[idx] > t0))
        if not len(rows):
            return
        dev = idx[rows]
        t = t0 + np.arange(self.samples) / self.fs
        f, amp, phi = self._f_wave[:, dev]
        inside = (t >= ep.start[dev, None]) & (t < ep.end[dev, None])
        wave = amp[:, None] * np.sin(2 * np.pi * f[:, None] * t + phi[:, None]) * inside
        sig[rows] += wave.astype(np.float32)

    def _electrode_off(self, sig: npt.NDArray[np.float32], idx: npt.NDArray[np.intp],
                       t0: float) -> npt.NDArray[np.bool_] | None:
        """Flatten electrode-off spans; return the (rows, samples) mask, or None if none."""
        ep = self.episodes
        t1 = t0 + self.window_s
        rows = np.flatnonzero((ep.kind[idx] == ep.code("electrode_off"))
                              & (ep.start[idx] < t1) & (ep.end[idx] > t0))
        if not len(rows):
            return None
        t = t0 + np.arange(self.samples) / self.fs
        dev = idx[rows]
        inside = (t >= ep.start[dev, None]) & (t < ep.end[dev, None])
        mask = np.zeros(sig.shape, dtype=bool)
        mask[rows] = inside
        sig[mask] = 0.0
        return mask

    def _annotate(self, b: rh.Beats, a0: int, t0: float,
                  off: npt.NDArray[np.bool_] | None) -> tuple[npt.NDArray[np.void], FloatArray]:
        """Beats whose R sample is in the window (not in a dropout) and the measured HR."""
        valid = ~np.isnan(b.r)
        sample = np.where(valid, np.rint(np.where(valid, b.r, 0.0) * self.fs) - a0, -1)
        sample = sample.astype(np.int64)
        keep = (sample >= 0) & (sample < self.samples)
        if off is not None:
            rows_k, cols_k = np.nonzero(keep)
            keep[rows_k, cols_k] = ~off[rows_k, sample[rows_k, cols_k]]
        rows, cols = np.nonzero(keep)
        table = np.empty(len(rows), BEAT_DTYPE)
        table["row"], table["sample"], table["t_s"] = rows, sample[rows, cols], b.r[rows, cols]
        table["label"] = np.asarray(list(AAMI_OF_CLASS))[b.cls[rows, cols]]
        in_win = valid & (b.r >= t0) & (b.r < t0 + self.window_s)
        rr = np.where(in_win, b.rr_in, 0.0)
        count = in_win.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            hr = 60.0 * count / rr.sum(axis=1)
        return table, np.where(count > 0, hr, np.nan)[:, None]


def _samples(fs: float, window_s: float) -> int:
    """Samples per window; refuses rates and windows that do not give a whole number."""
    if not (fs > 0 and window_s > 0):
        raise PhysiologyError(f"fs and window_s must be > 0, got {fs} and {window_s}")
    samples = round(fs * window_s)
    if abs(samples - fs * window_s) > 1e-6 or samples < 1:
        raise PhysiologyError(f"fs * window_s must be a whole number, got {fs} x {window_s}")
    return samples


def _no_episodes(c: CohortParams) -> CohortParams:
    """The cohort with spontaneous episodes switched off (a forced rhythm replaces them)."""
    from dataclasses import replace

    return replace(c, episode_rate=0.0)


def _coarse_step(samples: int, fs: float) -> int:
    """Largest divisor of ``samples`` not above fs / 10 (baseline wander is computed on it)."""
    k = max(1, int(fs // 10))
    while samples % k:
        k -= 1
    return k


def _noise_bank(fs: float, samples: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Unit-RMS muscle (20 Hz - 0.45 fs) plus motion (0.5-8 Hz) noise, padded for slicing."""
    white = rng.standard_normal((2, _BANK + samples))
    emg = sps.sosfiltfilt(sps.butter(4, [20.0, 0.45 * fs], "bandpass", fs=fs, output="sos"),
                          white[0])
    motion = sps.sosfiltfilt(sps.butter(2, [0.5, 8.0], "bandpass", fs=fs, output="sos"),
                             white[1])
    mix = emg / emg.std() + 0.8 * motion / motion.std()
    out: npt.NDArray[np.float32] = (mix / mix.std()).astype(np.float32)
    return out
