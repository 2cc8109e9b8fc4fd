"""SeedTree: one run seed, independent named streams (house style 1)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.core.seeds import MAX_SEED, SeedTree

seeds = st.integers(min_value=0, max_value=MAX_SEED)
parts = st.one_of(st.text(max_size=12), st.integers(min_value=0, max_value=2**32 - 1))
paths = st.lists(parts, max_size=4).map(tuple)


def _draw(tree: SeedTree, *path: str | int) -> list[int]:
    return tree.rng(*path).integers(0, 2**63, size=4).tolist()


@given(seeds, paths)
def test_same_seed_and_path_give_the_same_numbers(seed: int, path: tuple[Any, ...]) -> None:
    assert _draw(SeedTree(seed), *path) == _draw(SeedTree(seed), *path)
    assert SeedTree(seed).entropy(*path) == SeedTree(seed).entropy(*path)


def test_known_stream_is_stable_across_versions() -> None:
    # Pin one value so a change to the path->spawn-key mapping cannot slip in silently
    # (it would change every run's results for the same seed).
    tree = SeedTree(42)
    # Golden words of the path (17,) under seed 42 with the SHA-256 path encoding.
    words = tree.sequence(17).generate_state(4).tolist()
    assert words == [3618684207, 569493060, 2689404232, 114051131]
    assert len(tree.sequence("device").spawn_key) == 8  # a SHA-256 digest in 32-bit words


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("device", 1), ("device", 2)),
        (("device", 1, "radio"), ("device", 1, "sensor")),
        (("a",), ("b",)),
        (("a", "b"), ("b", "a")),
        ((), ("device",)),
        ((0,), ()),
        ((0,), (0, 0)),
        (("device",), ("device", 0)),
        (("ab",), ("a", "b")),
        (("",), ()),
    ],
)
def test_different_paths_give_different_streams(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    tree = SeedTree(7)
    assert _draw(tree, *a) != _draw(tree, *b)
    assert tree.entropy(*a) != tree.entropy(*b)


@given(seeds, paths, paths)
def test_distinct_paths_give_distinct_entropy(
    seed: int, a: tuple[Any, ...], b: tuple[Any, ...]
) -> None:
    tree = SeedTree(seed)
    assert (tree.entropy(*a, n_bytes=32) == tree.entropy(*b, n_bytes=32)) == (a == b)


@given(st.integers(min_value=0, max_value=MAX_SEED - 1), paths)
def test_different_seeds_give_different_streams(seed: int, path: tuple[Any, ...]) -> None:
    assert SeedTree(seed).entropy(*path) != SeedTree(seed + 1).entropy(*path)


def test_a_stream_does_not_depend_on_what_was_asked_before() -> None:
    alone = _draw(SeedTree(3), "device", 5, "radio")
    tree = SeedTree(3)
    for i in range(20):
        _draw(tree, "device", i)
        tree.entropy("chip", i)
        tree.sequence("device", i, "radio")
    assert _draw(tree, "device", 5, "radio") == alone


def test_a_generator_is_fresh_each_time() -> None:
    tree = SeedTree(3)
    first = tree.rng("x")
    first.random(1000)  # advancing one generator does not advance the next one asked for
    assert _draw(tree, "x") == _draw(SeedTree(3), "x")


@given(seeds, st.text(max_size=12), st.integers(min_value=0, max_value=2**32 - 1))
def test_str_and_int_parts_do_not_collide(seed: int, name: str, index: int) -> None:
    tree = SeedTree(seed)
    assert tree.entropy(name) != tree.entropy(index)
    assert tree.entropy("device", name) != tree.entropy("device", index)


def test_digit_string_is_not_its_integer() -> None:
    tree = SeedTree(1)
    assert _draw(tree, "17") != _draw(tree, 17)
    assert _draw(tree, "0") != _draw(tree, 0)


def test_a_name_does_not_collide_with_a_pair_of_small_integers() -> None:
    # Each spawn-key entry becomes however many 32-bit words it needs and numpy concatenates
    # the words without lengths; a string's key (2**32 + 64-bit hash) is two words, so it
    # equals the path of the two integers that spell those words.
    tree = SeedTree(1)
    key = tree.sequence("radio").spawn_key[0]
    low, high = key & 0xFFFF_FFFF, key >> 32
    assert low < 2**32 and high < 2**32
    assert tree.entropy("radio") != tree.entropy(low, high)
    assert tree.entropy("radio", 5) != tree.entropy(low, high, 5)


def test_one_large_integer_does_not_collide_with_two_small_ones() -> None:
    # Same cause: (2**32,) is the words [0, 1], exactly the path (0, 1).
    tree = SeedTree(1)
    assert tree.entropy(2**32) != tree.entropy(0, 1)


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 2**64, True, False, 1.0, "1", None, b"1"])
def test_bad_seeds_raise_value_error(seed: Any) -> None:
    with pytest.raises(ValueError, match="seed"):
        SeedTree(seed)


@pytest.mark.parametrize("seed", [0, 1, MAX_SEED])
def test_edge_seeds_are_accepted(seed: int) -> None:
    tree = SeedTree(seed)
    assert tree.seed == seed
    assert tree.sequence().entropy == seed


def test_negative_path_integer_raises_value_error() -> None:
    with pytest.raises(ValueError):
        SeedTree(1).rng("device", -1)


@pytest.mark.parametrize("part", [True, False, 1.0, None, b"x", ("a",), np.int64(3)])
def test_path_parts_of_other_types_raise_type_error(part: Any) -> None:
    with pytest.raises(TypeError):
        SeedTree(1).sequence(part)


@pytest.mark.parametrize("n_bytes", [0, 1, 2, 3, 4, 5, 7, 16, 31, 32, 33, 64, 100])
def test_entropy_has_the_requested_length(n_bytes: int) -> None:
    assert len(SeedTree(9).entropy("chip", 1, n_bytes=n_bytes)) == n_bytes


def test_entropy_defaults_to_16_bytes_and_varies_by_path() -> None:
    tree = SeedTree(9)
    chips = {tree.entropy("chip", i) for i in range(200)}
    assert len(chips) == 200
    assert all(len(c) == 16 for c in chips)


def test_sequence_is_a_numpy_seed_sequence_and_rng_a_pcg64_generator() -> None:
    tree = SeedTree(11)
    assert isinstance(tree.sequence("x"), np.random.SeedSequence)
    rng = tree.rng("x")
    assert isinstance(rng, np.random.Generator)
    assert isinstance(rng.bit_generator, np.random.PCG64)
