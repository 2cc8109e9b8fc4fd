"""Patient physiology: cohorts, activity, clinical episodes and the signals devices measure.

Fleet-facing sources (one per kind, same shape)::

    gen = EcgSource(n_devices, cohort, seeds, fs=250.0, window_s=10.0, start_hour=8.0)
    batch = gen.window(t_end, idx)   # -> SignalBatch(values, signal, beats, episodes, ...)

:class:`BpSource` and :class:`SweatSource` do the same for blood pressure and sweat;
:class:`WfdbReplay` streams a real MIT-BIH record through the same interface;
:func:`make_source` builds the source for a :class:`twin.core.messages.Kind`.
"""

from devices.physiology.batch import BEAT_DTYPE, READING_DTYPE, SignalBatch
from devices.physiology.bp import BP_EPISODES, BpSource
from devices.physiology.cohort import DIPPING_CLASSES, CohortParams, Patients, make_patients
from devices.physiology.ecg import ECG_EPISODES, RHYTHMS, EcgSource
from devices.physiology.episodes import EPISODE_DTYPE, EpisodeScheduler, EpisodeSpec
from devices.physiology.errors import PhysiologyError, RecordError
from devices.physiology.replay import AAMI_MAP, WfdbReplay
from devices.physiology.sources import DEFAULT_FS, SOURCES, Source, make_source
from devices.physiology.sweat import SWEAT_EPISODES, SweatSource

__all__ = [
    "AAMI_MAP", "BEAT_DTYPE", "BP_EPISODES", "DEFAULT_FS", "DIPPING_CLASSES", "ECG_EPISODES",
    "EPISODE_DTYPE", "READING_DTYPE", "RHYTHMS", "SOURCES", "SWEAT_EPISODES", "BpSource",
    "CohortParams", "EcgSource", "EpisodeScheduler", "EpisodeSpec", "Patients",
    "PhysiologyError", "RecordError", "SignalBatch", "Source", "SweatSource", "WfdbReplay",
    "make_patients", "make_source",
]
