"""One gzip member assembled from pieces compressed at different times.

A :class:`Piece` is raw deflate data that ends with a sync flush: non-final blocks ending
on a byte boundary. Pieces compressed separately therefore concatenate into one valid
deflate stream, and a scrape compresses only the text that changed since the last one.
The gzip trailer needs the CRC-32 of the whole text; CRC-32 is affine in (start value,
data), so ``crc32(b, start=c) == crc32(zeros(len(b)), c) ^ crc32(zeros(len(b))) ^
crc32(b)``, and each piece keeps its own CRC and that of as many zero bytes as it has
text. The result is a single standard gzip member (RFC 1952), not concatenated members.
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


@dataclass(frozen=True, slots=True)
class Piece:
    """``size`` bytes of text, compressed; see the module docstring."""

    data: bytes
    size: int
    crc: int
    zeros_crc: int  # crc32 of ``size`` zero bytes


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


def deflate(text: bytes, level: int = LEVEL) -> bytes:
    """Raw deflate of ``text`` ending on a byte boundary, without a final block."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)


def compress(text: bytes, level: int = LEVEL) -> Piece:
    return Piece(deflate(text, level), len(text), zlib.crc32(text), zlib.crc32(zeros(len(text))))


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
            crc = zlib.crc32(zeros(part.size), crc) ^ part.zeros_crc ^ part.crc
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
