"""The fleet-facing shape shared by every source, the episode scheduler, and the figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.physiology import (
    EPISODE_DTYPE,
    CohortParams,
    EpisodeScheduler,
    EpisodeSpec,
    PhysiologyError,
    make_source,
)
from twin.core.messages import KIND_METRICS, Kind
from twin.core.seeds import SeedTree

N = 40
SOURCES = {kind: make_source(kind, N, CohortParams(episode_rate=5.0), SeedTree(1))
           for kind in Kind}


@settings(max_examples=25, deadline=None)
@given(kind=st.sampled_from(list(Kind)),
       idx=st.lists(st.integers(0, N - 1), unique=True, max_size=N),
       step=st.integers(1, 3))
def test_any_subset_gives_the_documented_shapes(kind: Kind, idx: list[int], step: int) -> None:
    src = SOURCES[kind]
    rows = np.array(idx, dtype=np.intp)
    src_t = getattr(src, "_test_t", 0.0) + 10.0 * step  # windows only move forward
    src._test_t = src_t  # type: ignore[union-attr]
    b = src.window(src_t, rows)
    assert b.values.shape == (len(rows), len(KIND_METRICS[kind]))
    assert b.signal.shape == (len(rows), src.samples) and b.signal.dtype == np.float32
    assert np.all(np.isfinite(b.signal))
    assert b.episodes.dtype == EPISODE_DTYPE
    assert set(b.episodes["device"].tolist()) <= set(idx)
    if len(b.beats):
        assert b.beats["row"].max() < len(rows)


def test_long_gaps_between_calls_are_caught_up() -> None:
    src = make_source(Kind.ECG_PATCH, 3, CohortParams(episode_rate=0.0), SeedTree(2))
    src.window(10.0, np.arange(3))
    b = src.window(86400.0, np.arange(3))
    assert np.all((b.values > 30) & (b.values < 200))


def test_scheduler_refuses_unknown_forced_kind() -> None:
    specs = (EpisodeSpec("a", 1.0, 10.0),)
    with pytest.raises(PhysiologyError, match="unknown episode kind"):
        EpisodeScheduler(specs, 2, np.ones(2), CohortParams(), np.random.default_rng(0), "b")


def test_scheduler_rates_and_durations() -> None:
    specs = (EpisodeSpec("a", 36.0, 5.0), EpisodeSpec("b", 0.0, 5.0))
    sch = EpisodeScheduler(specs, 1000, np.ones(1000), CohortParams(),
                           np.random.default_rng(1))
    got = sch.step(0.0, 10.0, np.arange(1000))
    # 36/h over 10 s: P(start) = 1 - exp(-0.1), about 95 of 1000
    assert 60 < len(got) < 130 and set(got["kind"].tolist()) == {"a"}
    assert np.allclose(got["end_s"] - got["start_s"], 5.0)
    again = sch.step(10.0, 12.0, np.arange(1000))  # those still in an episode cannot start one
    assert not set(again["device"].tolist()) & set(got["device"][got["end_s"] > 10.0].tolist())


def test_cohort_multipliers() -> None:
    c = CohortParams(episode_rate=2.0, episode_rates=(("af", 5.0),))
    assert c.rate_multiplier("af") == 10.0 and c.rate_multiplier("vt") == 2.0
    with pytest.raises(PhysiologyError):
        CohortParams(episode_rates=(("af", -1.0),))


def test_figure_script_writes_pngs(tmp_path: Path) -> None:
    from devices.sensors.plot import main

    paths = main(["--out", str(tmp_path), "--seed", "3"])
    assert [p.name for p in paths] == ["ecg.png", "bp.png", "sweat.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 20_000


def test_every_episode_name_fits_the_ground_truth_record():
    from devices.physiology.bp import BP_EPISODES
    from devices.physiology.ecg import ECG_EPISODES
    from devices.physiology.episodes import EPISODE_DTYPE
    from devices.physiology.sweat import SWEAT_EPISODES

    width = EPISODE_DTYPE["kind"].itemsize // 4  # numpy unicode: 4 bytes a character
    names = [s.name for s in (*ECG_EPISODES, *BP_EPISODES, *SWEAT_EPISODES)]
    assert max(map(len, names)) <= width, "an episode name would be truncated in the record"
