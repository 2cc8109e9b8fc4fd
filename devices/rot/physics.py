"""The QDID cell array: quantum tunnelling through an oxide layer, vectorised across chips.

The seed article (``shared/seeds``) describes QDID as an array of cells whose femtoamp
tunnelling currents through a thin oxide differ chip to chip (the oxide thickness is set by
uncontrollable process variation) and fluctuate read to read (tunnelling is probabilistic).
This module models exactly that, and nothing on the chip but the physics:

* **Manufacture** draws, per cell, the oxide thickness ``t`` (process variation), the
  log-prefactor ``a`` (effective tunnelling area and interface mismatch), the temperature
  coefficient ``g`` (the trap-assisted share of the current varies cell to cell) and the
  aging direction ``z`` (which cells gain stress-induced traps, SILC, over the years).
* **Mean current** has the direct-tunnelling shape ``I = I_ref * exp(a) * (V/V0)^2 *
  exp(-2 kappa(V) (t - t0)) * exp(g (T - T0)) * exp(z sigma_age sqrt(age/10 y))`` with
  ``kappa(V) = sqrt(2 m* q (phi_B - V/2)) / hbar`` (WKB through a trapezoidal barrier).
* **A read** integrates each cell's current on a capacitor for ``tau``: the number of
  electrons is Poisson (shot noise: the tunnelling events are independent), plus the
  capacitor's kTC reset noise, which grows with temperature.
* **A bit** compares the two cells of a pair (differential readout): common-mode effects
  (supply, the mean temperature coefficient, global thickness shifts) cancel.

Every array is ``(chips, pairs, 2)`` so a read of 10,000 chips is a handful of numpy
operations. Cell parameters are float32 (16 bytes a cell, 64 KiB a 4,096-cell chip): the
physics needs far less precision than that and the fleet needs the memory. The parameter
values and the reasoning behind each are in :class:`PhysicsParams` and docs/adr/0005.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from twin.core.seeds import SeedTree

F32 = npt.NDArray[np.float32]
Bits = npt.NDArray[np.bool_]
Index = npt.NDArray[np.intp]

_Q = 1.602176634e-19  # C, elementary charge
_K_B = 1.380649e-23  # J/K, Boltzmann constant
_HBAR = 1.054571817e-34  # J s
_M0 = 9.1093837e-31  # kg, electron rest mass


@dataclass(frozen=True, slots=True)
class PhysicsParams:
    """The cell model's parameters; each value is argued in docs/adr/0005-qdid-puf-model.md.

    Attributes:
        pairs: cell pairs per chip (one response bit each); 2,048 leaves room to mask the
            less stable half and still feed a 1,019-bit BCH codeword.
        t0_nm: mean oxide thickness; 1.8 nm is in the direct-tunnelling regime of SiO2.
        sigma_t_nm: cell-to-cell thickness variation, 0.015 nm (under 1 %: a tenth of a
            Si-O bond length, averaged over the cell area).
        barrier_ev: Si/SiO2 conduction-band offset, 3.1 eV.
        m_eff: tunnelling effective mass in SiO2, 0.42 m0.
        v0: nominal read bias, 1.0 V.
        i_ref_fa: mean cell current at t0, v0, T0: 20 fA (the article's "femtoamps").
        sigma_a: log-prefactor mismatch (area, interface), 0.08.
        g_mean: mean temperature coefficient of ln I, 0.004 /K (cancels in a pair).
        sigma_g: its cell-to-cell spread, 0.0009 /K (what makes bits flip with temperature).
        sigma_age: log-current drift after 10 years (SILC), 0.03; it grows as sqrt(age).
        tau_s: integration window, 40 ms: about 5,000 electrons, 1.4 % shot noise.
        cap_f: integration capacitor, 10 fF: kTC noise of about 40 electrons at 25 C.
        t0_c: reference (enrolment) temperature, 25 C.
    """

    pairs: int = 2048
    t0_nm: float = 1.8
    sigma_t_nm: float = 0.015
    barrier_ev: float = 3.1
    m_eff: float = 0.42
    v0: float = 1.0
    i_ref_fa: float = 20.0
    sigma_a: float = 0.08
    g_mean: float = 0.004
    sigma_g: float = 0.0009
    sigma_age: float = 0.03
    tau_s: float = 0.040
    cap_f: float = 10e-15
    t0_c: float = 25.0

    def two_kappa_per_nm(self, volts: float) -> float:
        """``2 kappa(V)`` in 1/nm: the WKB decay constant of the tunnelling current.

        Args:
            volts: read bias; the mean barrier a tunnelling electron sees is phi_B - V/2.

        Returns:
            The exponent's slope versus thickness (about 10.7 /nm at 1 V).
        """
        barrier_j = (self.barrier_ev - volts / 2.0) * _Q
        return float(2.0 * np.sqrt(2.0 * self.m_eff * _M0 * barrier_j) / _HBAR * 1e-9)


DEFAULT_PARAMS = PhysicsParams()


@dataclass(frozen=True, slots=True)
class Conditions:
    """Operating conditions of one read.

    Attributes:
        temp_c: die temperature in Celsius.
        volts: read bias in volts.
        age_years: time since manufacture (aging drift grows as its square root).
    """

    temp_c: float = 25.0
    volts: float = 1.0
    age_years: float = 0.0

    def __post_init__(self) -> None:
        if not (-60.0 <= self.temp_c <= 150.0 and 0.5 <= self.volts <= 1.5
                and 0.0 <= self.age_years <= 30.0):
            raise ValueError(f"conditions outside the model's range: {self}")


NOMINAL = Conditions()


@dataclass(frozen=True, slots=True, eq=False)
class ChipArray:
    """The cell parameters of a batch of chips, each array ``(chips, pairs, 2)`` float32.

    A single device is a batch of one (``population.chip(i)``). The arrays are read-only
    views: manufacture fixed them, and nothing later may change the silicon.

    Attributes:
        thickness: oxide thickness deviation from t0, nm.
        log_prefactor: ln of the prefactor mismatch.
        tempco: temperature coefficient of ln I, 1/K.
        aging: the aging direction (standard normal, scaled by sigma_age at read time).
        params: the physics the arrays were drawn under.
    """

    thickness: F32
    log_prefactor: F32
    tempco: F32
    aging: F32
    params: PhysicsParams = field(default=DEFAULT_PARAMS)

    @property
    def chips(self) -> int:
        """Number of chips in the batch."""
        return int(self.thickness.shape[0])

    def chip(self, index: int) -> ChipArray:
        """Chip ``index`` as a batch of one (views, no copy)."""
        sl = slice(index, index + 1)
        return ChipArray(self.thickness[sl], self.log_prefactor[sl], self.tempco[sl],
                         self.aging[sl], self.params)


def manufacture(tree: SeedTree, chips: Sequence[int],
                params: PhysicsParams = DEFAULT_PARAMS) -> ChipArray:
    """Fabricate chips: draw every cell's physical parameters from its own stream.

    Chip ``i`` comes from the stream ``("chip", i, "cells")``, so it is the same chip whatever
    else is made in the run or in which batch (ADR 0004): a loop per chip, never per cell.

    Args:
        tree: the run's seed tree.
        chips: the chip numbers to make.
        params: the physics.

    Returns:
        The batch, in the order of ``chips``.
    """
    shape = (len(chips), params.pairs, 2)
    draws = np.empty((4, *shape), dtype=np.float32)
    for row, number in enumerate(chips):
        rng = tree.rng("chip", number, "cells")
        draws[:, row] = rng.standard_normal((4, params.pairs, 2), dtype=np.float32)
    draws[0] *= np.float32(params.sigma_t_nm)
    draws[1] *= np.float32(params.sigma_a)
    draws[2] = np.float32(params.g_mean) + np.float32(params.sigma_g) * draws[2]
    draws.flags.writeable = False  # the views below inherit it: nothing may edit the silicon
    return ChipArray(draws[0], draws[1], draws[2], draws[3], params)


def mean_electrons(chips: ChipArray, cond: Conditions, pairs: Index | None = None) -> F32:
    """Expected electrons integrated per cell in one read (before shot and kTC noise).

    Args:
        chips: the batch.
        cond: operating conditions.
        pairs: optional ``(chips, k)`` pair indices per chip (the enrolled mask), so a
            reconstruction reads only the pairs it uses.

    Returns:
        ``(chips, pairs or k, 2)`` expected electron counts.
    """
    p = chips.params
    thick, pref, tempco, aging = chips.thickness, chips.log_prefactor, chips.tempco, chips.aging
    if pairs is not None:
        idx = pairs[:, :, None]
        thick, pref, tempco, aging = (np.take_along_axis(a, idx, axis=1)
                                      for a in (thick, pref, tempco, aging))
    two_kappa = np.float32(p.two_kappa_per_nm(cond.volts))
    # The common thickness t0 under a changed bias moves every cell alike (it cancels in the
    # pair) but sets the electron count, hence the shot noise: keep it.
    common = (np.log(p.i_ref_fa * 1e-15 * p.tau_s / _Q) + 2.0 * np.log(cond.volts / p.v0)
              - (p.two_kappa_per_nm(cond.volts) - p.two_kappa_per_nm(p.v0)) * p.t0_nm)
    drift = np.float32(p.sigma_age * np.sqrt(cond.age_years / 10.0))
    log_n = pref - two_kappa * thick + tempco * np.float32(cond.temp_c - p.t0_c)
    if drift:
        log_n += drift * aging
    log_n += np.float32(common)
    mean: F32 = np.exp(log_n, out=log_n)
    return mean


def read_counts(chips: ChipArray, cond: Conditions, rng: np.random.Generator,
                pairs: Index | None = None, reads: int = 1) -> F32:
    """One noisy read (or the sum of ``reads`` independent reads): electrons per cell.

    The sum of independent reads is drawn as one: independent Poisson counts add to a Poisson
    count of the summed mean, and independent Gaussian reset noises to a Gaussian of the summed
    variance, so one draw of ``Poisson(reads * mean) + N(0, reads * ktc**2)`` has exactly the
    distribution of the sum of ``reads`` reads, at a ``reads``-th of the cost (enrolment's
    eight reads were most of the cost of manufacturing a chip).

    Args:
        chips: the batch.
        cond: operating conditions.
        rng: the read's random stream (tunnelling events and reset noise).
        pairs: optional per-chip pair indices (see :func:`mean_electrons`).
        reads: how many reads to sum (1: a single read).

    Returns:
        ``(chips, pairs or k, 2)`` counts: Poisson shot noise plus Gaussian kTC noise.
    """
    mean = mean_electrons(chips, cond, pairs)
    if reads != 1:
        mean *= np.float32(reads)
    counts = rng.poisson(mean).astype(np.float32)
    # kTC noise of the integrator reset, in electrons: sqrt(k T C) / q, per read.
    ktc = np.sqrt(_K_B * (cond.temp_c + 273.15) * chips.params.cap_f * reads) / _Q
    counts += np.float32(ktc) * rng.standard_normal(counts.shape, dtype=np.float32)
    return counts


def read_bits(chips: ChipArray, cond: Conditions, rng: np.random.Generator,
              pairs: Index | None = None) -> Bits:
    """One noisy read turned into response bits by differential (pair) comparison.

    Args:
        chips: the batch.
        cond: operating conditions.
        rng: the read's random stream.
        pairs: optional per-chip pair indices.

    Returns:
        ``(chips, pairs or k)`` bits: 1 where the first cell of the pair conducts more.
    """
    counts = read_counts(chips, cond, rng, pairs)
    return counts[..., 0] > counts[..., 1]


def average_margin(chips: ChipArray, cond: Conditions, rng: np.random.Generator,
                   reads: int) -> F32:
    """The log-ratio of each pair's currents, averaged over ``reads`` reads (enrolment).

    Args:
        chips: the batch.
        cond: conditions (enrolment runs at nominal, on the tester).
        rng: the reads' random stream.
        reads: how many reads to average; more reads make the stability estimate sharper.

    Returns:
        ``(chips, pairs)`` ``ln(I_a / I_b)`` estimates: the sign is the enrolled bit, the
        magnitude how far the pair is from flipping.

    Raises:
        ValueError: for ``reads < 1``.
    """
    if reads < 1:
        raise ValueError(f"enrolment needs at least one read, got {reads}")
    total = read_counts(chips, cond, rng, reads=reads)
    np.maximum(total, np.float32(1.0), out=total)  # a log of a non-positive count is no margin
    return np.log(total[..., 0]) - np.log(total[..., 1])
