"""The cell model: deterministic manufacture, vectorised reads, physically sensible trends."""

from __future__ import annotations

import numpy as np
import pytest

from devices.rot.physics import (
    NOMINAL,
    Conditions,
    PhysicsParams,
    average_margin,
    manufacture,
    mean_electrons,
    read_bits,
    read_counts,
)
from twin.core.seeds import SeedTree


def test_a_chip_is_the_same_whatever_batch_it_is_made_in() -> None:
    tree = SeedTree(5)
    batch = manufacture(tree, range(10))
    alone = manufacture(tree, [7])
    assert np.array_equal(batch.thickness[7], alone.thickness[0])
    assert np.array_equal(batch.tempco[7], alone.tempco[0])


def test_the_silicon_is_read_only() -> None:
    chips = manufacture(SeedTree(1), [0])
    with pytest.raises(ValueError):
        chips.thickness[0, 0, 0] = 0.0


def test_currents_are_femtoamps_and_counts_thousands() -> None:
    p = PhysicsParams()
    mean = mean_electrons(manufacture(SeedTree(1), range(20)), NOMINAL)
    amps = mean * 1.602e-19 / p.tau_s
    assert 5e-15 < float(np.median(amps)) < 50e-15
    assert 2_000 < float(np.median(mean)) < 10_000


def test_thinner_oxide_tunnels_more() -> None:
    p = PhysicsParams()
    assert 10.0 < p.two_kappa_per_nm(1.0) < 11.5  # WKB slope, 1/nm
    assert p.two_kappa_per_nm(1.1) < p.two_kappa_per_nm(0.9)  # higher bias, lower barrier


def test_a_read_of_many_chips_is_one_array() -> None:
    chips = manufacture(SeedTree(2), range(50))
    bits = read_bits(chips, NOMINAL, np.random.default_rng(0))
    assert bits.shape == (50, 2048) and bits.dtype == np.bool_
    pairs = np.tile(np.arange(0, 2048, 2), (50, 1))
    subset = read_counts(chips, NOMINAL, np.random.default_rng(0), pairs)
    assert subset.shape == (50, 1024, 2)


def test_reads_are_noisy_but_mostly_agree_with_enrolment() -> None:
    chips = manufacture(SeedTree(3), range(100))
    rng = np.random.default_rng(1)
    reference = average_margin(chips, NOMINAL, rng, 8) > 0
    nominal = np.mean(read_bits(chips, NOMINAL, rng) != reference)
    hot_aged = np.mean(read_bits(chips, Conditions(70.0, 1.0, 10.0), rng) != reference)
    assert 0.005 < nominal < 0.05
    assert hot_aged > 2 * nominal  # temperature and drift flip the marginal pairs


def test_conditions_outside_the_model_are_refused() -> None:
    with pytest.raises(ValueError):
        Conditions(temp_c=400.0)
    with pytest.raises(ValueError):
        average_margin(manufacture(SeedTree(1), [0]), NOMINAL, np.random.default_rng(0), 0)


def test_the_sum_of_reads_drawn_at_once_has_the_moments_of_separate_reads() -> None:
    """Enrolment draws the sum of its reads as one Poisson + Gaussian draw. Its mean must be
    ``reads * mean`` and its variance ``reads * (mean + ktc**2)`` (shot noise and the reset
    noise of every read), exactly what summing separate reads gives; a reset noise scaled as
    one read (variance ``ktc**2``, not ``reads * ktc**2``) would be 20 % short here."""
    chips = manufacture(SeedTree(2), [0])
    pairs = np.arange(64)[None, :]
    reads, trials = 8, 3000
    rng = np.random.default_rng(4)
    summed = np.stack([read_counts(chips, NOMINAL, rng, pairs, reads=reads)
                       for _ in range(trials)])
    separate = np.stack([sum(read_counts(chips, NOMINAL, rng, pairs) for _ in range(reads))
                         for _ in range(trials // 10)])
    mean = mean_electrons(chips, NOMINAL, pairs).astype(np.float64)
    ktc2 = 1.380649e-23 * 298.15 * chips.params.cap_f / 1.602176634e-19 ** 2
    expected_var = reads * (mean + ktc2)
    assert np.mean(summed.mean(axis=0) / (reads * mean)) == pytest.approx(1.0, abs=2e-3)
    assert np.mean(summed.var(axis=0) / expected_var) == pytest.approx(1.0, abs=0.03)
    assert np.mean(separate.var(axis=0) / expected_var) == pytest.approx(1.0, abs=0.06)
