"""The fuzzy extractor: enrol once, then recover the identical seed from any noisy read.

Construction (Dodis, Reyzin, Smith, "Fuzzy Extractors", EUROCRYPT 2004, section 4.1, the
code-offset construction, with the reliability masking of Maes et al., CHES 2009):

* **Enrolment** (on the tester, at nominal conditions) averages several reads, keeps the
  ``CODE.n_bits`` pairs with the largest current margin (the mask), takes their bits ``w``,
  draws a random BCH codeword ``c`` and stores the *helper data* ``mask, w XOR c`` and a
  check tag. Nothing else is stored; the seed is never written anywhere.
* **Reconstruction** reads only the masked pairs, ``c' = w' XOR offset`` is ``c`` plus the read
  errors, the BCH decoder (bchlib, a maintained binding of the Linux kernel's BCH library)
  corrects them, and ``w = c XOR offset``. The seed is HKDF-Extract over ``w`` (RFC 5869
  section 2.2: HKDF-Extract is the randomness extractor).

What the helper data leaks: the mask is chosen by margin magnitude, which is independent of
the bit's value (the pair's cells are identically distributed, so ``+d`` and ``-d`` are equally
likely); the offset leaks at most ``n - k`` = the ECC bits (315) of the 1,019 response bits.
The check tag is a one-way function of the seed. Code parameters are derived in ADR 0005:
BCH(m=10, t=32) fails with probability <= 1e-8 at a design BER of 1 %, five times the worst
corner's measured BER of the masked bits.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

import bchlib
import cbor2
import numpy as np
import numpy.typing as npt

from devices.rot.errors import HelperDataError, ReconstructionError
from devices.rot.physics import (
    NOMINAL,
    Bits,
    ChipArray,
    Conditions,
    Index,
    average_margin,
    read_bits,
)

HELPER_VERSION = 1
_SEED_SALT = b"medtwin/qdid/v1/seed"  # RFC 5869 section 3.1: a fixed, public salt
_CHECK_LABEL = b"medtwin/qdid/v1/check"
CHECK_BYTES = 16
ENROL_READS = 8


@dataclass(frozen=True, slots=True)
class CodeParams:
    """A shortened binary BCH code as bchlib uses it.

    Attributes:
        m: Galois field order (codewords of up to 2**m - 1 bits).
        t: errors the decoder corrects per codeword.
        data_bytes: message length in bytes (the codeword is shortened to fit).
        ecc_bits: parity bits (bchlib reports it; about m * t).
    """

    m: int
    t: int
    data_bytes: int
    ecc_bits: int

    @classmethod
    def bch(cls, m: int, t: int) -> CodeParams:
        """The longest byte-aligned message that fits one codeword of BCH(2**m - 1, t)."""
        ecc_bits = bchlib.BCH(t, m=m).ecc_bits
        return cls(m, t, ((1 << m) - 1 - ecc_bits) // 8, ecc_bits)

    @property
    def n_bits(self) -> int:
        """Response bits one codeword consumes (message plus parity)."""
        return self.data_bytes * 8 + self.ecc_bits

    @property
    def ecc_bytes(self) -> int:
        """Bytes bchlib uses to hold the parity."""
        return (self.ecc_bits + 7) // 8


CODE = CodeParams.bch(m=10, t=32)
"""The code every device uses: 88 message bytes + 315 parity bits = 1,019 response bits."""


@dataclass(frozen=True, slots=True)
class HelperData:
    """The public helper data written to flash at enrolment (and nothing else is).

    Attributes:
        mask: the chip's pair bitmap, packed MSB first (1 = pair used).
        offset: ``w XOR c``, ``CODE.n_bits`` bits packed MSB first.
        check: HMAC tag of the seed, to catch a decoder miscorrection.
        code: the code it was made for.
    """

    mask: bytes
    offset: bytes
    check: bytes
    code: CodeParams = CODE

    def pairs(self) -> Index:
        """The masked pair indices, ascending."""
        return np.flatnonzero(np.unpackbits(np.frombuffer(self.mask, dtype=np.uint8)))

    def to_bytes(self) -> bytes:
        """CBOR form stored in flash: ``{v, m, t, mask, offset, check}``."""
        return cbor2.dumps({"v": HELPER_VERSION, "m": self.code.m, "t": self.code.t,
                            "mask": self.mask, "offset": self.offset, "check": self.check})

    @classmethod
    def from_bytes(cls, raw: bytes, code: CodeParams = CODE) -> HelperData:
        """Parse helper data read back from flash.

        Raises:
            HelperDataError: if it is not CBOR, has another version or code, or the wrong
                lengths (flash corruption or a blob for another device model).
        """
        try:
            doc = cbor2.loads(raw)
        except (cbor2.CBORError, ValueError, TypeError, RecursionError) as exc:
            raise HelperDataError(f"helper data is not CBOR: {type(exc).__name__}") from None
        if not isinstance(doc, dict) or doc.get("v") != HELPER_VERSION:
            raise HelperDataError("helper data has an unknown version")
        if (doc.get("m"), doc.get("t")) != (code.m, code.t):
            raise HelperDataError("helper data was made for another code")
        helper = cls(doc.get("mask"), doc.get("offset"), doc.get("check"), code)  # type: ignore[arg-type]
        helper.validate()
        return helper

    def validate(self) -> None:
        """Check types and lengths.

        Raises:
            HelperDataError: naming the field that is wrong.
        """
        for name in ("mask", "offset", "check"):
            if type(getattr(self, name)) is not bytes:
                raise HelperDataError(f"helper data field {name} is not bytes")
        if len(self.offset) * 8 < self.code.n_bits or len(self.check) != CHECK_BYTES:
            raise HelperDataError("helper data offset or check has the wrong length")
        if int(np.unpackbits(np.frombuffer(self.mask, dtype=np.uint8)).sum()) != self.code.n_bits:
            raise HelperDataError(f"helper data mask must select {self.code.n_bits} pairs")


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What enrolling a batch produced.

    Attributes:
        helpers: one helper data per chip (public; goes to flash).
        response: ``(chips, pairs)`` enrolled response bits (for the PUF metrics only; a
            real tester never exports them).
        seeds: the enrolled seeds (to check reconstructions in tests and metrics).
    """

    helpers: tuple[HelperData, ...]
    response: Bits
    seeds: tuple[bytes, ...]


def enrol(chips: ChipArray, rng: np.random.Generator, reads: int = ENROL_READS,
          code: CodeParams = CODE) -> Enrolment:
    """Enrol a batch of chips at nominal conditions.

    Args:
        chips: the chips.
        rng: randomness for the enrolment reads and the random codewords.
        reads: reads averaged to estimate each pair's margin.
        code: the BCH code.

    Returns:
        Helper data, enrolled response bits and seeds.

    Raises:
        ValueError: if the chips have fewer pairs than the code needs.
    """
    if chips.params.pairs < code.n_bits:
        raise ValueError(f"{chips.params.pairs} pairs cannot feed a {code.n_bits}-bit code")
    margin = average_margin(chips, NOMINAL, rng, reads)
    response = margin > 0
    # Keep the n_bits most stable pairs (largest |margin|), in ascending pair order.
    keep = np.argpartition(-np.abs(margin), code.n_bits - 1, axis=1)[:, : code.n_bits]
    keep.sort(axis=1)
    w = np.take_along_axis(response, keep, axis=1)
    bch = bchlib.BCH(code.t, m=code.m)
    helpers, seeds = [], []
    mask_bits = np.zeros(response.shape, dtype=np.uint8)
    np.put_along_axis(mask_bits, keep, 1, axis=1)
    for row in range(chips.chips):
        message = bytearray(rng.bytes(code.data_bytes))
        codeword = _codeword_bits(message, bytearray(bch.encode(message)), code)
        seed = _seed(w[row])
        helpers.append(HelperData(np.packbits(mask_bits[row]).tobytes(),
                                  np.packbits(w[row] ^ codeword).tobytes(), _check(seed), code))
        seeds.append(seed)
    return Enrolment(tuple(helpers), response, tuple(seeds))


def pair_matrix(helpers: Sequence[HelperData]) -> Index:
    """Stack the helpers' masks into ``(chips, n_bits)`` pair indices for a batch read."""
    return np.stack([h.pairs() for h in helpers])


def recover(noisy: Bits, helper: HelperData) -> bytes:
    """Recover the enrolled seed from one chip's noisy masked bits.

    Args:
        noisy: the ``n_bits`` masked response bits of a fresh read.
        helper: the chip's helper data.

    Returns:
        The 32-byte seed.

    Raises:
        ReconstructionError: if the decoder fails or its result fails the check tag.
    """
    code = helper.code
    offset = np.unpackbits(np.frombuffer(helper.offset, dtype=np.uint8))[: code.n_bits]
    received = noisy.astype(np.uint8) ^ offset
    split = code.data_bytes * 8
    data = bytearray(np.packbits(received[:split]).tobytes())
    ecc = bytearray(np.packbits(received[split:]).tobytes())
    bch = _bch(code)
    if bch.decode(data, ecc) < 0:
        raise ReconstructionError("too many bit errors for the code to correct")
    bch.correct(data, ecc)
    seed = _seed(_codeword_bits(data, ecc, code) ^ offset)
    # Constant-time: the tag is derived from a secret (house style 4).
    if not hmac.compare_digest(_check(seed), helper.check):
        raise ReconstructionError("decoded response fails the enrolment check")
    return seed


def reconstruct(chips: ChipArray, helpers: Sequence[HelperData], cond: Conditions,
                rng: np.random.Generator) -> list[bytes | None]:
    """Read a batch of chips once and recover each seed (the fleet-boot fast path).

    Args:
        chips: the chips, in the order of ``helpers``.
        helpers: their helper data.
        cond: operating conditions of this boot.
        rng: the read's random stream.

    Returns:
        Each chip's seed, or None where reconstruction failed (a count for the metrics;
        single devices use :func:`recover`, which raises).
    """
    noisy = read_bits(chips, cond, rng, pair_matrix(helpers))
    seeds: list[bytes | None] = []
    for row, helper in enumerate(helpers):
        try:
            seeds.append(recover(noisy[row], helper))
        except ReconstructionError:
            seeds.append(None)
    return seeds


_BCH_CACHE: dict[tuple[int, int], bchlib.BCH] = {}


def _bch(code: CodeParams) -> bchlib.BCH:
    """One decoder object per code (building one computes the field tables)."""
    key = (code.m, code.t)
    if key not in _BCH_CACHE:
        _BCH_CACHE[key] = bchlib.BCH(code.t, m=code.m)
    return _BCH_CACHE[key]


def _codeword_bits(data: bytearray, ecc: bytearray, code: CodeParams) -> npt.NDArray[np.uint8]:
    bits = np.unpackbits(np.frombuffer(bytes(data) + bytes(ecc), dtype=np.uint8))
    return bits[: code.n_bits]


def _seed(w: npt.NDArray[np.bool_] | npt.NDArray[np.uint8]) -> bytes:
    """HKDF-Extract (RFC 5869 section 2.2): PRK = HMAC-SHA-256(salt, IKM = packed w)."""
    return hmac.new(_SEED_SALT, np.packbits(w.astype(np.uint8)).tobytes(), hashlib.sha256).digest()


def _check(seed: bytes) -> bytes:
    return hmac.new(seed, _CHECK_LABEL, hashlib.sha256).digest()[:CHECK_BYTES]
