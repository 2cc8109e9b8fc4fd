"""PUF quality metrics as the literature reports them, over a population of simulated chips.

Definitions follow Maiti, Gunreddy and Schaumont, "A Systematic Method to Evaluate and
Compare the Performance of Physical Unclonable Functions" (2013), with the ideal values:

* uniformity: fraction of 1s in a chip's response, averaged over chips (ideal 0.5);
* uniqueness: mean pairwise inter-chip Hamming distance / bits (ideal 0.5);
* bit-aliasing: per bit position, the fraction of chips whose bit is 1 (ideal 0.5 everywhere);
* reliability: intra-chip bit error rate of single reads against the enrolled response, at
  nominal conditions and at every temperature/voltage/aging corner (ideal 0);
* min-entropy per bit: ``-log2 max(p, 1 - p)`` per position from the bit-aliasing estimate,
  averaged (NIST SP 800-90B "most common value" idea, per position). With N chips the estimate
  is biased low by about ``1.15 / sqrt(N)`` even for perfect bits, so the JSON also gives
  ``min_entropy_ideal_at_n``, what perfectly unbiased bits would score with the same N;
* key-reconstruction failure rate: full fuzzy-extractor reconstructions at the worst corner.

Every figure is computed with a few numpy operations over the whole population; uniqueness
uses the identity ``sum over pairs of HD = sum over positions of k (N - k)`` (k = chips with a
1 there), which is exact and O(chips x bits) instead of O(chips^2 x bits).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from devices.rot.extractor import HelperData, enrol, pair_matrix, reconstruct
from devices.rot.physics import NOMINAL, Bits, ChipArray, Conditions, manufacture, read_bits
from twin.core.seeds import SeedTree

TEMPERATURES_C = (-20.0, 70.0)
VOLTAGES = (0.9, 1.1)
AGES_YEARS = (0.0, 10.0)
CORNERS: tuple[Conditions, ...] = tuple(
    Conditions(t, v, a) for t in TEMPERATURES_C for v in VOLTAGES for a in AGES_YEARS)
"""The documented operating range: -20..70 C, 0.9..1.1 V, 0..10 years (a body-worn device)."""
WORST_CORNER = Conditions(-20.0, 0.9, 10.0)
"""Measured worst corner: cold and low bias mean fewer electrons (more shot noise), plus drift."""


def uniformity(bits: Bits) -> float:
    """Mean fraction of 1s per chip response. Args: bits ``(chips, n)``."""
    return float(bits.mean())


def uniqueness(bits: Bits) -> float:
    """Mean pairwise inter-chip Hamming distance over ``n`` bits.

    Raises:
        ValueError: with fewer than two chips (there is no pair).
    """
    chips, n = bits.shape
    if chips < 2:
        raise ValueError("uniqueness needs at least two chips")
    ones = bits.sum(axis=0, dtype=np.int64)
    pairs = chips * (chips - 1) // 2
    return float((ones * (chips - ones)).sum() / (pairs * n))


def bit_aliasing(bits: Bits) -> np.ndarray:
    """Per bit position, the fraction of chips with a 1 there."""
    return np.asarray(bits.mean(axis=0, dtype=np.float64))


def min_entropy_per_bit(bits: Bits) -> float:
    """Average per-position min-entropy ``-log2 max(p, 1 - p)`` (biased low for few chips)."""
    p = bit_aliasing(bits)
    return float(np.mean(-np.log2(np.maximum(p, 1.0 - p))))


def ideal_min_entropy_estimate(chips: int) -> float:
    """The expected per-position min-entropy estimate for perfectly unbiased bits.

    ``E[-log2(max(k, N - k) / N)]`` for ``k ~ Binomial(N, 1/2)``: the yardstick to read
    :func:`min_entropy_per_bit` against (0.964 for 1,000 chips, not 1).
    """
    k = np.arange(chips + 1)
    log_pmf = (np.array([math.lgamma(chips + 1) - math.lgamma(i + 1) - math.lgamma(chips - i + 1)
                         for i in k]) - chips * math.log(2.0))
    h = -np.log2(np.maximum(k, chips - k) / chips)
    return float(np.sum(np.exp(log_pmf) * h))


def ber(chips: ChipArray, reference: Bits, cond: Conditions, rng: np.random.Generator,
        reads: int) -> float:
    """Intra-chip bit error rate of single reads against the enrolled response.

    Args:
        chips: the population.
        reference: ``(chips, pairs)`` enrolled bits.
        cond: the conditions to read at.
        rng: the reads' random stream.
        reads: reads per chip.

    Returns:
        Mean fraction of flipped bits.
    """
    errors = 0
    for _ in range(reads):
        errors += int(np.count_nonzero(read_bits(chips, cond, rng) != reference))
    return errors / (reads * reference.size)


@dataclass(frozen=True, slots=True)
class PopulationStats:
    """What ``twin rot stats`` reports; ``as_dict()`` is its JSON (issue 4's keys and more)."""

    chips: int
    reads: int
    bits_per_chip: int
    uniformity: float
    uniqueness: float
    bit_aliasing: float
    bit_aliasing_min: float
    bit_aliasing_max: float
    ber_nominal: float
    ber_worst_corner: float
    worst_corner: str
    ber_worst_corner_masked: float
    min_entropy_per_bit: float
    min_entropy_ideal_at_n: float
    reconstructions: int
    key_failures: int
    key_failure_rate: float

    def as_dict(self) -> dict[str, float | int | str]:
        """The JSON document (every rate a fraction in [0, 1])."""
        return asdict(self)


def population_stats(seed: int, chips: int, reads: int,
                     progress: Callable[[str], None] | None = None,
                     ) -> tuple[PopulationStats, Bits]:
    """Manufacture and enrol ``chips`` chips, then measure them.

    Args:
        seed: the run seed (chip ``i`` is the stream ``("chip", i, "cells")``).
        chips: population size (at least 2).
        reads: reads per chip at nominal and at each corner; also the reconstructions per
            chip at the worst corner (``reconstructions = chips * reads``).
        progress: optional callback for a line of progress.

    Returns:
        The statistics and the ``(chips, pairs)`` enrolled response bits.

    Raises:
        ValueError: for fewer than 2 chips or fewer than 1 read.
    """
    if chips < 2 or reads < 1:
        raise ValueError("stats need at least 2 chips and 1 read")
    say = progress or (lambda _line: None)
    tree = SeedTree(seed)
    say(f"manufacturing and enrolling {chips:,} chips")
    population = manufacture(tree, range(chips))
    enrolment = enrol(population, tree.rng("rot", "stats", "enrol"))
    bits = enrolment.response
    rng = tree.rng("rot", "stats", "reads")
    say("reading at nominal and at 8 corners")
    nominal = ber(population, bits, NOMINAL, rng, reads)
    corners = {c: ber(population, bits, c, rng, reads) for c in CORNERS}
    worst = max(corners, key=lambda c: corners[c])
    masked = _masked_ber(population, enrolment.helpers, bits, worst, rng)
    say(f"{chips * reads:,} reconstructions at the worst corner")
    failures = 0
    for _ in range(reads):
        seeds = reconstruct(population, enrolment.helpers, worst, rng)
        failures += sum(s is None or s != e for s, e in zip(seeds, enrolment.seeds, strict=True))
    alias = bit_aliasing(bits)
    stats = PopulationStats(
        chips, reads, int(bits.shape[1]), uniformity(bits), uniqueness(bits), float(alias.mean()),
        float(alias.min()), float(alias.max()), nominal, corners[worst], _name(worst), masked,
        min_entropy_per_bit(bits), ideal_min_entropy_estimate(chips), chips * reads, failures,
        failures / (chips * reads))
    return stats, bits


def _masked_ber(population: ChipArray, helpers: Sequence[HelperData], reference: Bits,
                cond: Conditions, rng: np.random.Generator) -> float:
    """BER of the masked (enrolled-stable) pairs only: what the BCH decoder actually sees."""
    pairs = pair_matrix(helpers)
    noisy = read_bits(population, cond, rng, pairs)
    return float(np.mean(noisy != np.take_along_axis(reference, pairs, axis=1)))


def _name(cond: Conditions) -> str:
    return f"{cond.temp_c:g}C/{cond.volts:g}V/{cond.age_years:g}y"


def pack_bits(bits: Bits) -> bytes:
    """Response bits, chip after chip, packed MSB first into one stream (``--bits FILE``).

    The stream is ``chips * bits_per_chip`` bits (zero-padded to a whole byte at the very end
    only), so a randomness test tool can read it as one bit sequence.
    """
    return np.packbits(bits.astype(np.uint8).ravel()).tobytes()
