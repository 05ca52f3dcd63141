"""One gzip member assembled from pieces compressed at different times.

A :class:`Piece` is raw deflate data that ends with a sync flush: non-final blocks ending
on a byte boundary. Pieces compressed separately therefore concatenate into one valid
deflate stream, and a scrape compresses only the text that changed since the last one.
The gzip trailer needs the CRC-32 of the whole text, combined from the pieces' CRCs with
``zlib.crc32_combine`` (Python 3.15 and later). Where zlib does not offer it, the same
arithmetic is done here: appending ``n`` bytes to a text maps its CRC linearly (over
GF(2)) before the new bytes' own CRC is added,
``crc32(a + b) == multiply(shift(len(b)), crc32(a)) ^ crc32(b)``, where ``shift(n)`` is
x^(8n) modulo the CRC polynomial; each piece then keeps its shift, so joining pieces costs
a few microseconds each, whatever their size. The result is a single standard gzip member
(RFC 1952), not concatenated members.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

# Magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
FINAL_BLOCK = b"\x03\x00"  # an empty final block with fixed codes
LEVEL = 1  # zlib's fastest; Prometheus asks for gzip, and ratio matters less than time
# A 16 kB window and an 8 k-entry hash table (zlib's defaults: 32 kB, 32 k). Most pieces
# are a few kB: setting up zlib's default state costs several times more than compressing
# one, and the lines repeat within a few hundred bytes, so the ratio hardly moves.
WINDOW_BITS, MEM_LEVEL = 14, 6


@dataclass(frozen=True, slots=True)
class Piece:
    """``size`` bytes of text, compressed; see the module docstring. ``data`` is one byte
    string, or several in a row (:func:`concat` copies nothing)."""

    data: bytes | tuple[bytes, ...]
    size: int
    crc: int
    shift: int  # for the fallback: x^(8 * size) modulo the CRC-32 polynomial, else 0


POLYNOMIAL = 0xEDB88320  # CRC-32's, bit-reversed as zlib keeps it: x^0 is the top bit
ONE = 1 << 31  # the polynomial 1


def _times_x(b: int) -> int:
    return (b >> 1) ^ POLYNOMIAL if b & 1 else b >> 1


def _times_x4(low: int) -> int:
    for _ in range(4):
        low = _times_x(low)
    return low


_OVERFLOW = [_times_x4(low) for low in range(16)]  # x^4 times the four highest powers


def multiply(a: int, b: int) -> int:
    """``a * b`` modulo the CRC-32 polynomial, both bit-reversed (zlib's ``multmodp``),
    four bits of ``a`` at a time."""
    b1 = _times_x(b)
    b2 = _times_x(b1)
    b3 = _times_x(b2)
    low = (0, b3, b2, b2 ^ b3, b1, b1 ^ b3, b1 ^ b2, b1 ^ b2 ^ b3)
    times = (*low, *[b ^ v for v in low])  # b times each polynomial of degree < 4
    product = 0
    for nibble in (0, 4, 8, 12, 16, 20, 24, 28):  # from x^28..x^31 down to x^0..x^3
        product = (product >> 4) ^ _OVERFLOW[product & 15] ^ times[(a >> nibble) & 15]
    return product


_POWERS = [ONE >> 1]  # x^(2^k) for k = 0, 1, ...
for _ in range(66):
    _POWERS.append(multiply(_POWERS[-1], _POWERS[-1]))


@functools.lru_cache(maxsize=4096)  # a piece made again often keeps its size
def shift(size: int) -> int:
    """x^(8 * size) modulo the polynomial: the linear part of appending ``size`` bytes."""
    power, exponent, k = ONE, 8 * size, 0
    while exponent:
        if exponent & 1:
            power = multiply(_POWERS[k], power)
        exponent >>= 1
        k += 1
    return power


def combine_fallback(crc1: int, crc2: int, len2: int) -> int:
    """``zlib.crc32_combine`` in Python: the CRC-32 of ``a + b`` from ``crc32(a)``,
    ``crc32(b)`` and ``len(b)``."""
    return multiply(shift(len2), crc1) ^ crc2


NATIVE = hasattr(zlib, "crc32_combine")  # Python 3.15 and later

if NATIVE:

    def _shift_of(size: int) -> int:
        return 0  # unused: zlib combines from the length

    def _extend(crc: int, piece: Piece) -> int:
        """The CRC of a text followed by the piece's, from the text's CRC."""
        return zlib.crc32_combine(crc, piece.crc, piece.size)  # type: ignore[attr-defined]

else:
    _shift_of = shift

    def _extend(crc: int, piece: Piece) -> int:
        """The CRC of a text followed by the piece's, from the text's CRC."""
        return multiply(piece.shift, crc) ^ piece.crc


def deflate(text: bytes, level: int = LEVEL) -> bytes:
    """Raw deflate of ``text`` ending on a byte boundary, without a final block."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -WINDOW_BITS, MEM_LEVEL)
    return compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)


def compress(text: bytes, level: int = LEVEL) -> Piece:
    return Piece(deflate(text, level), len(text), zlib.crc32(text), _shift_of(len(text)))


class Stream:
    """A piece made from text as it comes: each write is compressed at once, so the text
    is never held whole (a scrape's heartbeat times are MB at 10,000 agents)."""

    def __init__(self, level: int = LEVEL) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -WINDOW_BITS, MEM_LEVEL)
        self._out: list[bytes] = []
        self._crc = self._size = 0

    def write(self, text: bytes) -> None:
        self._out.append(self._compressor.compress(text))
        self._crc = zlib.crc32(text, self._crc)
        self._size += len(text)

    def piece(self) -> Piece:
        self._out.append(self._compressor.flush(zlib.Z_SYNC_FLUSH))
        return Piece(tuple(self._out), self._size, self._crc, _shift_of(self._size))


def concat(pieces: Iterable[Piece]) -> Piece:
    """One piece of the text of ``pieces`` in order, without compressing or copying."""
    datas: list[bytes] = []
    crc = size = 0
    for piece in pieces:
        _add(datas, piece.data)
        crc = _extend(crc, piece)
        size += piece.size
    return Piece(tuple(datas), size, crc, _shift_of(size))


def _add(out: list[bytes], data: bytes | tuple[bytes, ...]) -> None:
    if type(data) is tuple:
        out.extend(data)
    else:
        out.append(data)


def gzip_member(parts: Iterable[Piece | bytes], level: int = LEVEL) -> bytes:
    """One gzip member of the text of ``parts`` in order: pieces as they are, plain bytes
    compressed now (consecutive ones together)."""
    out = [GZIP_HEADER]
    crc = size = 0
    pending: list[bytes] = []

    def flush() -> None:
        if pending:
            out.append(deflate(b"".join(pending), level))
            pending.clear()

    for part in parts:
        if type(part) is bytes:
            pending.append(part)
            crc = zlib.crc32(part, crc)
            size += len(part)
        else:
            flush()
            _add(out, part.data)
            crc = _extend(crc, part)
            size += part.size
    flush()
    out.append(FINAL_BLOCK + struct.pack("<II", crc, size & 0xFFFFFFFF))
    return b"".join(out)


def text_of(parts: Iterable[Piece | bytes]) -> bytes:
    """The uncompressed text of ``parts`` in order."""
    out: list[bytes] = []
    run: list[bytes] = []  # consecutive pieces, inflated in one go

    def inflate() -> None:
        if run:
            out.append(zlib.decompressobj(-zlib.MAX_WBITS).decompress(b"".join(run)))
            run.clear()

    for part in parts:
        if type(part) is bytes:
            inflate()
            out.append(part)
        else:
            _add(run, part.data)
    inflate()
    return b"".join(out)
