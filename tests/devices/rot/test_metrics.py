"""Population metrics over 1,000 chips (issue 4 acceptance) and the metric definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from devices.rot.metrics import (
    PopulationStats,
    min_entropy_per_bit,
    pack_bits,
    population_stats,
    uniformity,
    uniqueness,
)


@pytest.fixture(scope="module")
def stats() -> tuple[PopulationStats, np.ndarray]:
    return population_stats(seed=11, chips=1000, reads=1)


def test_uniqueness_is_half_within_a_percent(stats: tuple[PopulationStats, np.ndarray]) -> None:
    assert abs(stats[0].uniqueness - 0.5) <= 0.01


def test_uniformity_is_half_within_two_percent(stats: tuple[PopulationStats, np.ndarray]) -> None:
    assert abs(stats[0].uniformity - 0.5) <= 0.02


def test_bit_aliasing_is_close_to_half(stats: tuple[PopulationStats, np.ndarray]) -> None:
    s = stats[0]
    assert abs(s.bit_aliasing - 0.5) <= 0.01
    # 1,000 chips: a position's fraction has sd 0.016; no position may look biased (> 6 sd).
    assert s.bit_aliasing_min > 0.4 and s.bit_aliasing_max < 0.6


def test_nominal_ber_is_a_few_percent_and_corners_are_worse(
        stats: tuple[PopulationStats, np.ndarray]) -> None:
    s = stats[0]
    assert 0.0 < s.ber_nominal <= 0.05
    assert s.ber_nominal < s.ber_worst_corner <= 0.15
    assert s.ber_worst_corner_masked < 0.005  # what the BCH code sees (ADR 0005 design: 1 %)


def test_min_entropy_and_reconstruction(stats: tuple[PopulationStats, np.ndarray]) -> None:
    s = stats[0]
    assert s.min_entropy_per_bit > 0.95
    assert abs(s.min_entropy_per_bit - s.min_entropy_ideal_at_n) < 0.005  # as unbiased bits
    assert s.reconstructions == 1000 and s.key_failures == 0
    assert set(s.as_dict()) >= {"chips", "reads", "bits_per_chip", "uniformity", "uniqueness",
                                "bit_aliasing", "ber_nominal", "ber_worst_corner",
                                "min_entropy_per_bit", "reconstructions", "key_failures"}


def test_uniqueness_identity_matches_brute_force() -> None:
    bits = np.random.default_rng(0).random((12, 40)) < 0.3
    brute = np.mean([np.mean(a != b) for a, b in itertools.combinations(bits, 2)])
    assert uniqueness(bits) == pytest.approx(brute)
    assert uniformity(bits) == pytest.approx(bits.mean())


def test_min_entropy_of_constant_and_balanced_bits() -> None:
    assert min_entropy_per_bit(np.zeros((4, 8), dtype=bool)) == 0.0
    assert min_entropy_per_bit(np.array([[0, 1], [1, 0]], dtype=bool)) == 1.0


def test_packed_bits_are_chip_after_chip_msb_first() -> None:
    bits = np.zeros((2, 16), dtype=bool)
    bits[0, 0] = bits[1, 15] = True
    assert pack_bits(bits) == bytes([0x80, 0, 0, 0x01])


def test_stats_are_deterministic_for_a_seed() -> None:
    a, bits_a = population_stats(seed=3, chips=20, reads=1)
    b, bits_b = population_stats(seed=3, chips=20, reads=1)
    assert a == b and np.array_equal(bits_a, bits_b)
    assert population_stats(seed=4, chips=20, reads=1)[0] != a
