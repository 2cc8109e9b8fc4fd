"""The fuzzy extractor: helper data, reconstruction, failure modes, the worst-corner budget."""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.rot.errors import HelperDataError, ReconstructionError
from devices.rot.extractor import CODE, HelperData, enrol, pair_matrix, reconstruct, recover
from devices.rot.metrics import CORNERS, WORST_CORNER
from devices.rot.physics import NOMINAL, manufacture, read_bits
from twin.core.seeds import SeedTree


@pytest.fixture(scope="module")
def enrolled():
    tree = SeedTree(21)
    chips = manufacture(tree, range(40))
    return chips, enrol(chips, tree.rng("enrol"))


def test_code_has_room_for_a_256_bit_seed_with_entropy_to_spare() -> None:
    assert (CODE.m, CODE.t, CODE.n_bits) == (10, 32, 1019)
    # Entropy left after the offset leaks the parity bits (ADR 0005): well above 256 bits.
    assert CODE.n_bits - CODE.ecc_bits >= 256 * 2


def test_every_chip_recovers_its_seed_at_every_corner(enrolled) -> None:
    chips, e = enrolled
    rng = np.random.default_rng(5)
    for cond in (NOMINAL, *CORNERS):
        assert reconstruct(chips, e.helpers, cond, rng) == list(e.seeds)
    assert len(set(e.seeds)) == len(e.seeds) and all(len(s) == 32 for s in e.seeds)


def test_helper_data_round_trips_through_flash(enrolled) -> None:
    helper = enrolled[1].helpers[0]
    assert HelperData.from_bytes(helper.to_bytes()) == helper
    assert len(helper.pairs()) == CODE.n_bits


def test_helper_data_on_another_chip_yields_nothing(enrolled) -> None:
    chips, e = enrolled
    noisy = read_bits(chips.chip(1), NOMINAL, np.random.default_rng(0),
                      pair_matrix(e.helpers[:1]))
    with pytest.raises(ReconstructionError):
        recover(noisy[0], e.helpers[0])


def test_more_errors_than_the_code_corrects_fail_loudly(enrolled) -> None:
    chips, e = enrolled
    noisy = read_bits(chips.chip(0), NOMINAL, np.random.default_rng(0),
                      pair_matrix(e.helpers[:1]))[0].copy()
    noisy[: CODE.t + 8] ^= True
    with pytest.raises(ReconstructionError):
        recover(noisy, e.helpers[0])


def test_a_miscorrection_is_caught_by_the_check_tag(enrolled) -> None:
    chips, e = enrolled
    noisy = read_bits(chips.chip(0), NOMINAL, np.random.default_rng(0),
                      pair_matrix(e.helpers[:1]))[0]
    forged = dataclasses.replace(e.helpers[0], check=bytes(16))
    with pytest.raises(ReconstructionError):
        recover(noisy, forged)


@pytest.mark.parametrize("raw", [b"", b"\xa0", b"\xff\x00", b"\xa1avb"])
def test_corrupt_helper_data_is_refused(raw: bytes) -> None:
    with pytest.raises(HelperDataError):
        HelperData.from_bytes(raw)


@given(st.binary(max_size=600))
def test_helper_parser_parses_or_raises_its_error(raw: bytes) -> None:
    with contextlib.suppress(HelperDataError):
        HelperData.from_bytes(raw)


@given(st.dictionaries(st.sampled_from(["v", "m", "t", "mask", "offset", "check"]),
                       st.one_of(st.integers(), st.binary(max_size=300), st.text(max_size=5))))
def test_helper_parser_on_near_valid_maps(doc: dict[str, object]) -> None:
    import cbor2

    with contextlib.suppress(HelperDataError):
        HelperData.from_bytes(cbor2.dumps({"v": 1, "m": 10, "t": 32, **doc}))


@pytest.mark.slow
def test_no_failures_in_100000_reconstructions_at_the_worst_corner() -> None:
    """Issue 4 acceptance: 1,000 chips x 100 boots at -20 C, 0.9 V, 10 years (~15 s)."""
    tree = SeedTree(2026)
    chips = manufacture(tree, range(1000))
    e = enrol(chips, tree.rng("enrol"))
    rng = tree.rng("boots")
    failures = 0
    for _ in range(100):
        seeds = reconstruct(chips, e.helpers, WORST_CORNER, rng)
        failures += sum(s != want for s, want in zip(seeds, e.seeds, strict=True))
    assert failures == 0
