"""The WAL checksum with a few big-integer operations per page instead of a Python step per
word (sqlite.org/fileformat2.html 4.3; SQLite `walChecksumBytes`).

Theory of operation:
- The checksum runs over pairs of 32-bit words: `s0 += a + s1; s1 += b + s0`, modulo
  2**32. Interleave the words into one sequence w_1, w_2, ... (a, b, a, b, ...) and the
  running values into u_k (s0 after a pair is an odd u, s1 an even one): then
  `u_k = u_(k-1) + u_(k-2) + w_k`, a Fibonacci recurrence fed with the words. So the
  checksum of a block of L words is the polynomial `sum(w_j * x**(L - j))` reduced modulo
  `x**2 - x - 1` (x**k is `F_k * x + F_(k-1)` there), with coefficients modulo 2**32: a
  pair `(r1, r0)` from which s0 is r1 and s1 is r1 + r0 (plus what the starting state
  contributes, again through Fibonacci numbers).
- Two blocks combine as `R = R_first * x**d + R_second` (d: the second block's length),
  which for every pair of blocks at the same distance d is the same 2x2 multiplication by
  Fibonacci numbers. So the words are packed into Python integers, one 64-bit slot per
  word pair (a 32-bit value times a 32-bit number fits its slot; the sum is masked back to
  32 bits), and each level pairs slot i of the first half with slot i of the second half:
  a handful of operations on whole integers, each done in C over every slot at once. The
  integers halve at each level; after log2(pairs) levels one slot holds the result. An odd
  slot out is the last one of the second half, which has no partner and passes through.
- Per 4 KiB page this is about 4x faster than the word loop, 5-6x on 64 KiB pages
  (`benchmarks/bench_wal.py`). Short inputs (a frame header, the WAL header) keep the loop,
  which is faster below 16 pairs. Both give exactly the same result; the tests hold the
  fast path to the loop with hypothesis.
- Checksums read the words big-endian or little-endian (the WAL magic says which); the
  packing reads little-endian, so big-endian words are byte-swapped first.
- Compiled (mypyc), the word loop over the bytes themselves (`checksum_bytes`: 64-bit
  native integers, no Python object per word or byte) is about 10x faster than the fold
  again (2 against 20 us per 4 KiB page); interpreted it is by far the slowest. `wal_checksum`
  takes the loop when this module is compiled, the fold when it is not.
"""

from __future__ import annotations

import struct
from array import array
from importlib.machinery import EXTENSION_SUFFIXES
from typing import Final

from mypy_extensions import i64

__all__ = ["checksum_bytes", "checksum_fold", "checksum_loop", "wal_checksum"]

_MASK: Final = 0xFFFFFFFF
_COMPILED: Final = __file__.endswith(tuple(EXTENSION_SUFFIXES))
"""True when this module is a mypyc-compiled extension (see the module docstring)."""
_SMALL_PAIRS: Final = 16
"""Below this many word pairs the plain loop is faster (measured)."""
_MAX_PLANS: Final = 64

_Level = tuple[int, int, int, int, int, int]
"""One halving: (bits of the first half, mask of those bits, F(d+1), F(d), F(d-1), mask of
the low 32 bits of every slot of the result); d is the distance, in words, between paired
slots."""

_Plan = tuple[int, int, int, int, int, int, tuple[_Level, ...], int, int, int]
"""Everything about one input length that does not depend on the data: the first level
(bytes in the first half, the mask of its slots' low words, the result mask, F(d+1),
F(d), F(d-1)), the later levels, and F(w+1), F(w), F(w-1) for w words (how the starting
state carries through)."""

_plans: Final[dict[int, _Plan]] = {}
_word_structs: Final[dict[tuple[int, bool], struct.Struct]] = {}

_WORD_ARRAY: Final = next(code for code in "IL" if array(code).itemsize == 4)
"""The `array` type code of a 32-bit word (byte-swapping big-endian words)."""


def wal_checksum(
    data: bytes | bytearray, start: int, end: int, s0: int, s1: int, big_endian: bool
) -> tuple[int, int]:
    """Continue the WAL checksum `(s0, s1)` over `data[start:end]` (a multiple of 8 bytes)."""
    if _COMPILED:
        return checksum_bytes(data, start, end, s0, s1, big_endian)
    pairs = (end - start) >> 3
    if pairs < _SMALL_PAIRS:
        return checksum_loop(data, start, end, s0, s1, big_endian)
    return checksum_fold(data, start, end, s0, s1, big_endian)


def checksum_loop(
    data: bytes | bytearray, start: int, end: int, s0: int, s1: int, big_endian: bool
) -> tuple[int, int]:
    """The checksum as SQLite defines it, one pair of words at a time."""
    count = (end - start) >> 2
    key = (count, big_endian)
    words_struct = _word_structs.get(key)
    if words_struct is None:
        words_struct = struct.Struct(f"{'>' if big_endian else '<'}{count}I")
        if len(_word_structs) < _MAX_PLANS:
            _word_structs[key] = words_struct
    it = iter(words_struct.unpack_from(data, start))
    for a, b in zip(it, it, strict=True):
        s0 = (s0 + a + s1) & _MASK
        s1 = (s1 + b + s0) & _MASK
    return s0, s1


def checksum_bytes(
    data: bytes | bytearray, start: int, end: int, s0: int, s1: int, big_endian: bool
) -> tuple[int, int]:
    """The checksum one pair of words at a time, each word assembled from its bytes: the
    fastest way compiled, the slowest interpreted (see the module docstring)."""
    if type(data) is not bytes:
        data = bytes(data[start:end])
        end -= start
        start = 0
    raw: bytes = data
    a0: i64 = s0 & _MASK
    a1: i64 = s1 & _MASK
    i: i64 = start
    stop: i64 = start + ((end - start) & ~7)
    # Each byte goes to a native integer before it is shifted: shifting the object
    # `raw[i]` is a generic (overflow-checked) operation, a native shift one instruction.
    b0: i64
    b1: i64
    b2: i64
    b3: i64
    if big_endian:
        while i < stop:
            b0 = raw[i]
            b1 = raw[i + 1]
            b2 = raw[i + 2]
            b3 = raw[i + 3]
            a0 = (a0 + ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3) + a1) & 0xFFFFFFFF
            b0 = raw[i + 4]
            b1 = raw[i + 5]
            b2 = raw[i + 6]
            b3 = raw[i + 7]
            a1 = (a1 + ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3) + a0) & 0xFFFFFFFF
            i += 8
    else:
        while i < stop:
            b0 = raw[i]
            b1 = raw[i + 1]
            b2 = raw[i + 2]
            b3 = raw[i + 3]
            a0 = (a0 + (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) + a1) & 0xFFFFFFFF
            b0 = raw[i + 4]
            b1 = raw[i + 5]
            b2 = raw[i + 6]
            b3 = raw[i + 7]
            a1 = (a1 + (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) + a0) & 0xFFFFFFFF
            i += 8
    return int(a0), int(a1)


def checksum_fold(
    data: bytes | bytearray, start: int, end: int, s0: int, s1: int, big_endian: bool
) -> tuple[int, int]:
    """The same checksum by halving packed integers (see the module docstring); any
    number of pairs from 1."""
    pairs = (end - start) >> 3
    plan = _plans.get(pairs)
    if plan is None:
        plan = _plan(pairs)
    split, even, mask, f1, f0, fm, levels, fw1, fw, fwm = plan
    from_bytes = int.from_bytes
    if big_endian:
        swapped = array(_WORD_ARRAY, data[start:end])
        swapped.byteswap()
        low = from_bytes(swapped[: split >> 2], "little")
        high = from_bytes(swapped[split >> 2 :], "little")
    else:
        middle = start + split
        low = from_bytes(data[start:middle], "little")
        high = from_bytes(data[middle:end], "little")
    # The first level reads its halves straight from the bytes: slot i of `low` holds
    # pair i, slot i of `high` pair i + half.
    a1 = low & even
    a0 = (low >> 32) & even
    c1 = ((a1 * f1 & mask) + (a0 * f0 & mask) + (high & mask)) & mask
    c0 = ((a1 * f0 & mask) + (a0 * fm & mask) + ((high >> 32) & mask)) & mask
    for bits, first, f1, f0, fm, mask in levels:
        a1 = c1 & first
        a0 = c0 & first
        c1 = ((a1 * f1 & mask) + (a0 * f0 & mask) + (c1 >> bits)) & mask
        c0 = ((a1 * f0 & mask) + (a0 * fm & mask) + (c0 >> bits)) & mask
    return (c1 + fw * s1 + fwm * s0) & _MASK, (c1 + c0 + fw1 * s1 + fw * s0) & _MASK


def _fibonacci(k: int) -> tuple[int, int]:
    """(F(k), F(k+1)) modulo 2**32, for k >= -1 (F(-1) = 1), by doubling."""
    if k == -1:
        return 1, 0
    a, b = 0, 1
    for bit in bin(k)[2:]:
        c = a * ((2 * b - a) & _MASK) & _MASK  # F(2n)
        d = (a * a + b * b) & _MASK  # F(2n+1)
        if bit == "1":
            a, b = d, (c + d) & _MASK
        else:
            a, b = c, d
    return a, b


def _around(d: int) -> tuple[int, int, int]:
    """(F(d+1), F(d), F(d-1)) modulo 2**32."""
    below, at = _fibonacci(d - 1)
    return (at + below) & _MASK, at, below


def _low_words(slots: int) -> int:
    return int.from_bytes(b"\xff\xff\xff\xff\x00\x00\x00\x00" * slots, "little")


def _plan(pairs: int) -> _Plan:
    half = pairs >> 1
    f1, f0, fm = _around(2 * half)
    levels: list[_Level] = []
    slots = pairs - half
    while slots > 1:
        half_slots = slots >> 1
        bits = half_slots << 6
        rest = slots - half_slots
        g1, g0, gm = _around(2 * half_slots)
        levels.append((bits, (1 << bits) - 1, g1, g0, gm, _low_words(rest)))
        slots = rest
    w1, w, wm = _around(2 * pairs)
    plan: _Plan = (
        8 * half,
        _low_words(half),
        _low_words(pairs - half),
        f1,
        f0,
        fm,
        tuple(levels),
        w1,
        w,
        wm,
    )
    if len(_plans) >= _MAX_PLANS:
        _plans.clear()
    _plans[pairs] = plan
    return plan
