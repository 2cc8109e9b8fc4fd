"""What a source returns for one window of a batch of devices (a frozen value object)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

BEAT_DTYPE = np.dtype([("row", np.int64), ("sample", np.int64), ("label", "U1"),
                       ("t_s", np.float64)])
"""One annotated beat: batch row, sample index within the window, AAMI class, R time (s)."""
READING_DTYPE = np.dtype([("row", np.int64), ("t_s", np.float64), ("sys_mmhg", np.float64),
                          ("dia_mmhg", np.float64)])
"""One cuff reading: batch row, time (s), systolic and diastolic (mmHg)."""


@dataclass(frozen=True, eq=False)
class SignalBatch:
    """One window for the devices ``idx`` of a source.

    Attributes:
        t_end: the window's end (simulated seconds); it covers ``[t_end - window_s, t_end)``.
        values: ``(len(idx), n_metrics)`` telemetry in ``KIND_METRICS[kind]`` order.
        signal: ``(len(idx), samples)`` waveform in ``units`` (float32); every kind has one
            (ECG in mV, BP an arterial pulse wave in mmHg, sweat the sodium reading).
        fs: the waveform's sampling rate (Hz).
        units: the waveform's unit (``"mV"``, ``"mmHg"``, ``"mmol/L"``).
        beats: annotated beats (:data:`BEAT_DTYPE`), ECG only (empty otherwise).
        episodes: ground truth (:data:`~devices.physiology.episodes.EPISODE_DTYPE`) of the
            episodes that started in this window; ``device`` is the index within the kind.
        readings: cuff readings taken in this window (:data:`READING_DTYPE`), BP only.
    """

    t_end: float
    values: npt.NDArray[np.float64]
    signal: npt.NDArray[np.float32]
    fs: float
    units: str
    episodes: npt.NDArray[np.void]
    beats: npt.NDArray[np.void] = field(default_factory=lambda: np.empty(0, BEAT_DTYPE))
    readings: npt.NDArray[np.void] = field(default_factory=lambda: np.empty(0, READING_DTYPE))
