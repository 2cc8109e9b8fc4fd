"""One seed per run, a tree of independent random streams beneath it (house style 1).

Streams are addressed by *name*, not by spawn order: ``tree.rng("device", 17, "radio")`` is the
same stream whatever else the run asked for before, so adding a subsystem never shifts the
numbers another one sees, and the same scenario and seed always give the same results.
A path maps to a ``SeedSequence.spawn_key`` of eight 32-bit words: SHA-256 over an
unambiguous encoding of the path (each element typed and length-prefixed). Hashing the whole
path matters: numpy splits large spawn-key integers into 32-bit words without a length marker,
so mapping elements one by one lets ``("radio",)`` and a pair of small integers collide.
"""

from __future__ import annotations

import hashlib

import numpy as np

MAX_SEED = 2**63 - 1


def _spawn_key(path: tuple[str | int, ...]) -> tuple[int, ...]:
    """The spawn key of a stream path, stable across processes and versions."""
    encoded = bytearray()
    for part in path:
        if isinstance(part, bool) or not isinstance(part, (str, int)):
            raise TypeError(f"seed path elements are str or int, got {type(part).__name__}")
        if isinstance(part, int):
            if part < 0:
                raise ValueError(f"seed path integers are >= 0, got {part}")
            text, marker = str(part).encode(), b"i"
        else:
            text, marker = part.encode(), b"s"
        encoded += marker + len(text).to_bytes(4, "big") + text
    digest = hashlib.sha256(bytes(encoded)).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "big") for i in range(0, 32, 4))


class SeedTree:
    """The run's root seed and the named streams derived from it.

    Args:
        seed: the run seed, ``0 <= seed <= 2**63 - 1``.

    Raises:
        ValueError: for a seed out of range.
    """

    __slots__ = ("seed",)

    def __init__(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in 0..2**63-1, got {seed!r}")
        self.seed = seed

    def sequence(self, *path: str | int) -> np.random.SeedSequence:
        """The ``SeedSequence`` for a named stream, e.g. ``("device", 17)``."""
        return np.random.SeedSequence(self.seed, spawn_key=_spawn_key(path))

    def rng(self, *path: str | int) -> np.random.Generator:
        """A fresh PCG64 generator for a named stream."""
        return np.random.Generator(np.random.PCG64(self.sequence(*path)))

    def entropy(self, *path: str | int, n_bytes: int = 16) -> bytes:
        """``n_bytes`` of seed material for a named stream (e.g. a simulated chip's identity)."""
        words = self.sequence(*path).generate_state((n_bytes + 3) // 4, dtype=np.uint32)
        return words.tobytes()[:n_bytes]
