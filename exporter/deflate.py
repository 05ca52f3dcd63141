"""One gzip member assembled from pieces compressed at different times.

A :class:`Piece` is raw deflate data that ends with a sync flush: non-final blocks ending
on a byte boundary. Pieces compressed separately therefore concatenate into one valid
deflate stream, and a scrape compresses only the text that changed since the last one.
The gzip trailer needs the CRC-32 of the whole text. Appending ``n`` bytes to a text maps
its CRC linearly (over GF(2)) before the new bytes' own CRC is added:
``crc32(a + b) == multiply(shift(len(b)), crc32(a)) ^ crc32(b)``, where ``shift(n)`` is
x^(8n) modulo the CRC polynomial, as zlib's ``crc32_combine`` computes it. Each piece keeps
its CRC and its shift, so joining pieces costs a few microseconds each, whatever their
size. The result is a single standard gzip member (RFC 1952), not concatenated members.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

# Magic, deflate, no flags, mtime 0, no extra flags, OS unknown.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
FINAL_BLOCK = b"\x03\x00"  # an empty final block with fixed codes
LEVEL = 1  # zlib's fastest; Prometheus asks for gzip, and ratio matters less than time
# A 16 kB window and a small hash table (zlib's defaults: 32 kB, 64 k entries). Most pieces
# are a few kB: setting up zlib's default state costs several times more than compressing
# one, and the lines repeat within a few hundred bytes, so the ratio hardly moves.
WINDOW_BITS, MEM_LEVEL = 14, 6


@dataclass(frozen=True, slots=True)
class Piece:
    """``size`` bytes of text, compressed; see the module docstring."""

    data: bytes
    size: int
    crc: int
    shift: int  # x^(8 * size) modulo the CRC-32 polynomial


POLYNOMIAL = 0xEDB88320  # CRC-32's, bit-reversed as zlib keeps it: x^0 is the top bit
ONE = 1 << 31  # the polynomial 1


def multiply(a: int, b: int) -> int:
    """``a * b`` modulo the CRC-32 polynomial, both bit-reversed (zlib's ``multmodp``)."""
    product, bit = 0, ONE
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ POLYNOMIAL if b & 1 else b >> 1
    return product


class _Zeros:
    """A shared, growing run of zero bytes to compute CRCs over."""

    def __init__(self) -> None:
        self._view = memoryview(bytes(1 << 16))
        self._lock = threading.Lock()

    def __call__(self, size: int) -> memoryview:
        view = self._view
        if size > len(view):
            with self._lock:
                if size > len(self._view):
                    self._view = memoryview(bytes(max(size, 2 * len(self._view))))
                view = self._view
        return view[:size]


zeros = _Zeros()


def shift(size: int) -> int:
    """x^(8 * size) modulo the polynomial: the linear part of appending ``size`` zero bytes,
    read off zlib's (C) CRC of that many zeros from two start values."""
    run = zeros(size)
    return zlib.crc32(run, ONE) ^ zlib.crc32(run)


def deflate(text: bytes, level: int = LEVEL) -> bytes:
    """Raw deflate of ``text`` ending on a byte boundary, without a final block."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -WINDOW_BITS, MEM_LEVEL)
    return compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)


def compress(text: bytes, level: int = LEVEL) -> Piece:
    return Piece(deflate(text, level), len(text), zlib.crc32(text), shift(len(text)))


def concat(pieces: Iterable[Piece]) -> Piece:
    """One piece of the text of ``pieces`` in order, without compressing anything again."""
    datas, crc, size, total = [], 0, 0, ONE
    for piece in pieces:
        datas.append(piece.data)
        crc = multiply(piece.shift, crc) ^ piece.crc
        size += piece.size
        total = multiply(piece.shift, total)
    return Piece(b"".join(datas), size, crc, total)


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
            out.append(part.data)
            crc = multiply(part.shift, crc) ^ part.crc
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
            run.append(part.data)
    inflate()
    return b"".join(out)
